//! The admin CLI: `consultease faculty|desk|admin|student|kiosk …`, on the same store (and the same
//! accounts service) as the server. Every change it makes to accounts is audited as `cli`.

pub mod mosquitto;
mod secret;

/// A secret from standard input (never from a flag).
pub fn read_secret(prompt: &str) -> anyhow::Result<String> {
    secret::read(prompt)
}

use crate::config::{AdminCmd, DeskCmd, FacultyCmd, KioskCmd, StudentCmd};
use anyhow::{Context, bail};
use auth::{Auth, Client};
use std::io::Write;
use store::{NewStudent, Store};

/// The accounts service for the CLI (production hashing cost).
pub fn accounts(store: Store) -> anyhow::Result<Auth> {
    Ok(Auth::new(store, auth::Hasher::new(1)?))
}

fn actor() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.is_empty() => format!("cli:{user}"),
        _ => "cli".to_owned(),
    }
}

fn client() -> Client {
    Client { addr: None, user_agent: Some("consultease-cli".into()) }
}

pub async fn admin(auth: &Auth, cmd: AdminCmd, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        AdminCmd::Create { username } => {
            domain::auth::check_username(&username).map_err(anyhow::Error::msg)?;
            let password = secret::read("password")?;
            let id = auth.create_admin(&username, &password, &actor(), &client()).await?;
            writeln!(out, "admin {username} created (id {id})")?;
        }
        AdminCmd::List => {
            writeln!(out, "{:>5}  {:<32} {:<8}", "ID", "USERNAME", "ACTIVE")?;
            for a in auth.store().list_admins().await? {
                writeln!(out, "{:>5}  {:<32} {:<8}", a.id, a.username, if a.active { "yes" } else { "no" })?;
            }
        }
        AdminCmd::Passwd { username } => {
            let password = secret::read("new password")?;
            auth.set_admin_password(&username, &password, &actor(), &client()).await?;
            writeln!(out, "password of {username} changed; their sessions ended")?;
        }
        AdminCmd::Disable { username } => {
            auth.disable_admin(&username, &actor(), &client()).await?;
            writeln!(out, "admin {username} disabled; their sessions ended")?;
        }
    }
    Ok(())
}

pub async fn student(auth: &Auth, cmd: StudentCmd, out: &mut impl Write) -> anyhow::Result<()> {
    let store = auth.store();
    let audit =
        |action: &str, number: &str| auth.entry(&actor(), action, Some(format!("student:{number}")), None, &client());
    match cmd {
        StudentCmd::Add { number, name, email, department, card } => {
            let r = domain::roster::check(&number, &name, email.as_deref(), department.as_deref(), card.as_deref())
                .map_err(|errs| {
                    anyhow::anyhow!(errs.into_iter().map(|(f, e)| format!("{f}: {e}")).collect::<Vec<_>>().join("; "))
                })?;
            let new = NewStudent {
                number: r.number,
                name: r.name,
                email: r.email,
                department: r.department,
                card_uid: r.card_uid,
            };
            let id = store.add_student(&new, Some(&audit("student_added", &new.number))).await?;
            writeln!(out, "{id}")?;
        }
        StudentCmd::SetPin { number } => {
            let pin = secret::read("PIN")?;
            auth.set_student_pin(&number, &pin, &actor(), &client()).await?;
            writeln!(out, "PIN of {number} set; their sessions ended")?;
        }
        StudentCmd::SetCard { number, card } => {
            let uid = match card.as_deref() {
                Some(raw) => Some(domain::auth::normalize_card_uid(raw).context("a card UID is 4 to 32 hex digits")?),
                None => None,
            };
            let action = if uid.is_some() { "student_card_set" } else { "student_card_cleared" };
            store.set_student_card(&number, uid.as_deref(), Some(&audit(action, &number))).await?;
            writeln!(out, "card of {number}: {}", uid.as_deref().unwrap_or("none"))?;
        }
        StudentCmd::Disable { number } => {
            store.disable_student(&number, Some(&audit("student_disabled", &number))).await?;
            writeln!(out, "student {number} disabled; their sessions ended")?;
        }
        StudentCmd::List => {
            writeln!(out, "{:>5}  {:<16} {:<30} {:<12} {:<4} {:<6}", "ID", "NUMBER", "NAME", "CARD", "PIN", "ACTIVE")?;
            for s in store.list_students().await? {
                let yes = |b: bool| if b { "yes" } else { "no" };
                writeln!(
                    out,
                    "{:>5}  {:<16} {:<30} {:<12} {:<4} {:<6}",
                    s.id,
                    s.number,
                    s.name,
                    s.card_uid.as_deref().unwrap_or("-"),
                    yes(s.has_pin),
                    yes(s.active)
                )?;
            }
        }
        StudentCmd::Import { file, partial } => import(auth, &file, partial, out).await?,
    }
    Ok(())
}

