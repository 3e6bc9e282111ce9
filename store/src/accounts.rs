//! Accounts: admins, students, registered kiosks. Secrets are stored only as hashes made by the
//! caller (argon2id PHC strings for passwords and PINs, SHA-256 for random tokens).

use crate::sessions::audit_in;
use crate::{AuditEntry, Result, Store, StoreError, now_ms};
use serde::Serialize;

/// What an admin edits of a student (the number is their identity and stays).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudentFields {
    pub name: String,
    pub email: Option<String>,
    pub department: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Admin {
    pub id: i64,
    pub username: String,
    pub active: bool,
    pub created_at: i64,
}

/// What signing an admin in needs.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AdminCredential {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub active: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewStudent {
    pub number: String,
    pub name: String,
    pub email: Option<String>,
    pub department: Option<String>,
    pub card_uid: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Student {
    pub id: i64,
    pub number: String,
    pub name: String,
    pub email: Option<String>,
    pub department: Option<String>,
    pub card_uid: Option<String>,
    pub has_pin: bool,
    pub active: bool,
    pub version: i64,
}

/// What signing a student in needs.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StudentCredential {
    pub id: i64,
    pub number: String,
    pub name: String,
    pub pin_hash: Option<String>,
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Kiosk {
    pub id: i64,
    pub name: String,
    pub enrolled_at: Option<i64>,
    pub last_seen: Option<i64>,
    pub revoked_at: Option<i64>,
    pub code_expires_at: Option<i64>,
}

const STUDENT_COLUMNS: &str =
    "id, number, name, email, department, card_uid, pin_hash IS NOT NULL AS has_pin, active, version";

impl Store {
    // --- Admins ---

    pub async fn create_admin(&self, username: &str, password_hash: &str) -> Result<i64> {
        let now = now_ms();
        let sql =
            "INSERT INTO admins (username, password_hash, created_at, changed_at) VALUES ($1, $2, $3, $3) RETURNING id";
        let res: std::result::Result<i64, sqlx::Error> = on_db!(&self.db, pool => {
            sqlx::query_scalar(sql).bind(username).bind(password_hash).bind(now).fetch_one(pool).await
        });
        res.map_err(|e| match e {
            e if StoreError::is_unique_violation(&e) => {
                StoreError::Conflict(format!("admin {username:?} exists already"))
            }
            e => e.into(),
        })
    }

