use crate::pages::AccountBar;
use crate::pages::board::BoardPage;
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
                <AccountBar />
            </nav>
        </header>
    }
}

/// The board.
#[component]
pub fn Home() -> impl IntoView {
    view! {
        <Title text="ConsultEase — faculty board" />
        <Header />
        <main class="page">
            <h2 class="sr-only">"Faculty availability"</h2>
            <BoardPage />
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
