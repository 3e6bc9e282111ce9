//! Signing in (students, with a card at a kiosk; admins), enrolling a kiosk, the account bar in
//! the header, and the kiosk's idle sign-out.

use super::form_error;
use crate::account::{AdminSignIn, CardSignIn, EnrolKiosk, Me, StudentSignIn, Viewer, get_viewer};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn SignIn() -> impl IntoView {
    let who = Resource::new_blocking(|| (), |_| get_viewer());
    view! {
        <Title text="ConsultEase — sign in" />
        <main class="page narrow">
            <h1>"Sign in"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match who.await {
                        Ok(Viewer { me: Some(me), .. }) => view! { <SignedInAs me /> }.into_any(),
                        Ok(Viewer { me: None, kiosk }) => view! { <StudentForms kiosk /> }.into_any(),
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

#[component]
fn SignedInAs(me: Me) -> impl IntoView {
    view! {
        <p>"You are signed in as " <strong>{me.name}</strong> "."</p>
        <p><a href="/">"Back to the board"</a></p>
    }
}

#[component]
fn StudentForms(kiosk: bool) -> impl IntoView {
    let pin = ServerAction::<StudentSignIn>::new();
    let card = ServerAction::<CardSignIn>::new();
    view! {
        {kiosk.then(|| view! {
            <section class="panel card-tap" aria-labelledby="card-h">
                <h2 id="card-h">"Tap your student card"</h2>
                <ActionForm action=card>
                    <label for="card">"Card"</label>
                    // A keyboard-wedge reader types the card's UID and Enter into this field.
                    <input id="card" name="card" type="password" autocomplete="off" autofocus required />
                    <button type="submit">"Sign in with card"</button>
                </ActionForm>
                {form_error(card.value(), &[])}
            </section>
        })}
        <section class="panel" aria-labelledby="pin-h">
            <h2 id="pin-h">{if kiosk { "Or use your number and PIN" } else { "Student number and PIN" }}</h2>
            <ActionForm action=pin>
                <label for="number">"Student number"</label>
                <input id="number" name="number" autocomplete="username" required maxlength="32" />
                <label for="pin">"PIN"</label>
                <input id="pin" name="pin" type="password" inputmode="numeric" autocomplete="current-password" required maxlength="12" />
                <button type="submit">"Sign in"</button>
            </ActionForm>
            {form_error(pin.value(), &[])}
        </section>
        <p class="muted"><a href="/admin/sign-in">"Staff sign-in"</a></p>
    }
}

#[component]
pub fn AdminSignInPage() -> impl IntoView {
    let action = ServerAction::<AdminSignIn>::new();
    view! {
        <Title text="ConsultEase — staff sign-in" />
        <main class="page narrow">
            <h1>"Staff sign-in"</h1>
            <section class="panel">
                <ActionForm action>
                    <label for="username">"User name"</label>
                    <input id="username" name="username" autocomplete="username" required maxlength="64" />
                    <label for="password">"Password"</label>
                    <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="128" />
                    <button type="submit">"Sign in"</button>
                </ActionForm>
                {form_error(action.value(), &[])}
            </section>
        </main>
    }
}

#[component]
pub fn KioskEnrolPage() -> impl IntoView {
    let action = ServerAction::<EnrolKiosk>::new();
    view! {
        <Title text="ConsultEase — enrol this kiosk" />
        <main class="page narrow">
            <h1>"Enrol this kiosk"</h1>
            <p>"Enter the code from " <code>"consultease kiosk add"</code> " (valid 15 minutes, once)."</p>
            <section class="panel">
                <ActionForm action>
                    <label for="code">"Enrolment code"</label>
                    <input id="code" name="code" autocomplete="off" required maxlength="16" placeholder="XXXXX-XXXXX" />
                    <button type="submit">"Enrol"</button>
                </ActionForm>
                {form_error(action.value(), &[])}
            </section>
        </main>
    }
}

/// "Sign in", or the signed-in name with a sign-out button, in the page header.
#[component]
pub fn AccountBar() -> impl IntoView {
    let who = Resource::new(|| (), |_| get_viewer());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match who.await {
                    Ok(Viewer { me: Some(me), .. }) => view! { <SignedIn me /> }.into_any(),
                    _ => view! { <a class="sign-in" href="/sign-in">"Sign in"</a> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn SignedIn(me: Me) -> impl IntoView {
    let at_kiosk = me.at_kiosk;
    view! {
        <div class="account">
            <span class="who">{me.name}</span>
            {if me.admin {
                view! { <a href="/admin">"Dashboard"</a> }.into_any()
            } else {
                view! { <a href="/me">"My requests"</a> }.into_any()
            }}
            // A plain form: without JavaScript it posts, the server ends the session and redirects.
            // With it, the page signs out and reloads, so nothing of the student stays in memory.
            <form method="post" action="/api/sign_out" on:submit=move |ev| {
                ev.prevent_default();
                hard_sign_out();
            }>
                <button type="submit" class="secondary">"Sign out"</button>
            </form>
        </div>
        {at_kiosk.then(|| view! { <KioskIdle idle_ms=me.idle_ms /> })}
    }
}

/// Ends the session, then loads the page afresh (nothing of the student stays on screen or in
/// memory).
fn hard_sign_out() {
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async {
        let _ = crate::account::sign_out().await;
        let location = window().location();
        let to = if location.pathname().is_ok_and(|p| p.starts_with("/kiosk")) { "/kiosk" } else { "/" };
        let _ = location.replace(to);
    });
}

/// On a kiosk: a student who stops touching the screen is signed out after `idle_ms` (120 s), with
/// a countdown in the last 90 s. Any input starts the time again (and keeps the server-side session
/// alive, which ends after the same idle time).
#[component]
fn KioskIdle(idle_ms: i64) -> impl IntoView {
    let left = RwSignal::new(idle_ms / 1000);
    #[cfg(feature = "hydrate")]
    {
        use std::cell::Cell;
        use std::rc::Rc;
        let last_input = Rc::new(Cell::new(js_sys::Date::now()));
        let last_ping = Rc::new(Cell::new(js_sys::Date::now()));
        let on_input = {
            let (last_input, last_ping) = (last_input.clone(), last_ping.clone());
            move || {
                let now = js_sys::Date::now();
                last_input.set(now);
                left.set(idle_ms / 1000);
                // Keeps the server's session alive too, at most every 20 s.
                if now - last_ping.get() > 20_000.0 {
                    last_ping.set(now);
                    leptos::task::spawn_local(async {
                        let _ = get_viewer().await;
                    });
                }
            }
        };
        let handles = [
            window_event_listener(leptos::ev::pointerdown, {
                let f = on_input.clone();
                move |_| f()
            }),
            window_event_listener(leptos::ev::keydown, {
                let f = on_input.clone();
                move |_| f()
            }),
            window_event_listener(leptos::ev::touchstart, {
                let f = on_input.clone();
                move |_| f()
            }),
        ];
        let done = Rc::new(Cell::new(false));
        let tick = set_interval_with_handle(
            move || {
                let remaining = ((idle_ms as f64 - (js_sys::Date::now() - last_input.get())) / 1000.0).ceil() as i64;
                left.set(remaining.max(0));
                if remaining <= 0 && !done.replace(true) {
                    hard_sign_out();
                }
            },
            std::time::Duration::from_millis(250),
        )
        .ok();
        let cleanup = send_wrapper::SendWrapper::new((handles, tick));
        on_cleanup(move || {
            let (handles, tick) = cleanup.take();
            for h in handles {
                h.remove();
            }
            if let Some(t) = tick {
                t.clear();
            }
        });
    }
    view! {
        <Show when=move || { left.get() <= 90 }>
            <div class="idle-warning" role="alert" data-testid="idle-countdown">
                "Still there? Signing out in " <strong>{move || left.get()}</strong> " s — touch the screen to stay."
            </div>
        </Show>
    }
}
