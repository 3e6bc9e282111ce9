//! The admin dashboard's server functions (`/admin/…` pages call them; so may a script). Every one
//! is named `admin_…` and starts by checking the session: no session is `Unauthorized`, a student's
//! is `Forbidden` (tested by calling each directly: `server/tests/admin_pages.rs`). Every change is
//! one store call that writes its audit row in the same transaction; edits name the row's version
//! and a stale one comes back as [`Saved::Conflict`] with the row as it now is, never an overwrite.

// A server function takes a form's fields as its arguments: the faculty form has eight, and the
// function the macro generates for the browser carries them all.
#![allow(clippy::too_many_arguments)]

use crate::AppError;
use domain::faculty::FacultyRecord;
use domain::{FacultyView, Snapshot};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The faculty list: the board's snapshot (live from its cursor) and the server's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacultyList {
    pub snapshot: Snapshot,
    pub now: i64,
    /// Deactivated faculty members (id, name): not on the board, reactivated from their page.
    pub inactive: Vec<(i64, String)>,
}

/// One faculty member on the edit page: the record the form edits, and the board's row (status,
/// override).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacultyDetail {
    pub record: FacultyRecord,
    pub view: FacultyView,
    /// Unix ms when read.
    pub now: i64,
}

/// What became of a save.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Saved {
    Saved(FacultyRecord),
    /// Someone saved the row since the version the form had: nothing was written; the row as it is.
    Conflict(FacultyRecord),
}

/// A desk unit in the admin's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskLine {
    pub id: String,
    pub faculty_id: Option<i64>,
    pub faculty_name: Option<String>,
    pub online: bool,
    pub last_seen: Option<i64>,
    /// `boot:seq` of the newest message applied.
    pub clock: Option<String>,
    pub has_credential: bool,
    /// What its newest heartbeat said about itself (firmware, signal, uptime), if it said anything.
    pub info: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskList {
    pub desks: Vec<DeskLine>,
    /// Faculty members without a desk (id, name): who a new desk can be bound to.
    pub unbound: Vec<(i64, String)>,
    pub now: i64,
}

/// A desk's MQTT credential, shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskCredential {
    pub desk: String,
    pub password: String,
}

/// One audit entry as the page shows it (the CSV has every column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    pub id: i64,
    /// `2026-11-30 14:05:09 UTC`
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
    pub client_addr: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskLine {
    pub id: i64,
    pub name: String,
    /// "enrolled", "revoked", "code valid 12 min", "code expired".
    pub state: String,
    pub revoked: bool,
    pub last_seen: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskList {
    pub kiosks: Vec<KioskLine>,
    pub now: i64,
}

/// A new kiosk's one-time enrolment code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskCode {
    pub id: i64,
    pub name: String,
    pub code: String,
}

/// What the system page shows: the same numbers as `/metrics` and `/readyz`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemFacts {
    pub backend: String,
    pub schema_version: i64,
    /// "connected", "not subscribed", "disconnected", or `None` when this process does not ingest.
    pub broker: Option<String>,
    pub desks_online: i64,
    pub desks: i64,
    pub live_streams: i64,
    pub mqtt_received: u64,
    pub mqtt_applied: u64,
    pub mqtt_stale: u64,
    pub mqtt_rejected: u64,
    pub dead_letters: i64,
    pub uptime_s: u64,
    /// Unix ms when read (rates are differences between two readings).
    pub now: i64,
}

/// A student in the admin's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentLine {
    pub id: i64,
    pub number: String,
    pub name: String,
    pub email: Option<String>,
    pub department: Option<String>,
    pub card: Option<String>,
    pub has_pin: bool,
    pub active: bool,
    pub version: i64,
}

/// What became of a student edit (like [`Saved`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StudentSaved {
    Saved(StudentLine),
    Conflict(StudentLine),
}

/// A roster import: checked (and, once confirmed, written).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub rows: usize,
    /// Rows that would be (or were) added.
    pub valid: usize,
    /// (row, field, reason) for every problem; row 1 is the first data row.
    pub errors: Vec<(usize, String, String)>,
    /// How many were written: `None` for a preview.
    pub imported: Option<usize>,
}

