//! The live faculty board (`/`) and its kiosk layout (`/kiosk`).
//!
//! Rendered on the server from one snapshot; once hydrated, the browser follows the event stream
//! from the snapshot's cursor (see `crate::live`) and applies only newer versions.

use crate::format::{age_line, hours_line, icon, override_line};
use crate::live::Link;
use crate::server_fns::{BoardData, get_board};
use domain::{FacultyView, Status};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn BoardPage(#[prop(optional)] kiosk: bool) -> impl IntoView {
    let board = Resource::new_blocking(|| (), |_| get_board());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading the board…"</p> }>
            {move || Suspend::new(async move {
                match board.await {
                    Ok(data) => view! { <LiveBoard data kiosk /> }.into_any(),
                    Err(e) => {
                        // An error page is never a 200 (regression: the board's error was served
                        // with 200, so monitors and caches took it for the board).
                        crate::error::set_status(&e);
                        view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn LiveBoard(data: BoardData, kiosk: bool) -> impl IntoView {
    let faculty = RwSignal::new(data.snapshot.faculty);
    let now = RwSignal::new(data.now);
    let offset = RwSignal::new(data.utc_offset_min);
    let back = RwSignal::new(std::sync::Arc::new(data.back));
    #[cfg(feature = "hydrate")]
    {
        // Read again every 5 minutes: the day's history after midnight, the offset after a
        // change of daylight saving time. A failed read keeps what the board has.
        let refresh = set_interval_with_handle(
            move || {
                leptos::task::spawn_local(async move {
                    if let Ok(local) = crate::server_fns::get_board_local().await {
                        offset.set(local.utc_offset_min);
                        back.set(std::sync::Arc::new(local.back));
                    }
                });
            },
            std::time::Duration::from_secs(300),
        )
        .ok();
        on_cleanup(move || {
            if let Some(h) = refresh {
                h.clear();
            }
        });
    }
    let link = RwSignal::new(Link::Connecting);
    let announce = RwSignal::new(String::new());
    #[cfg(feature = "hydrate")]
    crate::live::follow(data.snapshot.cursor, faculty, now, link, announce);

    let query = use_query_map();
    let search = move || query.read().get("q").unwrap_or_default();
    let filter = move || query.read().get("status").and_then(|s| Status::parse(&s));
    // Memoised: the list and the "nobody matches" line both read it.
    let visible = Memo::new(move |_| {
        let (q, st) = (search().to_lowercase(), filter());
        faculty
            .read()
            .iter()
            // A deactivated row stays in the list (its version keeps older events out), unseen.
            .filter(|f| f.active)
            .filter(|f| st.is_none_or(|s| f.status == s))
            .filter(|f| q.is_empty() || f.name.to_lowercase().contains(&q) || f.department.to_lowercase().contains(&q))
            .cloned()
            .collect::<Vec<_>>()
    });
    let counts = move || {
        let list = faculty.read();
        Status::ALL.map(|s| (s, list.iter().filter(|f| f.active && f.status == s).count()))
    };
    let base = if kiosk { "/kiosk" } else { "/" };

    view! {
        <div class=if kiosk { "board kiosk" } else { "board" }>
            <div class="board-bar">
                <p class="link" role="status" data-link=move || link.get().as_str()>
                    <span class="dot" aria-hidden="true"></span>
                    {move || link.get().label()}
                </p>
                <nav class="status-filter" aria-label="Filter by status">
                    <FilterLink base label="All" value=None filter />
                    {Status::ALL
                        .into_iter()
                        .map(|s| view! { <FilterLink base label=s.label() value=Some(s) filter /> })
                        .collect_view()}
                </nav>
                <Show when=move || !kiosk>
                    <SearchForm search filter />
                </Show>
            </div>
            <p class="summary">
                {move || {
                    counts()
                        .iter()
                        .map(|(s, n)| format!("{n} {}", s.label().to_lowercase()))
                        .collect::<Vec<_>>()
                        .join(" · ")
                }}
            </p>
            <div class="sr-only" aria-live="polite" aria-atomic="true">
                {move || announce.get()}
            </div>
            <ul class="cards" aria-label="Faculty">
                <For each=move || visible.get() key=|f| (f.id, f.version) let(f)>
                    <Card f now offset back />
                </For>
            </ul>
            <Show when=move || visible.with(Vec::is_empty)>
                <p class="empty">"Nobody matches this filter."</p>
            </Show>
        </div>
    }
}

/// A status filter as a link: works before the wasm loads, and as client-side navigation after.
#[component]
fn FilterLink(
    base: &'static str,
    label: &'static str,
    value: Option<Status>,
    filter: impl Fn() -> Option<Status> + Send + Sync + Copy + 'static,
) -> impl IntoView {
    // The search, if any, with this filter's status. Only the parameters the board knows are
    // carried over (regression: every parameter of the URL was copied into every link, so 8,000
    // junk parameters made a 261 KB page).
    let query = use_query_map();
    let href = move || {
        let mut params = leptos_router::params::ParamsMap::new();
        if let Some(q) = query.read().get("q").filter(|q| !q.is_empty()) {
            params.insert("q", q);
        }
        if let Some(s) = value {
            params.insert("status", s.as_str().to_owned());
        }
        format!("{base}{}", params.to_query_string())
    };
    let current = move || (filter() == value).then_some("page");
    view! {
        <a href=href aria-current=current class="chip">
            {label}
        </a>
    }
}

#[component]
fn SearchForm(
    search: impl Fn() -> String + Send + Sync + Copy + 'static,
    filter: impl Fn() -> Option<Status> + Send + Sync + Copy + 'static,
) -> impl IntoView {
    view! {
        <form class="search" method="get" action="/" role="search">
            <label for="q">"Search"</label>
            <input id="q" name="q" type="search" placeholder="Name or department" value=search />
            {move || filter().map(|s| view! { <input type="hidden" name="status" value=s.as_str() /> })}
            <button type="submit">"Search"</button>
        </form>
    }
}

#[component]
fn Card(
    f: FacultyView,
    now: RwSignal<i64>,
    offset: RwSignal<i32>,
    back: RwSignal<std::sync::Arc<crate::server_fns::Back>>,
) -> impl IntoView {
    let (id, version, status) = (f.id, f.version, f.status);
    let (name, department, waiting) = (f.name.clone(), f.department.clone(), f.waiting);
    let ask_label = format!("Ask {} for a consultation", f.name);
    let overridden = f.note.is_some() || f.until.is_some();
    let age = {
        let f = f.clone();
        move || age_line(&f, now.get())
    };
    let hours = {
        let f = f.clone();
        move || hours_line(&f, now.get(), offset.get()).map(|h| view! { <p class="hours">{h}</p> })
    };
    let away = matches!(status, Status::Away | Status::Offline);
    let back = move || {
        away.then(|| back.read().line(id, now.get(), offset.get())).flatten().map(|b| view! { <p class="back">{b}</p> })
    };
    let note = move || override_line(&f, now.get());
    view! {
        <li class=format!("card {status}") data-faculty-id=id data-status=status.as_str() data-version=version>
            <p class="badge">
                <span class="icon" aria-hidden="true">{icon(status)}</span>
                <span class="word">{status.label()}</span>
            </p>
            <h3 class="name">{name}</h3>
            <p class="dept">{department}</p>
            {overridden.then(|| view! { <p class="override">{note}</p> })}
            {hours}
            {back}
            <p class="age">{age}</p>
            <p class="ask">
                {(waiting > 0).then(|| view! { <span class="waiting">{format!("{waiting} waiting")}</span> })}
                <a href=format!("/request/{id}") aria-label=ask_label>"Ask"</a>
            </p>
        </li>
    }
}