/// Reads a roster CSV, checks every row (and, against the database, numbers and cards taken),
/// prints a report, and writes all rows, none, or with `partial` the valid ones.
async fn import(auth: &Auth, file: &std::path::Path, partial: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let store = auth.store();
    let preview = auth::roster::preview(store, &text).await?;
    for e in &preview.errors {
        writeln!(out, "row {}: {}: {}", e.row, e.field, e.reason)?;
    }
    if !preview.errors.is_empty() && !partial {
        bail!(
            "{} problem(s); nothing imported (fix them, or import the valid rows with --partial)",
            preview.errors.len()
        );
    }
    let skipped = preview.rows_with_errors();
    let detail =
        serde_json::json!({ "file": file.display().to_string(), "imported": preview.fresh.len(), "skipped": skipped });
    let entry = auth.entry(&actor(), "students_imported", None, Some(detail.to_string()), &client());
    store.add_students(&preview.fresh, Some(&entry)).await?;
    writeln!(out, "imported {} student(s); {} row(s) skipped", preview.fresh.len(), skipped)?;
    Ok(())
}

pub async fn kiosk(auth: &Auth, cmd: KioskCmd, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        KioskCmd::Add { name } => {
            let (id, code) = auth.add_kiosk(&name, &actor(), &client()).await?;
            writeln!(out, "kiosk {id} ({name}) registered")?;
            writeln!(out, "enrolment code: {code}  (valid 15 minutes; open /kiosk/enrol on the kiosk's browser)")?;
        }
        KioskCmd::List => {
            let now = store::now_ms();
            writeln!(out, "{:>4}  {:<24} {:<22} {:<16}", "ID", "NAME", "STATE", "LAST SEEN")?;
            for k in auth.store().list_kiosks().await? {
                let state = match (k.revoked_at, k.enrolled_at, k.code_expires_at) {
                    (Some(_), _, _) => "revoked".to_owned(),
                    (None, Some(_), _) => "enrolled".to_owned(),
                    (None, None, Some(exp)) if exp > now => format!("code valid {} min", (exp - now) / 60_000 + 1),
                    _ => "code expired".to_owned(),
                };
                let seen = k.last_seen.map_or("never".into(), |t| format!("{} s ago", (now - t).max(0) / 1000));
                writeln!(out, "{:>4}  {:<24} {:<22} {:<16}", k.id, k.name, state, seen)?;
            }
        }
        KioskCmd::Revoke { id } => {
            auth.revoke_kiosk(id, &actor(), &client()).await?;
            writeln!(out, "kiosk {id} revoked")?;
        }
    }
    Ok(())
}

