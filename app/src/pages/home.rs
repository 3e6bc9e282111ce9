use crate::pages::board::BoardPage;
use crate::server_fns::get_system_info;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
fn Header(#[prop(optional)] kiosk: bool) -> impl IntoView {
    view! {
        <header class=if kiosk { "top kiosk" } else { "top" }>
            <div>
                <h1>"ConsultEase"</h1>
                <p class="tagline">"Who is available for consultation, live."</p>
            </div>
            <nav class="views" aria-label="Views">
                <a href="/" aria-current=(!kiosk).then_some("page")>"Board"</a>
                <a href="/kiosk" aria-current=kiosk.then_some("page")>"Kiosk"</a>
            </nav>
        </header>
    }
}

/// The board, with a small system panel at the bottom.
#[component]
pub fn Home() -> impl IntoView {
    view! {
        <Title text="ConsultEase — faculty board" />
        <Header />
        <main class="page">
            <h2 class="sr-only">"Faculty availability"</h2>
            <BoardPage />
            <SystemPanel />
        </main>
    }
}

/// The board for a touchscreen by the department door or a wall screen.
#[component]
pub fn Kiosk() -> impl IntoView {
    view! {
        <Title text="ConsultEase — kiosk" />
        <Header kiosk=true />
        <main class="page kiosk">
            <h2 class="sr-only">"Faculty availability"</h2>
            <BoardPage kiosk=true />
        </main>
    }
}

#[component]
fn SystemPanel() -> impl IntoView {
    let check = Action::new(|_: &()| get_system_info());
    let result = move || match check.value().get() {
        None => "Not checked yet.".to_string(),
        Some(Ok(info)) => {
            format!("Schema version {} on {}, server up for {} s.", info.schema_version, info.backend, info.uptime_s)
        }
        Some(Err(e)) => e.to_string(),
    };
    view! {
        <section class="panel system" aria-labelledby="system-h">
            <h2 id="system-h">"System"</h2>
            <button
                type="button"
                data-testid="check-server"
                on:click=move |_| {
                    check.dispatch(());
                }
                disabled=move || check.pending().get()
            >
                "Check server"
            </button>
            <output data-testid="server-info" aria-live="polite">
                {result}
            </output>
        </section>
    }
}
