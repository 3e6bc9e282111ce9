//! The admin JSON API (docs/API.md): versioned edits that never overwrite silently. Every route
//! takes the admin from the session (`AdminSession`: 401 without one, 403 for a student's); the
//! CSRF guard covers every state change. Each edit is one store call: compare-and-set, the board's
//! event and the audit row (who, before, after, from where) in one transaction.

use super::account::{AdminSession, Body, ClientInfo};
use super::{AppState, HttpError};
use app::AppError;
use axum::extract::{Path, Query, State};
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
        .route("/api/admin/audit", get(audit_json))
        .route("/api/admin/audit.csv", get(audit_csv))
        .route("/api/admin/students.csv", get(students_csv))
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

/// The filters as query parameters (not `#[serde(flatten)]`: flattened query values arrive as
/// strings and numbers would not parse).
#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    limit: Option<i64>,
}

/// At most this many entries per read (the newest first; narrow the filter for older ones).
const AUDIT_MAX: i64 = 10_000;

async fn audit_rows(state: &AppState, q: &AuditQuery) -> Result<Vec<store::AuditRow>, HttpError> {
    let limit = q.limit.unwrap_or(1_000).clamp(1, AUDIT_MAX);
    let filter = store::AuditFilter { actor: q.actor.clone(), action: q.action.clone(), from: q.from, to: q.to };
    Ok(state.store.audit_search(&filter, limit).await?)
}

/// `GET /api/admin/audit?actor=&action=&from=&to=&limit=`: `{"entries":[…]}`, newest first.
async fn audit_json(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Query(q): Query<AuditQuery>,
) -> Result<Response, HttpError> {
    let entries = audit_rows(&state, &q).await?;
    let mut res = Json(serde_json::json!({ "entries": entries })).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /api/admin/audit.csv` (the same filters): `text/csv` with a header row.
async fn audit_csv(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Query(q): Query<AuditQuery>,
) -> Result<Response, HttpError> {
    let rows = audit_rows(&state, &q).await?;
    let mut out = csv_row(&["id", "at", "actor", "action", "subject", "detail", "client_addr", "user_agent"]);
    for r in &rows {
        let at = domain::time::iso_utc(r.at);
        let id = r.id.to_string();
        let cells = [
            id.as_str(),
            at.as_str(),
            r.actor.as_str(),
            r.action.as_str(),
            r.subject.as_deref().unwrap_or(""),
            r.detail.as_deref().unwrap_or(""),
            r.client_addr.as_deref().unwrap_or(""),
            r.user_agent.as_deref().unwrap_or(""),
        ];
        out.push_str(&csv_row(&cells));
    }
    Ok(csv_download("audit.csv", out))
}

/// `GET /api/admin/students.csv`: every student, in the columns `student import` reads (plus
/// whether a PIN is set and whether they are active); PINs are never exported.
async fn students_csv(State(state): State<AppState>, AdminSession(_): AdminSession) -> Result<Response, HttpError> {
    let mut out = csv_row(&["number", "name", "email", "department", "card", "has_pin", "active"]);
    for s in state.store.list_students().await? {
        let yes = |b: bool| if b { "yes" } else { "no" };
        out.push_str(&csv_row(&[
            &s.number,
            &s.name,
            s.email.as_deref().unwrap_or(""),
            s.department.as_deref().unwrap_or(""),
            s.card_uid.as_deref().unwrap_or(""),
            yes(s.has_pin),
            yes(s.active),
        ]));
    }
    Ok(csv_download("students.csv", out))
}

/// One CSV line (cells defused and quoted by [`csv_cell`]) with its CRLF.
fn csv_row(cells: &[&str]) -> String {
    let mut line = cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

fn csv_download(name: &'static str, body: String) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut res = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body)
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&disposition) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break. A cell a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`:
/// audit entries hold what strangers typed (a failed sign-in records the name tried).
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"http://evil\")"), "\"'=HYPERLINK(\"\"http://evil\"\")\"");
        assert_eq!(csv_cell("-1+2"), "'-1+2");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }
}
