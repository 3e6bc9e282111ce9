//! Asking for a consultation (`/request/{faculty}`), following one's requests live (`/me`), and a
//! ticket opened from a kiosk's QR code (`/t/{token}`).

use crate::consult::{
    CancelRequest, PlaceRequest, RequestForm, TicketLink, get_my_requests, get_request_form, get_ticket,
};
use crate::live::Link;
use crate::pages::Header;
use domain::consultation::State;
use domain::{RequestView, Status};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

fn ordinal(n: i64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[component]
pub fn RequestPage() -> impl IntoView {
    let params = use_params_map();
    let faculty_id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let form = Resource::new_blocking(faculty_id, get_request_form);
    view! {
        <Title text="ConsultEase — ask for a consultation" />
        <Header />
        <main class="page narrow">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match form.await {
                        Ok(f) => view! { <AskForm form=f /> }.into_any(),
                        Err(e) => {
                            crate::error::set_status(&e);
                            view! {
                                <h2>"Ask for a consultation"</h2>
                                <p class="error" role="alert">{e.to_string()}</p>
                                <p><a href="/">"Back to the board"</a></p>
                            }
                            .into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn AskForm(form: RequestForm) -> impl IntoView {
    let f = form.faculty;
    let place = ServerAction::<PlaceRequest>::new();
    let away = !matches!(f.status, Status::Available | Status::Busy);
    let error = move || place.value().get().and_then(Result::err);
    let field_error = move |field: &'static str| {
        move || {
            error()
                .filter(|e| e.field() == Some(field))
                .map(|e| view! { <p class="field-error" id=format!("{field}-error")>{e.to_string()}</p> })
        }
    };
    let other_error = move || {
        error()
            .filter(|e| !matches!(e.field(), Some("course" | "message")))
            .map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })
    };
    view! {
        <h2>"Ask " {f.name.clone()}</h2>
        <p class=format!("status-line {}", f.status)>
            {f.department.clone()} " · " <strong>{f.status.label()}</strong>
            {(f.waiting > 0).then(|| format!(" · {} waiting", f.waiting))}
        </p>
        {form.hours.clone().map(|h| view! { <p class="status-line" data-testid="office-hours">{h}</p> })}
        {form.back.clone().map(|b| view! { <p class="status-line" data-testid="usually-back">{b}</p> })}
        {if !form.signed_in {
            view! {
                <p>"Please " <a href="/sign-in">"sign in"</a> " as a student to ask for a consultation."</p>
            }
            .into_any()
        } else {
            view! {
                {away.then(|| view! {
                    <div class="panel notice">
                        <p>{format!("{} is {} right now.", f.name, f.status.label().to_lowercase())}
                           " You can ask anyway: your request waits and reaches their desk when they are back."</p>
                        {(!form.colleagues.is_empty()).then(|| view! {
                            <p>"Available now in " {f.department.clone()} ": "
                                {form.colleagues.iter().map(|c| view! {
                                    <a class="colleague" href=format!("/request/{}", c.id)>{c.name.clone()}</a>
                                }).collect_view()}
                            </p>
                        })}
                    </div>
                })}
                <ActionForm action=place>
                    <input type="hidden" name="faculty_id" value=f.id />
                    <label for="course">"Course code (optional)"</label>
                    <input id="course" name="course" maxlength="9" placeholder="CS101" autocomplete="off" />
                    {field_error("course")}
                    <label for="message">"What would you like to discuss?"</label>
                    <textarea id="message" name="message" required minlength="10" maxlength="500" rows="4"></textarea>
                    {field_error("message")}
                    {away.then(|| view! {
                        <label class="check"><input type="checkbox" name="hold" value="on" checked /> " Hold my request until they are back"</label>
                    })}
                    <button type="submit">"Send request"</button>
                </ActionForm>
                {other_error}
            }
            .into_any()
        }}
        <p><a href="/">"Back to the board"</a></p>
    }
}

#[component]
pub fn MyRequestsPage() -> impl IntoView {
    let mine = Resource::new_blocking(|| (), |_| get_my_requests());
    view! {
        <Title text="ConsultEase — my requests" />
        <Header />
        <main class="page narrow">
            <h2>"My requests"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match mine.await {
                        Ok(m) => view! {
                            <LiveRequests
                                stream="/api/me/events".to_owned()
                                cursor=m.mine.cursor
                                requests=m.mine.requests
                                links=m.links
                                owner=true
                            />
                        }.into_any(),
                        Err(crate::AppError::Unauthorized | crate::AppError::Forbidden) => view! {
                            <p>"Please " <a href="/sign-in">"sign in"</a> " as a student to see your requests."</p>
                        }.into_any(),
                        Err(e) => {
                            crate::error::set_status(&e);
                            view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any()
                        }
                    }
                })}
            </Suspense>
            <p><a href="/">"Back to the board"</a></p>
        </main>
    }
}

