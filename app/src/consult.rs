//! Consultation requests from the pages: server functions over the same store calls as the JSON
//! API (`/api/requests`). The student always comes from the session.

use crate::AppError;
use domain::{FacultyView, MyRequests};
pub use domain::{Ticket, TicketLink};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the request form shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestForm {
    pub faculty: FacultyView,
    /// Available colleagues of the same department (when the faculty member is away or offline).
    pub colleagues: Vec<FacultyView>,
    pub signed_in: bool,
    /// Their office hours as the card says them ("Next office hours Wed 09:30–11:00").
    #[serde(default)]
    pub hours: Option<String>,
    /// "Usually back around 13:10", for someone away with enough history.
    #[serde(default)]
    pub back: Option<String>,
}

/// What `/me` shows: the student's requests and, at a kiosk, a ticket link for each open one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyPage {
    pub mine: MyRequests,
    pub links: Vec<TicketLink>,
}

#[server(endpoint = "request_form")]
pub async fn get_request_form(faculty_id: i64) -> Result<RequestForm, AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            let faculty = ctx
                .store
                .faculty(faculty_id)
                .await?
                .filter(|f| f.active)
                .ok_or_else(|| AppError::NotFound("No such faculty member.".into()))?;
            let colleagues = match faculty.status {
                domain::Status::Available | domain::Status::Busy => Vec::new(),
                _ => ctx.store.available_colleagues(faculty_id).await?,
            };
            // Not signed in as a student: the form asks them to. Any other failure is an error.
            let signed_in = match crate::ssr::session::student().await {
                Ok(_) => true,
                Err(AppError::Unauthorized | AppError::Forbidden) => false,
                Err(e) => return Err(e),
            };
            let now = store::now_ms();
            let offset = ctx.local.utc_offset_min(now);
            let hours = crate::format::hours_line(&faculty, now, offset);
            let back = match faculty.status {
                domain::Status::Away | domain::Status::Offline => {
                    crate::server_fns::back(&ctx.store, Some(faculty.id), now, offset)
                        .await?
                        .line(faculty.id, now, offset)
                }
                _ => None,
            };
            Ok(RequestForm { faculty, colleagues, signed_in, hours, back })
        }
        .await,
    )
}

#[server(endpoint = "place_request")]
pub async fn place_request(
    faculty_id: i64,
    course: Option<String>,
    message: String,
    hold: Option<String>,
) -> Result<(), AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            let (student_id, _) = crate::ssr::session::student().await?;
            let new = store::NewRequest { student_id, faculty_id, course, message, hold: hold.is_some() };
            ctx.store.place_request(&new).await?;
            leptos_axum::redirect("/me");
            Ok(())
        }
        .await,
    )
}

#[server(endpoint = "my_requests")]
pub async fn get_my_requests() -> Result<MyPage, AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            let (student_id, session) = crate::ssr::session::student().await?;
            let mine = ctx.store.student_requests(student_id).await?;
            let mut links = Vec::new();
            if matches!(session.principal, auth::Principal::Student { kiosk_id: Some(_), .. }) {
                let now = store::now_ms();
                for r in mine.requests.iter().filter(|r| r.state.is_open()) {
                    links.push(crate::ssr::tickets::link(&ctx, r.id, now).await?);
                }
            }
            Ok(MyPage { mine, links })
        }
        .await,
    )
}

/// A ticket link opened (on a phone, no sign-in needed).
#[server(endpoint = "ticket")]
pub async fn get_ticket(token: String) -> Result<Ticket, AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            crate::ssr::tickets::open(&ctx, &token, store::now_ms()).await
        }
        .await,
    )
}

#[server(endpoint = "cancel_request")]
pub async fn cancel_request(id: i64) -> Result<(), AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            let (student_id, _) = crate::ssr::session::student().await?;
            let actor = store::Actor::Student(student_id);
            ctx.store.change_request(id, domain::consultation::Input::Cancel, &actor, None).await?;
            Ok(())
        }
        .await,
    )
}
