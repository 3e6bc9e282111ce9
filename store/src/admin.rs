//! Administration: faculty and desk units.

use crate::rows::{DESK_COLUMNS, DeskRow};
use crate::sessions::audit_in;
use crate::{Result, Store, StoreError, now_ms};
use domain::protocol::valid_desk_id;
use serde::Serialize;

#[derive(Clone, Debug, Default)]
pub struct NewFaculty {
    pub name: String,
    pub department: String,
    pub email: Option<String>,
}

impl NewFaculty {
    fn validate(&self) -> Result<()> {
        let name = self.name.trim();
        let dept = self.department.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(StoreError::Invalid("name must be 1-120 characters".into()));
        }
        if dept.is_empty() || dept.chars().count() > 120 {
            return Err(StoreError::Invalid("department must be 1-120 characters".into()));
        }
        if let Some(email) = &self.email
            && (!email.contains('@') || email.len() > 254 || email.trim() != email)
        {
            return Err(StoreError::Invalid(format!("{email:?} is not an email address")));
        }
        Ok(())
    }
}

/// What became of a versioned edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit<T> {
    /// Saved; the row as it now is.
    Saved(T),
    /// The row changed since the version the edit named: nothing saved; the row as it now is.
    Conflict(T),
}

const RECORD_SELECT: &str =
    "SELECT id, name, department, email, room, photo_url, office_hours, version FROM faculty WHERE id = $1";

#[derive(sqlx::FromRow)]
struct RecordRow {
    id: i64,
    name: String,
    department: String,
    email: Option<String>,
    room: Option<String>,
    photo_url: Option<String>,
    office_hours: Option<String>,
    version: i64,
}

impl RecordRow {
    fn into_record(self) -> domain::faculty::FacultyRecord {
        let fields = domain::faculty::FacultyFields {
            name: self.name,
            department: self.department,
            email: self.email,
            room: self.room,
            photo_url: self.photo_url,
            office_hours: self.office_hours,
        };
        domain::faculty::FacultyRecord { id: self.id, fields, version: self.version }
    }
}

/// A desk unit as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeskInfo {
    pub id: String,
    pub faculty_id: Option<i64>,
    pub online: bool,
    pub present: bool,
    pub busy: bool,
    pub last_seen: Option<i64>,
    pub boot: Option<i64>,
    pub seq: Option<i64>,
    pub version: i64,
}

impl Store {
    /// Adds a faculty member (status `offline` until a desk reports). Returns the new id.
    pub async fn add_faculty(&self, new: &NewFaculty) -> Result<i64> {
        new.validate()?;
        let now = now_ms();
        let sql = "INSERT INTO faculty (name, department, email, changed_at, created_at) VALUES ($1, $2, $3, $4, $4) \
                   RETURNING id";
        let res: std::result::Result<i64, sqlx::Error> = on_db!(&self.db, pool => {
            sqlx::query_scalar(sql)
                .bind(new.name.trim())
                .bind(new.department.trim())
                .bind(new.email.as_deref())
                .bind(now)
                .fetch_one(pool)
                .await
        });
        res.map_err(|e| match e {
            e if StoreError::is_unique_violation(&e) => StoreError::Conflict(format!(
                "a faculty member with email {:?} exists already",
                new.email.as_deref().unwrap_or("")
            )),
            e => e.into(),
        })
    }

