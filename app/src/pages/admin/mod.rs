//! The admin dashboard (`/admin/…`): faculty, desks, students, kiosks, consultations, the audit
//! log and the system page.
//! Each page loads through an `admin_…` server function (`crate::admin`), which refuses anyone but
//! a signed-in admin; the page then says so and links to the staff sign-in.

mod audit;
mod consultations;
mod desks;
mod faculty;
mod kiosks;
mod students;
mod system;

pub use audit::AuditPage;
pub use consultations::ConsultationsPage;
pub use desks::DesksPage;
pub use faculty::{FacultyEditPage, FacultyListPage};
pub use kiosks::KiosksPage;
pub use students::StudentsPage;
pub use system::SystemPage;

use crate::AppError;
use crate::pages::Header;
use crate::pages::{field_error, form_error};
use leptos::prelude::*;
use leptos_meta::Title;

/// The frame of every admin page: the header, the dashboard's tabs, and the page.
#[component]
fn AdminFrame(title: &'static str, current: &'static str, children: Children) -> impl IntoView {
    let tabs = [
        ("/admin/faculty", "Faculty"),
        ("/admin/desks", "Desks"),
        ("/admin/students", "Students"),
        ("/admin/kiosks", "Kiosks"),
        ("/admin/consultations", "Consultations"),
        ("/admin/audit", "Audit log"),
        ("/admin/system", "System"),
    ];
    view! {
        <Title text=format!("ConsultEase admin — {title}") />
        <Header />
        <nav class="admin-tabs" aria-label="Dashboard">
            {tabs
                .into_iter()
                .map(|(href, label)| {
                    view! { <a href=href aria-current=(href == current).then_some("page")>{label}</a> }
                })
                .collect_view()}
        </nav>
        <main class="page admin">
            <h2>{title}</h2>
            {children()}
        </main>
    }
}

/// What a page shows when its data did not load: sign in (or not allowed), or the error.
fn refusal(e: AppError) -> AnyView {
    crate::error::set_status(&e);
    match e {
        AppError::Unauthorized => view! {
            <p class="error" role="alert">"Please " <a href="/admin/sign-in">"sign in as staff"</a> " to use the dashboard."</p>
        }
        .into_any(),
        AppError::Forbidden => view! {
            <p class="error" role="alert">"The dashboard is for staff. " <a href="/admin/sign-in">"Sign in as staff"</a></p>
        }
        .into_any(),
        e => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
    }
}

/// "4 min ago", "never".
fn seen(last: Option<i64>, now: i64) -> String {
    last.map_or_else(|| "never".to_owned(), |t| format!("{} ago", crate::format::ago(now - t)))
}