/// A consultation request in the admin's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    pub id: i64,
    pub ticket: String,
    pub state: domain::consultation::State,
    pub faculty_id: i64,
    pub faculty_name: String,
    pub student: String,
    pub course: Option<String>,
    pub message: String,
    pub note: Option<String>,
    /// `2026-11-30 14:05:09 UTC`
    pub requested: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestList {
    pub requests: Vec<RequestLine>,
    /// Everyone (id, name), for the faculty filter.
    pub faculty: Vec<(i64, String)>,
}

#[server(endpoint = "admin_faculty")]
pub async fn admin_faculty() -> Result<FacultyList, AppError> {
    crate::ssr::respond(ssr::faculty().await)
}

#[server(endpoint = "admin_faculty_record")]
pub async fn admin_faculty_record(id: i64) -> Result<FacultyDetail, AppError> {
    crate::ssr::respond(ssr::faculty_record(id).await)
}

#[server(endpoint = "admin_faculty_create")]
pub async fn admin_faculty_create(
    name: String,
    department: String,
    email: Option<String>,
    room: Option<String>,
) -> Result<FacultyRecord, AppError> {
    crate::ssr::respond(ssr::create_faculty(name, department, email, room).await)
}

#[server(endpoint = "admin_faculty_save")]
pub async fn admin_faculty_save(
    id: i64,
    version: i64,
    name: String,
    department: String,
    email: Option<String>,
    room: Option<String>,
    photo_url: Option<String>,
    office_hours: Option<String>,
) -> Result<Saved, AppError> {
    let fields = domain::faculty::FacultyFields { name, department, email, room, photo_url, office_hours };
    crate::ssr::respond(ssr::save_faculty(id, version, fields).await)
}

/// Sets faculty member `id`'s override: `status`, a `note` for the board, ending after `minutes`
/// (0 or none: until cleared).
#[server(endpoint = "admin_override_set")]
pub async fn admin_override_set(
    id: i64,
    status: String,
    note: Option<String>,
    minutes: Option<i64>,
) -> Result<FacultyView, AppError> {
    crate::ssr::respond(ssr::set_override(id, status, note, minutes).await)
}

/// Deactivates (`active` = "false") or reactivates ("true") faculty member `id`.
#[server(endpoint = "admin_faculty_active")]
pub async fn admin_faculty_active(id: i64, active: String) -> Result<FacultyView, AppError> {
    crate::ssr::respond(ssr::faculty_active(id, active == "true").await)
}

#[server(endpoint = "admin_override_clear")]
pub async fn admin_override_clear(id: i64) -> Result<FacultyView, AppError> {
    crate::ssr::respond(ssr::clear_override(id).await)
}

#[server(endpoint = "admin_desks")]
pub async fn admin_desks() -> Result<DeskList, AppError> {
    crate::ssr::respond(ssr::desks().await)
}

#[server(endpoint = "admin_desk_register")]
pub async fn admin_desk_register(desk: String, faculty_id: i64) -> Result<DeskCredential, AppError> {
    crate::ssr::respond(ssr::register_desk(desk, faculty_id).await)
}

#[server(endpoint = "admin_desk_rotate")]
pub async fn admin_desk_rotate(desk: String) -> Result<DeskCredential, AppError> {
    crate::ssr::respond(ssr::rotate_desk(desk).await)
}

/// Binds desk `desk` to faculty member `faculty_id`, or unbinds it when that is empty.
#[server(endpoint = "admin_desk_bind")]
pub async fn admin_desk_bind(desk: String, faculty_id: Option<String>) -> Result<(), AppError> {
    crate::ssr::respond(ssr::bind_desk(desk, faculty_id).await)
}

/// Retires desk `desk`: its credential goes with it; its faculty member has no desk from now.
#[server(endpoint = "admin_desk_retire")]
pub async fn admin_desk_retire(desk: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::retire_desk(desk).await)
}

#[server(endpoint = "admin_desk_reset_clock")]
pub async fn admin_desk_reset_clock(desk: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::reset_clock(desk).await)
}

