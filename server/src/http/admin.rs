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
use axum::routing::{get, put};
use axum::{Json, Router};
use domain::faculty::{FacultyFields, check};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/faculty/{id}", get(faculty).put(edit_faculty))
        .route("/api/admin/faculty/{id}/override", put(set_override).delete(clear_override))
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
    match state.store.edit_faculty(id, edit.version, &fields, &audit(&admin, client, "faculty_edited", id)).await? {
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

#[derive(Deserialize)]
struct Override {
    status: String,
    note: Option<String>,
    /// Unix ms; absent: until cleared.
    until: Option<i64>,
}

fn audit(admin: &auth::Session, client: auth::Client, action: &str, id: i64) -> store::AuditEntry {
    store::AuditEntry {
        actor: admin.principal.actor(),
        action: action.into(),
        subject: Some(format!("faculty:{id}")),
        detail: None,
        client_addr: client.addr,
        user_agent: client.user_agent.map(|u| u.chars().take(200).collect()),
    }
}

/// `PUT /api/admin/faculty/{id}/override` `{"status","note"?,"until"?}`: the status shown until
/// `until` (or until cleared), above whatever the desk says; 200 with the board's row.
async fn set_override(
    State(state): State<AppState>,
    AdminSession(admin): AdminSession,
    ClientInfo(client): ClientInfo,
    Path(id): Path<i64>,
    Body(o): Body<Override>,
) -> Result<Response, HttpError> {
    let ov = domain::faculty::check_override(&o.status, o.note.as_deref(), o.until, store::now_ms())
        .map_err(|e| AppError::invalid(e.field, e.message))?;
    let view = state.store.set_override(id, Some(&ov), &audit(&admin, client, "override_set", id)).await?;
    Ok(Json(view).into_response())
}

/// `DELETE /api/admin/faculty/{id}/override`: the desk decides again; 200 with the board's row.
async fn clear_override(
    State(state): State<AppState>,
    AdminSession(admin): AdminSession,
    ClientInfo(client): ClientInfo,
    Path(id): Path<i64>,
) -> Result<Response, HttpError> {
    let view = state.store.set_override(id, None, &audit(&admin, client, "override_cleared", id)).await?;
    Ok(Json(view).into_response())
}