/// `/t/{token}`: one request's progress, opened from a kiosk's QR code without signing in.
#[component]
pub fn TicketPage() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let ticket = Resource::new_blocking(token, get_ticket);
    view! {
        <Title text="ConsultEase — your ticket" />
        <Header />
        <main class="page narrow">
            <h2>"Your ticket"</h2>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match ticket.await {
                        Ok(t) => view! {
                            <LiveRequests
                                stream=format!("/api/tickets/{}/events", t.follow)
                                cursor=t.cursor
                                requests=vec![t.request]
                                links=Vec::new()
                                owner=false
                            />
                        }.into_any(),
                        Err(e) => {
                            crate::error::set_status(&e);
                            view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}

/// A live list of requests from `stream`. `owner`: the signed-in student's own list (they may cancel).
#[component]
fn LiveRequests(
    stream: String,
    cursor: i64,
    requests: Vec<RequestView>,
    links: Vec<TicketLink>,
    owner: bool,
) -> impl IntoView {
    let list = RwSignal::new(requests);
    let link = RwSignal::new(Link::Connecting);
    let links = StoredValue::new(links);
    #[cfg(feature = "hydrate")]
    crate::live::follow_requests(stream, cursor, list, link);
    #[cfg(not(feature = "hydrate"))]
    let _ = (stream, cursor);
    view! {
        <p class="link" role="status" data-link=move || link.get().as_str()>
            <span class="dot" aria-hidden="true"></span>
            {move || link.get().label()}
        </p>
        <Show when=move || list.with(Vec::is_empty)>
            <p class="empty">"No requests yet. Pick someone on the " <a href="/">"board"</a> "."</p>
        </Show>
        <ul class="requests" aria-live="polite">
            <For each=move || list.get() key=|r| (r.id, r.version) let(r)>
                <RequestCard link=links.with_value(|l| l.iter().find(|l| l.id == r.id).cloned()) r owner />
            </For>
        </ul>
    }
}

#[component]
fn RequestCard(r: RequestView, link: Option<TicketLink>, owner: bool) -> impl IntoView {
    let cancel = ServerAction::<CancelRequest>::new();
    let open = r.state.is_open();
    // A finished request's QR code would open a ticket with nothing left to follow.
    let link = link.filter(|_| open);
    let line = match (r.state, r.position) {
        (State::Held | State::Queued | State::Delivered | State::Busy, Some(p)) => {
            let wait = match (r.wait_min, r.wait_max) {
                (Some(0), Some(0)) | (None, _) | (_, None) => "you are next".to_owned(),
                (Some(lo), Some(hi)) if lo == hi => format!("about {lo} min"),
                (Some(lo), Some(hi)) => format!("about {lo}–{hi} min"),
            };
            Some(format!("{} in line · {wait}", ordinal(p)))
        }
        _ => None,
    };
    view! {
        <li class=format!("request {}", r.state.as_str()) data-request-id=r.id data-state=r.state.as_str() data-version=r.version>
            <p class="ticket">{r.ticket.clone()}</p>
            <h3 class="with">{r.faculty_name.clone()}</h3>
            <p class="state"><strong>{r.state.label()}</strong></p>
            {line.map(|l| view! { <p class="place">{l}</p> })}
            {r.note.clone().map(|n| view! { <p class="note">"“" {n} "”"</p> })}
            {(!r.message.is_empty()).then(|| view! {
                <p class="what">{r.course.clone().map(|c| format!("{c} · ")).unwrap_or_default()} {r.message.clone()}</p>
            })}
            {link.map(|l| view! {
                <figure class="qr" data-ticket-link=l.url>
                    <div role="img" aria-label="QR code of this ticket's link" inner_html=l.svg></div>
                    <figcaption>"Scan to follow this ticket on your phone"</figcaption>
                </figure>
            })}
            {(open && owner).then(|| view! {
                <ActionForm action=cancel>
                    <input type="hidden" name="id" value=r.id />
                    <button type="submit" class="secondary">"Cancel request"</button>
                </ActionForm>
            })}
        </li>
    }
}