/// The audit log, newest first, filtered by actor and action (exact) and by UTC dates
/// (`YYYY-MM-DD`, both ends included).
#[server(endpoint = "admin_audit")]
pub async fn admin_audit(
    actor: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<Vec<AuditLine>, AppError> {
    crate::ssr::respond(ssr::audit(actor, action, from, to).await)
}

#[server(endpoint = "admin_kiosks")]
pub async fn admin_kiosks() -> Result<KioskList, AppError> {
    crate::ssr::respond(ssr::kiosks().await)
}

#[server(endpoint = "admin_kiosk_add")]
pub async fn admin_kiosk_add(name: String) -> Result<KioskCode, AppError> {
    crate::ssr::respond(ssr::add_kiosk(name).await)
}

#[server(endpoint = "admin_kiosk_revoke")]
pub async fn admin_kiosk_revoke(id: i64) -> Result<(), AppError> {
    crate::ssr::respond(ssr::revoke_kiosk(id).await)
}

#[server(endpoint = "admin_students")]
pub async fn admin_students() -> Result<Vec<StudentLine>, AppError> {
    crate::ssr::respond(ssr::students().await)
}

#[server(endpoint = "admin_student_add")]
pub async fn admin_student_add(
    number: String,
    name: String,
    email: Option<String>,
    department: Option<String>,
    card: Option<String>,
) -> Result<StudentLine, AppError> {
    crate::ssr::respond(ssr::add_student(number, name, email, department, card).await)
}

#[server(endpoint = "admin_student_save")]
pub async fn admin_student_save(
    id: i64,
    version: i64,
    name: String,
    email: Option<String>,
    department: Option<String>,
) -> Result<StudentSaved, AppError> {
    crate::ssr::respond(ssr::save_student(id, version, name, email, department).await)
}

/// Sets a student's card UID; empty clears it.
#[server(endpoint = "admin_student_card")]
pub async fn admin_student_card(number: String, card: Option<String>) -> Result<(), AppError> {
    crate::ssr::respond(ssr::student_card(number, card).await)
}

/// Sets a new PIN (their sessions end).
#[server(endpoint = "admin_student_pin")]
pub async fn admin_student_pin(number: String, pin: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::student_pin(number, pin).await)
}

/// Deactivates a student: no more sign-ins, their sessions end; their history stays.
#[server(endpoint = "admin_student_disable")]
pub async fn admin_student_disable(number: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::disable_student(number).await)
}

/// Checks a roster CSV and, with `confirm`, writes it: every row when all are valid, or with
/// `skip_invalid` the valid ones. Nothing is written without `confirm`.
#[server(endpoint = "admin_students_import")]
pub async fn admin_students_import(
    csv: String,
    confirm: Option<String>,
    skip_invalid: Option<String>,
) -> Result<ImportReport, AppError> {
    crate::ssr::respond(ssr::import(csv, confirm.is_some(), skip_invalid.is_some()).await)
}