pub async fn faculty(store: &Store, cmd: FacultyCmd, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        FacultyCmd::Add { name, department, email } => {
            let fields = domain::faculty::check(&domain::faculty::FacultyFields {
                name,
                department,
                email,
                ..Default::default()
            })
            .map_err(|e| anyhow::anyhow!("{}: {e}", e.field))?;
            let record = store.create_faculty(&fields, &entry("faculty_added", String::new())).await?;
            writeln!(out, "{}", record.id)?;
        }
        FacultyCmd::List => {
            let snap = store.snapshot().await?;
            writeln!(out, "{:>5}  {:<30} {:<24} {:<10} {:>7}", "ID", "NAME", "DEPARTMENT", "STATUS", "VERSION")?;
            for f in snap.faculty {
                writeln!(out, "{:>5}  {:<30} {:<24} {:<10} {:>7}", f.id, f.name, f.department, f.status, f.version)?;
            }
        }
    }
    Ok(())
}

/// The audit row of a CLI action on `subject`.
fn entry(action: &str, subject: String) -> store::AuditEntry {
    store::AuditEntry {
        actor: actor(),
        action: action.into(),
        subject: Some(subject),
        user_agent: Some("consultease-cli".into()),
        ..Default::default()
    }
}

/// A new MQTT password and the hash kept of it.
fn new_credential() -> anyhow::Result<(String, String)> {
    let password = auth::mqtt_password::generate()?;
    let hash = auth::mqtt_password::hash(&password, auth::mqtt_password::ITERATIONS)?;
    Ok((password, hash))
}

pub async fn desk(store: &Store, cmd: DeskCmd, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        DeskCmd::Add { desk, faculty } => {
            let (password, hash) = new_credential()?;
            store.register_desk(&desk, faculty, &hash, &entry("desk_registered", format!("desk:{desk}"))).await?;
            writeln!(out, "desk {desk} bound to faculty member {faculty}")?;
            writeln!(out, "MQTT username and client id: {desk}")?;
            writeln!(out, "password: {password}")?;
            writeln!(out, "(shown this once; `consultease desk credentials {desk} --rotate` issues a new one)")?;
        }
        DeskCmd::Credentials { desk, rotate: false } => match store.desk_mqtt_hash(&desk).await? {
            None => anyhow::bail!("no desk {desk}"),
            Some(None) => writeln!(out, "desk {desk} has no MQTT credential: issue one with --rotate")?,
            Some(Some(_)) => writeln!(out, "desk {desk} has an MQTT credential (only its hash is kept)")?,
        },
        DeskCmd::Credentials { desk, rotate: true } => {
            let (password, hash) = new_credential()?;
            store
                .set_desk_mqtt_hash(&desk, &hash, Some(&entry("desk_credential_rotated", format!("desk:{desk}"))))
                .await?;
            writeln!(
                out,
                "desk {desk}: new MQTT credential; the old password no longer works on the embedded broker \
                 (for Mosquitto: `consultease broker export` again, then reload it)"
            )?;
            writeln!(out, "password: {password}")?;
        }
        DeskCmd::ResetClock { desk } => {
            store.reset_desk_clock(&desk, Some(&entry("desk_clock_reset", format!("desk:{desk}")))).await?;
            writeln!(out, "desk {desk}: clock reset; its next message applies")?;
        }
        DeskCmd::List => {
            let now = store::now_ms();
            writeln!(out, "{:<20} {:>7} {:<7} {:<16} {:>12}", "DESK", "FACULTY", "ONLINE", "LAST SEEN", "BOOT:SEQ")?;
            for d in store.list_desks().await? {
                let faculty = d.faculty_id.map_or("-".into(), |f| f.to_string());
                let seen = d.last_seen.map_or("never".into(), |t| format!("{} s ago", (now - t).max(0) / 1000));
                let clock = match (d.boot, d.seq) {
                    (Some(b), Some(s)) => format!("{b}:{s}"),
                    _ => "-".into(),
                };
                let online = if d.online { "yes" } else { "no" };
                writeln!(out, "{:<20} {:>7} {:<7} {:<16} {:>12}", d.id, faculty, online, seen, clock)?;
            }
        }
    }
    Ok(())
}