    /// Adds a faculty member from checked fields (`domain::faculty::check`): the row, the board's
    /// event (the new card appears on open boards at once) and the audit row in one transaction.
    pub async fn create_faculty(
        &self,
        fields: &domain::faculty::FacultyFields,
        audit: &crate::AuditEntry,
    ) -> Result<domain::faculty::FacultyRecord> {
        let now = now_ms();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let res: std::result::Result<i64, sqlx::Error> = on_tx!(&mut tx, c => {
            sqlx::query_scalar(
                "INSERT INTO faculty (name, department, email, room, photo_url, office_hours, changed_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            )
            .bind(&fields.name)
            .bind(&fields.department)
            .bind(fields.email.as_deref())
            .bind(fields.room.as_deref())
            .bind(fields.photo_url.as_deref())
            .bind(fields.office_hours.as_deref())
            .bind(now)
            .fetch_one(&mut **c)
            .await
        });
        let id = match res {
            Ok(id) => id,
            Err(e) if StoreError::is_unique_violation(&e) => {
                return Err(StoreError::Conflict("That email belongs to another faculty member.".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let event = crate::requests::log_faculty_view(&self.bulk, &mut tx, id, now, "admin").await?;
        let record = domain::faculty::FacultyRecord { id, fields: fields.clone(), version: event.faculty.version };
        let entry = crate::AuditEntry {
            subject: Some(format!("faculty:{id}")),
            detail: Some(serde_json::json!({ "after": record }).to_string()),
            ..audit.clone()
        };
        on_tx!(&mut tx, c => audit_in!(&mut **c, &entry)?);
        tx.commit().await?;
        self.publish_faculty(vec![event]);
        Ok(record)
    }

    /// Deactivated faculty members (id, name), by name: the board does not list them.
    pub async fn inactive_faculty(&self) -> Result<Vec<(i64, String)>> {
        let sql = "SELECT id, name FROM faculty WHERE NOT active ORDER BY name, id";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }

    /// A faculty member's record as admins edit it.
    pub async fn faculty_record(&self, id: i64) -> Result<Option<domain::faculty::FacultyRecord>> {
        let row: Option<RecordRow> =
            on_db!(&self.db, pool => sqlx::query_as(RECORD_SELECT).bind(id).fetch_optional(pool).await?);
        Ok(row.map(RecordRow::into_record))
    }

    /// Saves `fields` (already checked, `domain::faculty::check`) over faculty member `id` if the
    /// row is still at `version`: a compare-and-set, the board's event and the audit row (who, the
    /// before and after) in one transaction. A stale version is [`Edit::Conflict`] with the row as
    /// it is now: never a silent overwrite.
    pub async fn edit_faculty(
        &self,
        id: i64,
        version: i64,
        fields: &domain::faculty::FacultyFields,
        audit: &crate::AuditEntry,
    ) -> Result<Edit<domain::faculty::FacultyRecord>> {
        let now = now_ms();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let before: Option<RecordRow> =
            on_tx!(&mut tx, c => sqlx::query_as(RECORD_SELECT).bind(id).fetch_optional(&mut **c).await?);
        let Some(before) = before.map(RecordRow::into_record) else {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("no faculty member {id}")));
        };
        if before.version != version {
            tx.rollback().await?;
            return Ok(Edit::Conflict(before));
        }
        let res = on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE faculty SET name = $1, department = $2, email = $3, room = $4, photo_url = $5, \
                 office_hours = $6, version = version + 1 WHERE id = $7 AND version = $8",
            )
            .bind(&fields.name)
            .bind(&fields.department)
            .bind(fields.email.as_deref())
            .bind(fields.room.as_deref())
            .bind(fields.photo_url.as_deref())
            .bind(fields.office_hours.as_deref())
            .bind(id)
            .bind(version)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
        });
        match res {
            Ok(1) => {}
            Ok(_) => {
                tx.rollback().await?;
                return Err(StoreError::VersionConflict);
            }
            Err(e) if StoreError::is_unique_violation(&e) => {
                tx.rollback().await?;
                return Err(StoreError::Conflict("That email belongs to another faculty member.".into()));
            }
            Err(e) => return Err(e.into()),
        }
        let after = domain::faculty::FacultyRecord { id, fields: fields.clone(), version: version + 1 };
        let event = crate::requests::log_faculty_view(&self.bulk, &mut tx, id, now, "admin").await?;
        let detail = serde_json::json!({ "before": before, "after": after }).to_string();
        let entry = crate::AuditEntry { detail: Some(detail), ..audit.clone() };
        on_tx!(&mut tx, c => audit_in!(&mut **c, &entry)?);
        tx.commit().await?;
        self.publish_faculty(vec![event]);
        Ok(Edit::Saved(after))
    }