/// Requests across faculty, newest first: `state` is a state's name, `open` (the default: not
/// finished) or `all`; `faculty` an id; `from`/`to` UTC dates of the request.
#[server(endpoint = "admin_requests")]
pub async fn admin_requests(
    state: Option<String>,
    faculty: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<RequestList, AppError> {
    crate::ssr::respond(ssr::requests(state, faculty, from, to).await)
}

/// Cancels request `id` with a reason the student sees (and the desk drops it from its queue).
#[server(endpoint = "admin_request_cancel")]
pub async fn admin_request_cancel(id: i64, reason: String) -> Result<(), AppError> {
    crate::ssr::respond(ssr::cancel_request(id, reason).await)
}

#[server(endpoint = "admin_system")]
pub async fn admin_system() -> Result<SystemFacts, AppError> {
    crate::ssr::respond(ssr::system().await)
}

/// The rows of the audit filter as the audit page and its CSV link share them.
pub fn audit_query(actor: &str, action: &str, from: &str, to: &str) -> String {
    let pairs = [("actor", actor), ("action", action), ("from", from), ("to", to)];
    pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use crate::ssr::AppContext;
    use crate::ssr::session::client;
    use auth::Session;
    use domain::faculty::{FacultyFields, check, check_override};
    use store::AuditEntry;

    /// The signed-in admin, the context and the audit entry maker: every function starts here.
    struct Admin {
        ctx: AppContext,
        session: Session,
        client: auth::Client,
    }

    impl Admin {
        async fn check() -> Result<Admin, AppError> {
            let ctx = AppContext::current()?;
            let session = crate::ssr::session::admin().await?;
            let parts =
                use_context::<http::request::Parts>().ok_or_else(|| crate::ssr::internal("request parts missing"))?;
            Ok(Admin { ctx, session, client: client(&parts) })
        }

        fn entry(&self, action: &str, subject: String) -> AuditEntry {
            self.ctx.auth.entry(&self.session.principal.actor(), action, Some(subject), None, &self.client)
        }
    }

    fn field_error(e: domain::faculty::FieldError) -> AppError {
        AppError::invalid(e.field, e.message)
    }

    pub async fn faculty() -> Result<FacultyList, AppError> {
        let a = Admin::check().await?;
        let inactive = a.ctx.store.inactive_faculty().await?;
        Ok(FacultyList { snapshot: a.ctx.store.snapshot().await?, now: store::now_ms(), inactive })
    }

    pub async fn faculty_record(id: i64) -> Result<FacultyDetail, AppError> {
        let a = Admin::check().await?;
        let missing = || AppError::NotFound(format!("No faculty member {id}."));
        let record = a.ctx.store.faculty_record(id).await?.ok_or_else(missing)?;
        let view = a.ctx.store.faculty(id).await?.ok_or_else(missing)?;
        Ok(FacultyDetail { record, view, now: store::now_ms() })
    }

    pub async fn create_faculty(
        name: String,
        department: String,
        email: Option<String>,
        room: Option<String>,
    ) -> Result<FacultyRecord, AppError> {
        let a = Admin::check().await?;
        let fields =
            check(&FacultyFields { name, department, email, room, ..Default::default() }).map_err(field_error)?;
        let record = a.ctx.store.create_faculty(&fields, &a.entry("faculty_added", String::new())).await.map_err(
            |e| match e {
                store::StoreError::Conflict(m) => AppError::invalid("email", m),
                e => e.into(),
            },
        )?;
        leptos_axum::redirect(&format!("/admin/faculty/{}", record.id));
        Ok(record)
    }

    pub async fn save_faculty(id: i64, version: i64, fields: FacultyFields) -> Result<Saved, AppError> {
        let a = Admin::check().await?;
        let fields = check(&fields).map_err(field_error)?;
        let entry = a.entry("faculty_edited", format!("faculty:{id}"));
        match a.ctx.store.edit_faculty(id, version, &fields, &entry).await {
            Ok(store::Edit::Saved(r)) => Ok(Saved::Saved(r)),
            // A conflict is an answer, not a failure: the page shows both sides. It goes out as a
            // 200 (the server-fn client reads any 4xx body as the error type, not as `Saved`);
            // scripts that want the 409 use `PUT /api/admin/faculty/{id}`.
            Ok(store::Edit::Conflict(current)) => Ok(Saved::Conflict(current)),
            Err(store::StoreError::Conflict(m)) => Err(AppError::invalid("email", m)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_override(
        id: i64,
        status: String,
        note: Option<String>,
        minutes: Option<i64>,
    ) -> Result<FacultyView, AppError> {
        let a = Admin::check().await?;
        let now = store::now_ms();
        let minutes = minutes.filter(|m| *m != 0);
        if minutes.is_some_and(|m| !(1..=7 * 24 * 60).contains(&m)) {
            return Err(AppError::invalid("minutes", "The length must be 1 minute to 7 days (or until cleared)."));
        }
        let until = minutes.map(|m| now + m * 60_000);
        let ov = check_override(&status, note.as_deref(), until, now).map_err(field_error)?;
        Ok(a.ctx.store.set_override(id, Some(&ov), &a.entry("override_set", format!("faculty:{id}"))).await?)
    }

    pub async fn faculty_active(id: i64, active: bool) -> Result<FacultyView, AppError> {
        let a = Admin::check().await?;
        let action = if active { "faculty_reactivated" } else { "faculty_deactivated" };
        Ok(a.ctx.store.set_faculty_active(id, active, &a.entry(action, format!("faculty:{id}"))).await?)
    }

    pub async fn clear_override(id: i64) -> Result<FacultyView, AppError> {
        let a = Admin::check().await?;
        Ok(a.ctx.store.set_override(id, None, &a.entry("override_cleared", format!("faculty:{id}"))).await?)
    }

    pub async fn desks() -> Result<DeskList, AppError> {
        let a = Admin::check().await?;
        let store = &a.ctx.store;
        let (desks, snapshot, hashes) =
            (store.list_desks().await?, store.snapshot().await?, store.desk_mqtt_hashes().await?);
        let name = |id: i64| snapshot.faculty.iter().find(|f| f.id == id).map(|f| f.name.clone());
        let with_credential: std::collections::HashSet<String> =
            hashes.into_iter().filter(|(_, h)| h.is_some()).map(|(d, _)| d).collect();
        let bound: std::collections::HashSet<i64> = desks.iter().filter_map(|d| d.faculty_id).collect();
        let lines = desks
            .into_iter()
            .map(|d| DeskLine {
                faculty_name: d.faculty_id.and_then(name),
                clock: d.boot.zip(d.seq).map(|(b, s)| format!("{b}:{s}")),
                has_credential: with_credential.contains(&d.id),
                info: a.ctx.system.desk_info(&d.id),
                id: d.id,
                faculty_id: d.faculty_id,
                online: d.online,
                last_seen: d.last_seen,
            })
            .collect();
        let unbound =
            snapshot.faculty.iter().filter(|f| !bound.contains(&f.id)).map(|f| (f.id, f.name.clone())).collect();
        Ok(DeskList { desks: lines, unbound, now: store::now_ms() })
    }

    fn new_credential() -> Result<(String, String), AppError> {
        let password = auth::mqtt_password::generate().map_err(crate::ssr::internal)?;
        let hash =
            auth::mqtt_password::hash(&password, auth::mqtt_password::ITERATIONS).map_err(crate::ssr::internal)?;
        Ok((password, hash))
    }

    pub async fn register_desk(desk: String, faculty_id: i64) -> Result<DeskCredential, AppError> {
        let a = Admin::check().await?;
        let desk = desk.trim().to_owned();
        if !domain::protocol::valid_desk_id(&desk) {
            return Err(AppError::invalid("desk", "A desk id is 1 to 64 characters of A-Z, a-z, 0-9, _ and -."));
        }
        let (password, hash) = new_credential()?;
        let entry = a.entry("desk_registered", format!("desk:{desk}"));
        a.ctx.store.register_desk(&desk, faculty_id, &hash, &entry).await.map_err(|e| match e {
            store::StoreError::Conflict(m) => AppError::invalid("desk", m),
            store::StoreError::NotFound(m) => AppError::invalid("faculty_id", m),
            e => e.into(),
        })?;
        Ok(DeskCredential { desk, password })
    }

    pub async fn rotate_desk(desk: String) -> Result<DeskCredential, AppError> {
        let a = Admin::check().await?;
        let (password, hash) = new_credential()?;
        let entry = a.entry("desk_credential_rotated", format!("desk:{desk}"));
        a.ctx.store.set_desk_mqtt_hash(&desk, &hash, Some(&entry)).await?;
        Ok(DeskCredential { desk, password })
    }

    pub async fn bind_desk(desk: String, faculty_id: Option<String>) -> Result<(), AppError> {
        let a = Admin::check().await?;
        let to = match faculty_id.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(f) => Some(f.parse::<i64>().map_err(|_| AppError::invalid("faculty_id", "No such faculty member."))?),
        };
        let action = if to.is_some() { "desk_bound" } else { "desk_unbound" };
        let mut entry = a.entry(action, format!("desk:{desk}"));
        entry.detail = to.map(|f| serde_json::json!({ "faculty": f }).to_string());
        a.ctx.store.bind_desk(&desk, to, &entry).await.map_err(|e| match e {
            store::StoreError::Conflict(m) => AppError::invalid("faculty_id", m),
            e => e.into(),
        })
    }

    pub async fn retire_desk(desk: String) -> Result<(), AppError> {
        let a = Admin::check().await?;
        Ok(a.ctx.store.retire_desk(&desk, &a.entry("desk_retired", format!("desk:{desk}"))).await?)
    }

    pub async fn reset_clock(desk: String) -> Result<(), AppError> {
        let a = Admin::check().await?;
        let entry = a.entry("desk_clock_reset", format!("desk:{desk}"));
        Ok(a.ctx.store.reset_desk_clock(&desk, Some(&entry)).await?)
    }

    /// At most this many entries on the page (the CSV export takes more).
    const AUDIT_PAGE: i64 = 500;

    pub async fn audit(
        actor: Option<String>,
        action: Option<String>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<AuditLine>, AppError> {
        let _a = Admin::check().await?;
        let ctx = AppContext::current()?;
        let text = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let filter = store::AuditFilter {
            actor: text(actor),
            action: text(action),
            from: date("from", from)?,
            // Up to the end of the `to` day (the filter's end is exclusive).
            to: date("to", to)?.map(|t| t + 86_400_000),
        };
        let rows = ctx.store.audit_search(&filter, AUDIT_PAGE).await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditLine {
                id: r.id,
                at: domain::time::short_utc(r.at),
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                detail: r.detail,
                client_addr: r.client_addr,
            })
            .collect())
    }

    pub async fn kiosks() -> Result<KioskList, AppError> {
        let a = Admin::check().await?;
        let now = store::now_ms();
        let kiosks = a
            .ctx
            .store
            .list_kiosks()
            .await?
            .into_iter()
            .map(|k| {
                let state = match (k.revoked_at, k.enrolled_at, k.code_expires_at) {
                    (Some(_), _, _) => "revoked".to_owned(),
                    (None, Some(_), _) => "enrolled".to_owned(),
                    (None, None, Some(exp)) if exp > now => format!("code valid {} min", (exp - now) / 60_000 + 1),
                    _ => "code expired".to_owned(),
                };
                KioskLine { id: k.id, name: k.name, state, revoked: k.revoked_at.is_some(), last_seen: k.last_seen }
            })
            .collect();
        Ok(KioskList { kiosks, now })
    }

    pub async fn add_kiosk(name: String) -> Result<KioskCode, AppError> {
        let a = Admin::check().await?;
        let (id, code) =
            a.ctx.auth.add_kiosk(&name, &a.session.principal.actor(), &a.client).await.map_err(|e| match e {
                auth::AuthError::Invalid(m) => AppError::invalid("name", m),
                e => e.into(),
            })?;
        Ok(KioskCode { id, name: name.trim().to_owned(), code })
    }

    pub async fn revoke_kiosk(id: i64) -> Result<(), AppError> {
        let a = Admin::check().await?;
        Ok(a.ctx.auth.revoke_kiosk(id, &a.session.principal.actor(), &a.client).await?)
    }

    fn student_line(s: store::Student) -> StudentLine {
        StudentLine {
            id: s.id,
            number: s.number,
            name: s.name,
            email: s.email,
            department: s.department,
            card: s.card_uid,
            has_pin: s.has_pin,
            active: s.active,
            version: s.version,
        }
    }

    /// A field error from `domain::roster::check`'s list (the first).
    fn roster_error(errors: domain::roster::FieldErrors) -> AppError {
        match errors.into_iter().next() {
            Some((field, reason)) => AppError::invalid(field, reason),
            None => AppError::Invalid { field: None, message: "Invalid student.".into() },
        }
    }

    pub async fn students() -> Result<Vec<StudentLine>, AppError> {
        let a = Admin::check().await?;
        Ok(a.ctx.store.list_students().await?.into_iter().map(student_line).collect())
    }

    pub async fn add_student(
        number: String,
        name: String,
        email: Option<String>,
        department: Option<String>,
        card: Option<String>,
    ) -> Result<StudentLine, AppError> {
        let a = Admin::check().await?;
        let r = domain::roster::check(&number, &name, email.as_deref(), department.as_deref(), card.as_deref())
            .map_err(roster_error)?;
        let new = store::NewStudent {
            number: r.number,
            name: r.name,
            email: r.email,
            department: r.department,
            card_uid: r.card_uid,
        };
        let entry = a.entry("student_added", format!("student:{}", new.number));
        let id = a.ctx.store.add_student(&new, Some(&entry)).await.map_err(|e| match e {
            store::StoreError::Conflict(m) if m.contains("card") => AppError::invalid("card", m),
            store::StoreError::Conflict(m) => AppError::invalid("number", m),
            e => e.into(),
        })?;
        let student = a.ctx.store.student(id).await?.ok_or_else(|| crate::ssr::internal("added student missing"))?;
        Ok(student_line(student))
    }

    pub async fn save_student(
        id: i64,
        version: i64,
        name: String,
        email: Option<String>,
        department: Option<String>,
    ) -> Result<StudentSaved, AppError> {
        let a = Admin::check().await?;
        let current = a.ctx.store.student(id).await?.ok_or_else(|| AppError::NotFound(format!("No student {id}.")))?;
        // The same rules as a new student's (the number stays).
        let r = domain::roster::check(&current.number, &name, email.as_deref(), department.as_deref(), None)
            .map_err(roster_error)?;
        let fields = store::StudentFields { name: r.name, email: r.email, department: r.department };
        let entry = a.entry("student_edited", format!("student:{}", current.number));
        Ok(match a.ctx.store.edit_student(id, version, &fields, &entry).await? {
            store::Edit::Saved(s) => StudentSaved::Saved(student_line(s)),
            store::Edit::Conflict(s) => StudentSaved::Conflict(student_line(s)),
        })
    }

    pub async fn student_card(number: String, card: Option<String>) -> Result<(), AppError> {
        let a = Admin::check().await?;
        let uid = match card.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => Some(
                domain::auth::normalize_card_uid(raw)
                    .ok_or_else(|| AppError::invalid("card", "A card UID is 4 to 32 hex digits."))?,
            ),
        };
        let action = if uid.is_some() { "student_card_set" } else { "student_card_cleared" };
        let entry = a.entry(action, format!("student:{number}"));
        a.ctx.store.set_student_card(&number, uid.as_deref(), Some(&entry)).await.map_err(|e| match e {
            store::StoreError::Conflict(m) => AppError::invalid("card", m),
            e => e.into(),
        })?;
        Ok(())
    }

    pub async fn student_pin(number: String, pin: String) -> Result<(), AppError> {
        let a = Admin::check().await?;
        a.ctx.auth.set_student_pin(&number, &pin, &a.session.principal.actor(), &a.client).await.map_err(|e| match e {
            auth::AuthError::Invalid(m) => AppError::invalid("pin", m),
            e => e.into(),
        })
    }

    pub async fn disable_student(number: String) -> Result<(), AppError> {
        let a = Admin::check().await?;
        let entry = a.entry("student_disabled", format!("student:{number}"));
        a.ctx.store.disable_student(&number, Some(&entry)).await?;
        Ok(())
    }

    /// The largest roster taken at once (about 20,000 rows).
    const IMPORT_MAX_BYTES: usize = 2_000_000;

    pub async fn import(csv: String, confirm: bool, skip_invalid: bool) -> Result<ImportReport, AppError> {
        let a = Admin::check().await?;
        if csv.len() > IMPORT_MAX_BYTES {
            return Err(AppError::invalid("csv", "The file is too large (at most 2 MB at once)."));
        }
        let preview = auth::roster::preview(&a.ctx.store, &csv).await.map_err(|e| match e {
            auth::roster::RosterError::Store(e) => e.into(),
            e => AppError::invalid("csv", format!("{}.", capitalise(&e.to_string()))),
        })?;
        let mut report = ImportReport {
            rows: preview.rows,
            valid: preview.fresh.len(),
            errors: preview.errors.iter().map(|e| (e.row, e.field.to_owned(), e.reason.clone())).collect(),
            imported: None,
        };
        if confirm && (preview.errors.is_empty() || skip_invalid) {
            let detail = serde_json::json!({
                "imported": preview.fresh.len(),
                "skipped": preview.rows_with_errors(),
            });
            let mut entry = a.entry("students_imported", String::new());
            entry.subject = None;
            entry.detail = Some(detail.to_string());
            a.ctx.store.add_students(&preview.fresh, Some(&entry)).await?;
            report.imported = Some(preview.fresh.len());
        }
        Ok(report)
    }

    fn capitalise(s: &str) -> String {
        let mut c = s.chars();
        c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
    }

    /// A `YYYY-MM-DD` form field as Unix ms (its 00:00 UTC), naming the field when it is not one.
    fn date(field: &str, v: Option<String>) -> Result<Option<i64>, AppError> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(d) => {
                domain::time::parse_date(d).map(Some).ok_or_else(|| AppError::invalid(field, "A date is YYYY-MM-DD."))
            }
        }
    }

    /// At most this many requests on the page.
    const REQUESTS_PAGE: i64 = 500;

    pub async fn requests(
        state: Option<String>,
        faculty: Option<String>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<RequestList, AppError> {
        use domain::consultation::State;
        let a = Admin::check().await?;
        let (state, open_only) = match state.as_deref().map(str::trim).unwrap_or("open") {
            "" | "open" => (None, true),
            "all" => (None, false),
            s => (Some(State::parse(s).ok_or_else(|| AppError::invalid("state", "No such state."))?), false),
        };
        let faculty_id = match faculty.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(f) => Some(f.parse::<i64>().map_err(|_| AppError::invalid("faculty", "No such faculty member."))?),
        };
        let filter = store::RequestFilter {
            state,
            open_only,
            faculty_id,
            from: date("from", from)?,
            to: date("to", to)?.map(|t| t + 86_400_000),
        };
        let rows = a.ctx.store.admin_requests(&filter, REQUESTS_PAGE).await?;
        let mut requests = Vec::with_capacity(rows.len());
        for r in rows {
            let state =
                State::parse(&r.state).ok_or_else(|| crate::ssr::internal(format!("request state {:?}", r.state)))?;
            requests.push(RequestLine {
                ticket: format!("T{}", r.id),
                id: r.id,
                state,
                faculty_id: r.faculty_id,
                faculty_name: r.faculty_name,
                student: format!("{} ({})", r.student_name, r.student_number),
                course: r.course,
                message: r.message,
                note: r.note,
                requested: domain::time::short_utc(r.requested_at),
            });
        }
        let faculty = a.ctx.store.snapshot().await?.faculty.into_iter().map(|f| (f.id, f.name)).collect();
        Ok(RequestList { requests, faculty })
    }

    pub async fn cancel_request(id: i64, reason: String) -> Result<(), AppError> {
        let a = Admin::check().await?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 140 || reason.chars().any(char::is_control) {
            return Err(AppError::invalid("reason", "Give the student a reason, at most 140 characters on one line."));
        }
        let actor = store::Actor::Admin(Box::new(a.entry("request_cancelled", format!("request:{id}"))));
        match a.ctx.store.change_request(id, domain::consultation::Input::Cancel, &actor, Some(reason)).await? {
            Some(_) => Ok(()),
            None => Err(AppError::Conflict("That request is already finished; nothing changed.".into())),
        }
    }

    pub async fn system() -> Result<SystemFacts, AppError> {
        let a = Admin::check().await?;
        let store = &a.ctx.store;
        let n = a.ctx.system.numbers();
        Ok(SystemFacts {
            backend: store.backend().as_str().to_owned(),
            schema_version: store.schema_version().await?,
            broker: n.broker,
            desks_online: store.count_online_desks().await?,
            desks: store.list_desks().await?.len() as i64,
            live_streams: n.live_streams,
            mqtt_received: n.mqtt_received,
            mqtt_applied: n.mqtt_applied,
            mqtt_stale: n.mqtt_stale,
            mqtt_rejected: n.mqtt_rejected,
            dead_letters: store.count_dead_letters().await?,
            uptime_s: a.ctx.started.elapsed().as_secs(),
            now: store::now_ms(),
        })
    }
}