    pub async fn admin_credential(&self, username: &str) -> Result<Option<AdminCredential>> {
        let sql = "SELECT id, username, password_hash, active FROM admins WHERE username = $1";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).bind(username).fetch_optional(pool).await?))
    }

    pub async fn admin(&self, id: i64) -> Result<Option<Admin>> {
        let sql = "SELECT id, username, active, created_at FROM admins WHERE id = $1";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn list_admins(&self) -> Result<Vec<Admin>> {
        let sql = "SELECT id, username, active, created_at FROM admins ORDER BY username";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }

    /// Sets an admin's password hash and ends every session of theirs. Returns the admin's id.
    pub async fn set_admin_password(&self, username: &str, password_hash: &str) -> Result<i64> {
        let sql = "UPDATE admins SET password_hash = $1, changed_at = $2, version = version + 1 WHERE username = $3 RETURNING id";
        self.update_admin(username, sql, Some(password_hash)).await
    }

    /// Disables an admin (they can no longer sign in) and ends every session of theirs.
    pub async fn disable_admin(&self, username: &str) -> Result<i64> {
        let sql =
            "UPDATE admins SET active = FALSE, changed_at = $1, version = version + 1 WHERE username = $2 RETURNING id";
        self.update_admin(username, sql, None).await
    }

    async fn update_admin(&self, username: &str, sql: &str, hash: Option<&str>) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let id: Option<i64> = on_tx!(&mut tx, c => {
            let mut q = sqlx::query_scalar(sql);
            if let Some(h) = hash {
                q = q.bind(h);
            }
            q.bind(now).bind(username).fetch_optional(&mut **c).await?
        });
        let Some(id) = id else {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("no admin {username:?}")));
        };
        on_tx!(&mut tx, c => {
            sqlx::query("DELETE FROM sessions WHERE role = 'admin' AND subject_id = $1").bind(id).execute(&mut **c).await.map(drop)?
        });
        tx.commit().await?;
        Ok(id)
    }

    // --- Students ---

    /// Adds a student, with `audit` in the same transaction. Returns the new id.
    pub async fn add_student(&self, s: &NewStudent, audit: Option<&AuditEntry>) -> Result<i64> {
        let ids = self.add_students(std::slice::from_ref(s), audit).await?;
        ids.first().copied().ok_or_else(|| StoreError::Invalid("no student added".into()))
    }

    fn student_conflict(&self, e: sqlx::Error, s: &NewStudent) -> StoreError {
        if !StoreError::is_unique_violation(&e) {
            return e.into();
        }
        let msg = e.as_database_error().map(|d| d.message().to_owned()).unwrap_or_default();
        if msg.contains("card_uid") {
            StoreError::Conflict(format!("card {} belongs to another student", s.card_uid.as_deref().unwrap_or("")))
        } else {
            StoreError::Conflict(format!("student number {} exists already", s.number))
        }
    }

    /// Adds every student in one transaction with `audit`: all of them, or (on the first conflict)
    /// none.
    pub async fn add_students(&self, students: &[NewStudent], audit: Option<&AuditEntry>) -> Result<Vec<i64>> {
        let now = now_ms();
        let sql = "INSERT INTO students (number, name, email, department, card_uid, created_at, changed_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";
        let mut tx = self.write_tx().await?;
        let mut ids = Vec::with_capacity(students.len());
        for s in students {
            let res: std::result::Result<i64, sqlx::Error> = on_tx!(&mut tx, c => {
                sqlx::query_scalar(sql)
                    .bind(&s.number)
                    .bind(&s.name)
                    .bind(&s.email)
                    .bind(&s.department)
                    .bind(&s.card_uid)
                    .bind(now)
                    .fetch_one(&mut **c)
                    .await
            });
            match res {
                Ok(id) => ids.push(id),
                Err(e) => return Err(self.student_conflict(e, s)),
            }
        }
        if let Some(entry) = audit {
            on_tx!(&mut tx, c => audit_in!(&mut **c, entry)?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    pub async fn student_credential_by_number(&self, number: &str) -> Result<Option<StudentCredential>> {
        let sql = "SELECT id, number, name, pin_hash, active FROM students WHERE number = $1";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).bind(number).fetch_optional(pool).await?))
    }

    pub async fn student_credential_by_card(&self, card_uid: &str) -> Result<Option<StudentCredential>> {
        let sql = "SELECT id, number, name, pin_hash, active FROM students WHERE card_uid = $1";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).bind(card_uid).fetch_optional(pool).await?))
    }

    pub async fn student(&self, id: i64) -> Result<Option<Student>> {
        let sql = format!("SELECT {STUDENT_COLUMNS} FROM students WHERE id = $1");
        Ok(on_db!(&self.db, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn student_by_number(&self, number: &str) -> Result<Option<Student>> {
        let sql = format!("SELECT {STUDENT_COLUMNS} FROM students WHERE number = $1");
        Ok(on_db!(&self.db, pool => sqlx::query_as(&sql).bind(number).fetch_optional(pool).await?))
    }

    pub async fn list_students(&self) -> Result<Vec<Student>> {
        let sql = format!("SELECT {STUDENT_COLUMNS} FROM students ORDER BY number");
        Ok(on_db!(&self.db, pool => sqlx::query_as(&sql).fetch_all(pool).await?))
    }

    /// Sets (or, with `None`, clears) a student's PIN hash; ends their sessions. Returns their id.
    pub async fn set_student_pin(
        &self,
        number: &str,
        pin_hash: Option<&str>,
        audit: Option<&AuditEntry>,
    ) -> Result<i64> {
        let sql =
            "UPDATE students SET pin_hash = $1, changed_at = $2, version = version + 1 WHERE number = $3 RETURNING id";
        self.update_student(number, sql, Some(pin_hash.map(str::to_owned)), audit).await
    }

    /// Sets or clears a student's card UID (unique across students). Returns their id.
    pub async fn set_student_card(
        &self,
        number: &str,
        card_uid: Option<&str>,
        audit: Option<&AuditEntry>,
    ) -> Result<i64> {
        let sql =
            "UPDATE students SET card_uid = $1, changed_at = $2, version = version + 1 WHERE number = $3 RETURNING id";
        self.update_student(number, sql, Some(card_uid.map(str::to_owned)), audit).await.map_err(|e| match e {
            StoreError::Database(ref d) if StoreError::is_unique_violation(d) => {
                StoreError::Conflict(format!("card {} belongs to another student", card_uid.unwrap_or("")))
            }
            e => e,
        })
    }

    /// Disables a student (no more sign-ins) and ends their sessions. Returns their id.
    pub async fn disable_student(&self, number: &str, audit: Option<&AuditEntry>) -> Result<i64> {
        let sql =
            "UPDATE students SET active = FALSE, changed_at = $1, version = version + 1 WHERE number = $2 RETURNING id";
        self.update_student(number, sql, None, audit).await
    }

    /// Saves a student's name, email and department if the row is still at `version`: the
    /// compare-and-set and the audit row (before, after) in one transaction; a stale version is
    /// [`Edit::Conflict`](crate::Edit) with the row as it is now.
    pub async fn edit_student(
        &self,
        id: i64,
        version: i64,
        fields: &StudentFields,
        audit: &AuditEntry,
    ) -> Result<crate::Edit<Student>> {
        let select = format!("SELECT {STUDENT_COLUMNS} FROM students WHERE id = $1");
        let mut tx = self.write_tx().await?;
        let before: Option<Student> =
            on_tx!(&mut tx, c => sqlx::query_as(&select).bind(id).fetch_optional(&mut **c).await?);
        let Some(before) = before else {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("no student {id}")));
        };
        if before.version != version {
            tx.rollback().await?;
            return Ok(crate::Edit::Conflict(before));
        }
        on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE students SET name = $1, email = $2, department = $3, changed_at = $4, version = version + 1 \
                 WHERE id = $5 AND version = $6",
            )
            .bind(&fields.name)
            .bind(fields.email.as_deref())
            .bind(fields.department.as_deref())
            .bind(now_ms())
            .bind(id)
            .bind(version)
            .execute(&mut **c)
            .await
            .map(drop)?
        });
        let after: Student = on_tx!(&mut tx, c => sqlx::query_as(&select).bind(id).fetch_one(&mut **c).await?);
        let detail = serde_json::json!({ "before": before, "after": after }).to_string();
        let entry = AuditEntry { detail: Some(detail), ..audit.clone() };
        on_tx!(&mut tx, c => audit_in!(&mut **c, &entry)?);
        tx.commit().await?;
        Ok(crate::Edit::Saved(after))
    }

    /// Runs `sql` (`$1` = `first` when given, then the time, then the student number), ends the
    /// student's sessions, in one transaction.
    async fn update_student(
        &self,
        number: &str,
        sql: &str,
        first: Option<Option<String>>,
        audit: Option<&AuditEntry>,
    ) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let id: Option<i64> = on_tx!(&mut tx, c => {
            let mut q = sqlx::query_scalar(sql);
            if let Some(v) = first.clone() {
                q = q.bind(v);
            }
            q.bind(now).bind(number).fetch_optional(&mut **c).await?
        });
        let Some(id) = id else {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("no student {number:?}")));
        };
        on_tx!(&mut tx, c => {
            sqlx::query("DELETE FROM sessions WHERE role = 'student' AND subject_id = $1").bind(id).execute(&mut **c).await.map(drop)?
        });
        if let Some(entry) = audit {
            on_tx!(&mut tx, c => audit_in!(&mut **c, entry)?);
        }
        tx.commit().await?;
        Ok(id)
    }

    // --- Kiosks ---

    /// Registers a kiosk with a one-time enrolment code (its hash), valid until `expires_at`.
    pub async fn add_kiosk(&self, name: &str, code_hash: &str, expires_at: i64) -> Result<i64> {
        let sql =
            "INSERT INTO kiosks (name, code_hash, code_expires_at, created_at) VALUES ($1, $2, $3, $4) RETURNING id";
        Ok(on_db!(&self.db, pool => {
            sqlx::query_scalar(sql).bind(name).bind(code_hash).bind(expires_at).bind(now_ms()).fetch_one(pool).await?
        }))
    }

    /// Uses an enrolment code: when it is known, unexpired and unused, the kiosk gets the token (its
    /// hash) and the code is spent. Returns the kiosk.
    pub async fn enrol_kiosk(&self, code_hash: &str, token_hash: &str) -> Result<Option<Kiosk>> {
        let now = now_ms();
        let sql = "UPDATE kiosks SET token_hash = $1, code_hash = NULL, code_expires_at = NULL, enrolled_at = $2, \
                   last_seen = $2, version = version + 1 \
                   WHERE code_hash = $3 AND code_expires_at > $2 AND revoked_at IS NULL \
                   RETURNING id, name, enrolled_at, last_seen, revoked_at, code_expires_at";
        Ok(on_db!(&self.db, pool => {
            sqlx::query_as(sql).bind(token_hash).bind(now).bind(code_hash).fetch_optional(pool).await?
        }))
    }

    /// The enrolled, unrevoked kiosk holding this token (its hash); marks it seen.
    pub async fn kiosk_by_token(&self, token_hash: &str) -> Result<Option<Kiosk>> {
        let sql = "UPDATE kiosks SET last_seen = $1 WHERE token_hash = $2 AND revoked_at IS NULL \
                   RETURNING id, name, enrolled_at, last_seen, revoked_at, code_expires_at";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).bind(now_ms()).bind(token_hash).fetch_optional(pool).await?))
    }

    pub async fn list_kiosks(&self) -> Result<Vec<Kiosk>> {
        let sql = "SELECT id, name, enrolled_at, last_seen, revoked_at, code_expires_at FROM kiosks ORDER BY id";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }

    /// Revokes a kiosk at once: its cookie stops working and its students' sessions end.
    pub async fn revoke_kiosk(&self, id: i64) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let n = on_tx!(&mut tx, c => {
            sqlx::query("UPDATE kiosks SET revoked_at = $1, token_hash = NULL, code_hash = NULL, version = version + 1 \
                         WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut **c)
                .await?
                .rows_affected()
        });
        if n == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("no active kiosk {id}")));
        }
        on_tx!(&mut tx, c => {
            sqlx::query("DELETE FROM sessions WHERE kiosk_id = $1").bind(id).execute(&mut **c).await.map(drop)?
        });
        tx.commit().await
    }
}