    /// Deactivates (`false`) or reactivates faculty member `id`: the row stays (their history
    /// and audit keep pointing at it), the board drops or shows the card live (the event carries
    /// `active`), requests are refused while inactive. A faculty member with open requests is not
    /// deactivated (`Conflict`): those are cancelled with a reason first, which the students see.
    pub async fn set_faculty_active(
        &self,
        id: i64,
        active: bool,
        audit: &crate::AuditEntry,
    ) -> Result<domain::FacultyView> {
        let now = now_ms();
        let open = crate::requests::open_states();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let count_open = format!("SELECT COUNT(*) FROM requests WHERE faculty_id = $1 AND state IN ({open})");
        let waiting: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(&count_open).bind(id).fetch_one(&mut **c).await?);
        if !active && waiting > 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "They have {waiting} open request(s): cancel them on the Consultations page first (the students are told why)."
            )));
        }
        let n = on_tx!(&mut tx, c => {
            sqlx::query("UPDATE faculty SET active = $1, version = version + 1 WHERE id = $2 AND active <> $1")
                .bind(active)
                .bind(id)
                .execute(&mut **c)
                .await?
                .rows_affected()
        });
        if n == 0 {
            tx.rollback().await?;
            return match self.faculty(id).await? {
                Some(view) => Ok(view),
                None => Err(StoreError::NotFound(format!("no faculty member {id}"))),
            };
        }
        let event = crate::requests::log_faculty_view(&self.bulk, &mut tx, id, now, "admin").await?;
        on_tx!(&mut tx, c => audit_in!(&mut **c, audit)?);
        tx.commit().await?;
        let view = event.faculty.clone();
        self.publish_faculty(vec![event]);
        Ok(view)
    }

    /// Sets (`Some`) or clears (`None`) faculty member `id`'s status override and re-derives the
    /// status from it and the desk's facts (`domain::status`): one transaction with the board's
    /// event and the audit row. Returns the row as the board now shows it.
    pub async fn set_override(
        &self,
        id: i64,
        ov: Option<&domain::status::AdminOverride>,
        audit: &crate::AuditEntry,
    ) -> Result<domain::FacultyView> {
        let now = now_ms();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let Some(view) = self.override_in(&mut tx, id, ov, now, "admin").await? else {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("no faculty member {id}")));
        };
        let entry =
            crate::AuditEntry { detail: Some(serde_json::json!({ "override": ov }).to_string()), ..audit.clone() };
        on_tx!(&mut tx, c => audit_in!(&mut **c, &entry)?);
        tx.commit().await?;
        let faculty = view.faculty.clone();
        self.publish_faculty(vec![view]);
        Ok(faculty)
    }

    /// Ends every override whose end time has come (each once: it is cleared in the same
    /// transaction, and an override set again meanwhile is left alone). Returns how many ended.
    pub async fn expire_overrides(&self, now: i64) -> Result<usize> {
        let sql = "SELECT id FROM faculty WHERE override_expires_at IS NOT NULL AND override_expires_at <= $1";
        let ids: Vec<i64> = on_db!(&self.db, pool => sqlx::query_scalar(sql).bind(now).fetch_all(pool).await?);
        let mut n = 0;
        for id in ids {
            let _order = self.write_order.lock().await;
            let mut tx = self.event_tx().await?;
            let still: Option<Option<i64>> = on_tx!(&mut tx, c => {
                sqlx::query_scalar("SELECT override_expires_at FROM faculty WHERE id = $1").bind(id).fetch_optional(&mut **c).await?
            });
            if still.flatten().is_none_or(|at| at > now) {
                tx.rollback().await?;
                continue;
            }
            let Some(event) = self.override_in(&mut tx, id, None, now, "override_expired").await? else {
                tx.rollback().await?;
                continue;
            };
            let entry = crate::AuditEntry {
                actor: "system".into(),
                action: "override_expired".into(),
                subject: Some(format!("faculty:{id}")),
                ..Default::default()
            };
            on_tx!(&mut tx, c => audit_in!(&mut **c, &entry)?);
            tx.commit().await?;
            self.publish_faculty(vec![event]);
            n += 1;
        }
        Ok(n)
    }

    /// The override change inside the caller's transaction; `None` when there is no such row.
    async fn override_in(
        &self,
        tx: &mut crate::tx::Tx,
        id: i64,
        ov: Option<&domain::status::AdminOverride>,
        now: i64,
        source: &str,
    ) -> Result<Option<std::sync::Arc<domain::FacultyEvent>>> {
        use domain::status::{DeskInputs, StatusInputs, derive};
        let row: Option<(String, bool, bool, bool, i64)> = on_tx!(tx, c => {
            sqlx::query_as(
                "SELECT f.status, f.present, f.busy, f.desk_online, \
                 (SELECT COUNT(*) FROM desks d WHERE d.faculty_id = f.id) FROM faculty f WHERE f.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut **c)
            .await?
        });
        let Some((old, present, busy, online, desks)) = row else { return Ok(None) };
        let desk = (desks > 0).then_some(DeskInputs { online, present, busy });
        let status = derive(StatusInputs { desk, admin_override: ov }, now);
        let changed = old != status.as_str();
        on_tx!(tx, c => {
            sqlx::query(
                "UPDATE faculty SET override_status = $1, override_note = $2, override_expires_at = $3, status = $4, \
                 changed_at = CASE WHEN $5 THEN $6 ELSE changed_at END, version = version + 1 WHERE id = $7",
            )
            .bind(ov.map(|o| o.status.as_str()))
            .bind(ov.map(|o| o.note.as_str()).filter(|n| !n.is_empty()))
            .bind(ov.and_then(|o| o.expires_at))
            .bind(status.as_str())
            .bind(changed)
            .bind(now)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(drop)?
        });
        Ok(Some(crate::requests::log_faculty_view(&self.bulk, tx, id, now, source).await?))
    }

    /// Sets a desk's MQTT password hash (a new credential replaces the old one at once), with its
    /// audit row in the same transaction.
    pub async fn set_desk_mqtt_hash(&self, desk: &str, hash: &str, audit: Option<&crate::AuditEntry>) -> Result<()> {
        let mut tx = self.write_tx().await?;
        desk_hash_in(&mut tx, desk, hash).await?;
        if let Some(entry) = audit {
            on_tx!(&mut tx, c => audit_in!(&mut **c, entry)?);
        }
        tx.commit().await
    }

    /// A desk's MQTT password hash: `None` when there is no such desk, `Some(None)` when it has
    /// no credential.
    pub async fn desk_mqtt_hash(&self, desk: &str) -> Result<Option<Option<String>>> {
        let sql = "SELECT mqtt_hash FROM desks WHERE id = $1";
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(sql).bind(desk).fetch_optional(pool).await?))
    }

    /// Every desk's MQTT password hash (to notice rotations).
    pub async fn desk_mqtt_hashes(&self) -> Result<Vec<(String, Option<String>)>> {
        let sql = "SELECT id, mqtt_hash FROM desks";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }

    /// Registers desk unit `desk` and binds it to faculty member `faculty_id` (one desk each).
    pub async fn add_desk(&self, desk: &str, faculty_id: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_desk(&mut tx, desk, faculty_id).await?;
        tx.commit().await
    }

    /// Registers desk unit `desk` for faculty member `faculty_id` with its MQTT password hash and
    /// the audit row, in one transaction: a desk never exists without its credential.
    pub async fn register_desk(
        &self,
        desk: &str,
        faculty_id: i64,
        mqtt_hash: &str,
        audit: &crate::AuditEntry,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_desk(&mut tx, desk, faculty_id).await?;
        desk_hash_in(&mut tx, desk, mqtt_hash).await?;
        on_tx!(&mut tx, c => audit_in!(&mut **c, audit)?);
        tx.commit().await
    }

    /// Binds desk `desk` to faculty member `to`, or with `None` unbinds it (the desk stays
    /// registered with its credential; its reports then change no one's status). Both faculty
    /// members' statuses are derived again from their desk (or none) and the board gets both
    /// events, all in one transaction with the audit row. The newly bound faculty member's queue
    /// version is raised above every other's, so the desk — which ignores a queue not newer than
    /// the one it shows — takes their queue although it last showed someone else's.
    pub async fn bind_desk(&self, desk: &str, to: Option<i64>, audit: &crate::AuditEntry) -> Result<()> {
        let now = now_ms();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let from = desk_binding(&mut tx, desk).await?;
        if from == to {
            tx.rollback().await?;
            return Ok(());
        }
        if let Some(f) = to {
            let target: Option<(bool, Option<String>)> = on_tx!(&mut tx, c => {
                sqlx::query_as(
                    "SELECT f.active, d.id FROM faculty f LEFT JOIN desks d ON d.faculty_id = f.id WHERE f.id = $1",
                )
                .bind(f)
                .fetch_optional(&mut **c)
                .await?
            });
            match target {
                None | Some((false, _)) => {
                    tx.rollback().await?;
                    return Err(StoreError::NotFound(format!("no active faculty member {f}")));
                }
                Some((true, Some(other))) => {
                    tx.rollback().await?;
                    return Err(StoreError::Conflict(format!("faculty member {f} already has desk {other}")));
                }
                Some((true, None)) => {}
            }
        }
        on_tx!(&mut tx, c => {
            sqlx::query("UPDATE desks SET faculty_id = $1, version = version + 1 WHERE id = $2")
                .bind(to)
                .bind(desk)
                .execute(&mut **c)
                .await
                .map(drop)?
        });
        let mut events = Vec::new();
        if let Some(f) = from {
            events.push(self.rederive_in(&mut tx, f, now).await?);
        }
        if let Some(f) = to {
            on_tx!(&mut tx, c => {
                sqlx::query("UPDATE faculty SET queue_version = (SELECT COALESCE(MAX(queue_version), 0) + 1 FROM faculty) WHERE id = $1")
                    .bind(f)
                    .execute(&mut **c)
                    .await
                    .map(drop)?
            });
            events.push(self.rederive_in(&mut tx, f, now).await?);
        }
        on_tx!(&mut tx, c => audit_in!(&mut **c, audit)?);
        tx.commit().await?;
        self.publish_faculty(events);
        if let Some(f) = to {
            self.queues_bus.publish_one(f);
        }
        Ok(())
    }

    /// Retires desk `desk`: its row and credential go (a connection made with it is dropped, it
    /// cannot connect again); the faculty member it served has no desk from now (offline unless
    /// an override says otherwise: the board gets the event). Its messages in the event log stay.
    pub async fn retire_desk(&self, desk: &str, audit: &crate::AuditEntry) -> Result<()> {
        let now = now_ms();
        let _order = self.write_order.lock().await;
        let mut tx = self.event_tx().await?;
        let from = desk_binding(&mut tx, desk).await?;
        on_tx!(&mut tx, c => sqlx::query("DELETE FROM desks WHERE id = $1").bind(desk).execute(&mut **c).await.map(drop)?);
        let event = match from {
            Some(f) => Some(self.rederive_in(&mut tx, f, now).await?),
            None => None,
        };
        on_tx!(&mut tx, c => audit_in!(&mut **c, audit)?);
        tx.commit().await?;
        self.publish_faculty(event.into_iter().collect());
        Ok(())
    }

    /// Faculty member `id`'s desk facts copied from the desk now bound to them (none: not present,
    /// not busy, no desk online) and their status derived again with their override (the
    /// override's own path, `override_in`); the board's event. Inside the caller's transaction.
    async fn rederive_in(
        &self,
        tx: &mut crate::tx::Tx,
        id: i64,
        now: i64,
    ) -> Result<std::sync::Arc<domain::FacultyEvent>> {
        let desk: Option<(bool, bool, bool)> = on_tx!(tx, c => {
            sqlx::query_as("SELECT online, present, busy FROM desks WHERE faculty_id = $1").bind(id).fetch_optional(&mut **c).await?
        });
        let (online, present, busy) = desk.unwrap_or_default();
        on_tx!(tx, c => {
            sqlx::query("UPDATE faculty SET present = $1, busy = $2, desk_online = $3 WHERE id = $4")
                .bind(present)
                .bind(busy)
                .bind(online)
                .bind(id)
                .execute(&mut **c)
                .await
                .map(drop)?
        });
        let row: crate::rows::FacultyRow = on_tx!(tx, c => {
            sqlx::query_as(&format!("SELECT {} FROM faculty WHERE id = $1", crate::rows::FACULTY_COLUMNS))
                .bind(id)
                .fetch_one(&mut **c)
                .await?
        });
        let ov = row.admin_override();
        self.override_in(tx, id, ov.as_ref(), now, "admin")
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no faculty member {id}")))
    }

    /// Forgets a desk's clock (after a firmware wipe, or a message that pinned it far in the future):
    /// its next message applies whatever its `boot` and `seq`. What the desk reported stays until
    /// then. The row's version bumps, so a concurrent ingest batch redoes its work.
    pub async fn reset_desk_clock(&self, desk: &str, audit: Option<&crate::AuditEntry>) -> Result<()> {
        let sql = "UPDATE desks SET last_boot = NULL, last_seq = NULL, state_boot = NULL, state_seq = NULL, \
                   online_boot = NULL, online_seq = NULL, version = version + 1 WHERE id = $1";
        let mut tx = self.write_tx().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(sql).bind(desk).execute(&mut **c).await?.rows_affected());
        if n == 0 {
            return Err(StoreError::NotFound(format!("no desk {desk:?}")));
        }
        if let Some(entry) = audit {
            on_tx!(&mut tx, c => audit_in!(&mut **c, entry)?);
        }
        tx.commit().await
    }

    pub async fn list_desks(&self) -> Result<Vec<DeskInfo>> {
        let sql = format!("SELECT {DESK_COLUMNS} FROM desks ORDER BY id");
        let rows: Vec<DeskRow> = on_db!(&self.db, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|r| DeskInfo {
                id: r.id,
                faculty_id: r.faculty_id,
                online: r.online,
                present: r.present,
                busy: r.busy,
                last_seen: r.last_seen,
                boot: r.last_boot,
                seq: r.last_seq,
                version: r.version,
            })
            .collect())
    }
}

