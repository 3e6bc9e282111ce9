//! Asking for a consultation (`/request/{faculty}`) and following one's requests live (`/me`).

use crate::consult::{CancelRequest, PlaceRequest, RequestForm, get_my_requests, get_request_form};
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
                        Ok(m) => view! { <LiveRequests cursor=m.cursor requests=m.requests /> }.into_any(),
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

#[component]
fn LiveRequests(cursor: i64, requests: Vec<RequestView>) -> impl IntoView {
    let list = RwSignal::new(requests);
    let link = RwSignal::new(Link::Connecting);
    #[cfg(feature = "hydrate")]
    crate::live::follow_requests(cursor, list, link);
    #[cfg(not(feature = "hydrate"))]
    let _ = cursor;
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
                <RequestCard r />
            </For>
        </ul>
    }
}

#[component]
fn RequestCard(r: RequestView) -> impl IntoView {
    let cancel = ServerAction::<CancelRequest>::new();
    let open = r.state.is_open();
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
            <p class="what">{r.course.clone().map(|c| format!("{c} · ")).unwrap_or_default()} {r.message.clone()}</p>
            {open.then(|| view! {
                <ActionForm action=cancel>
                    <input type="hidden" name="id" value=r.id />
                    <button type="submit" class="secondary">"Cancel request"</button>
                </ActionForm>
            })}
        </li>
    }
}
