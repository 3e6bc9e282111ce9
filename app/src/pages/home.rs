use crate::server_fns::get_system_info;
use leptos::prelude::*;

#[component]
pub fn Home() -> impl IntoView {
    let check = Action::new(|_: &()| get_system_info());
    let result = move || match check.value().get() {
        None => "Not checked yet.".to_string(),
        Some(Ok(info)) => {
            format!("Schema version {} on {}, server up for {} s.", info.schema_version, info.backend, info.uptime_s)
        }
        Some(Err(e)) => e.to_string(),
    };
    view! {
        <header class="top">
            <h1>"ConsultEase"</h1>
            <p class="tagline">"Who is available for consultation, live."</p>
        </header>
        <main class="page">
            <section class="panel" aria-labelledby="system-h">
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
                <output data-testid="server-info" aria-live="polite">{result}</output>
            </section>
        </main>
    }
}