/// Sets desk `desk`'s MQTT password hash inside the caller's transaction.
async fn desk_hash_in(tx: &mut crate::tx::Tx, desk: &str, hash: &str) -> Result<()> {
    let n = on_tx!(tx, c => {
        sqlx::query("UPDATE desks SET mqtt_hash = $1, version = version + 1 WHERE id = $2")
            .bind(hash)
            .bind(desk)
            .execute(&mut **c)
            .await?
            .rows_affected()
    });
    if n == 0 {
        return Err(StoreError::NotFound(format!("no desk {desk}")));
    }
    Ok(())
}

/// Inserts desk unit `desk` bound to faculty member `faculty_id` inside the caller's transaction
/// (dropped, it rolls back).
async fn insert_desk(tx: &mut crate::tx::Tx, desk: &str, faculty_id: i64) -> Result<()> {
    if !valid_desk_id(desk) {
        return Err(StoreError::Invalid("desk id must be 1-64 characters of A-Z a-z 0-9 _ -".into()));
    }
    let exists: Option<i64> = on_tx!(tx, c => {
        sqlx::query_scalar("SELECT id FROM faculty WHERE id = $1").bind(faculty_id).fetch_optional(&mut **c).await?
    });
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("no faculty member with id {faculty_id}")));
    }
    let bound: Option<String> = on_tx!(tx, c => {
        sqlx::query_scalar("SELECT id FROM desks WHERE faculty_id = $1").bind(faculty_id).fetch_optional(&mut **c).await?
    });
    if let Some(other) = bound {
        return Err(StoreError::Conflict(format!("faculty member {faculty_id} already has desk {other}")));
    }
    let res = on_tx!(tx, c => {
        sqlx::query("INSERT INTO desks (id, faculty_id, created_at) VALUES ($1, $2, $3)")
            .bind(desk)
            .bind(faculty_id)
            .bind(now_ms())
            .execute(&mut **c)
            .await
            .map(|_| ())
    });
    match res {
        Err(e) if StoreError::is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("desk {desk} exists already")))
        }
        other => Ok(other?),
    }
}

/// The faculty member desk `desk` is bound to (`None`: unbound), or `NotFound`.
async fn desk_binding(tx: &mut crate::tx::Tx, desk: &str) -> Result<Option<i64>> {
    let row: Option<Option<i64>> = on_tx!(tx, c => {
        sqlx::query_scalar("SELECT faculty_id FROM desks WHERE id = $1").bind(desk).fetch_optional(&mut **c).await?
    });
    row.ok_or_else(|| StoreError::NotFound(format!("no desk {desk:?}")))
}
