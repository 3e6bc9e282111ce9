use crate::pages::Header;
use crate::pages::board::BoardPage;
use leptos::prelude::*;
use leptos_meta::Title;

/// The board.
#[component]
pub fn Home() -> impl IntoView {
    view! {
        <Title text="ConsultEase — faculty board" />
        <Header current="/" />
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
        <Header current="/kiosk" />
        <main class="page kiosk">
            <h2 class="sr-only">"Faculty availability"</h2>
            <BoardPage kiosk=true />
        </main>
    }
}
