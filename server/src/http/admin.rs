//! The admin JSON API (docs/API.md): versioned edits that never overwrite silently. Every route
//! takes the admin from the session (`AdminSession`: 401 without one, 403 for a student's); the
//! CSRF guard covers every state change. Each edit is one store call: compare-and-set, the board's
//! event and the audit row (who, before, after, from where) in one transaction.

use super::account::{AdminSession, Body, ClientInfo};
use super::{AppState, HttpError};
use app::AppError;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::faculty::{FacultyFields, check};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/faculty/{id}", get(faculty).put(edit_faculty))
}

async fn faculty(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
) -> Result<Response, HttpError> {
    let record =
        state.store.faculty_record(id).await?.ok_or_else(|| AppError::NotFound(format!("no faculty member {id}")))?;
    let mut res = Json(record).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(res)
}

#[derive(Deserialize)]
struct FacultyEdit {
    version: i64,
    #[serde(flatten)]
    fields: FacultyFields,
}

/// `PUT /api/admin/faculty/{id}` `{"version",…fields}`: 200 with the new row; 409
/// `{"error":"conflict","current":{…}}` when the row changed since `version`; 400 with the field.
async fn edit_faculty(
    State(state): State<AppState>,
    AdminSession(admin): AdminSession,
    ClientInfo(client): ClientInfo,
    Path(id): Path<i64>,
    Body(edit): Body<FacultyEdit>,
) -> Result<Response, HttpError> {
    let fields = check(&edit.fields).map_err(|e| AppError::invalid(e.field, e.message))?;
    let audit = store::AuditEntry {
        actor: admin.principal.actor(),
        action: "faculty_edited".into(),
        subject: Some(format!("faculty:{id}")),
        detail: None,
        client_addr: client.addr,
        user_agent: client.user_agent.map(|u| u.chars().take(200).collect()),
    };
    match state.store.edit_faculty(id, edit.version, &fields, &audit).await? {
        store::Edit::Saved(row) => Ok(Json(row).into_response()),
        store::Edit::Conflict(current) => {
            let body = serde_json::json!({
                "error": "conflict",
                "message": "Someone else saved this faculty member since you opened it.",
                "current": current,
            });
            Ok((StatusCode::CONFLICT, Json(body)).into_response())
        }
    }
}
