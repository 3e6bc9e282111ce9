//! The accounts service: who may sign in, how, and for how long. Used by the HTTP endpoints, the
//! server functions of the pages and the admin CLI alike, so each rule lives in one place:
//!
//! - secrets: argon2id hashes of passwords and PINs ([`Hasher`]); random tokens (sessions, kiosks,
//!   enrolment codes) stored only as SHA-256;
//! - sign-in: lockout per account *and* per client address (`domain::auth::LockoutPolicy`), the same
//!   answer and about the same time whether or not the account exists, a new session id at every
//!   sign-in (the browser's previous one ends), an audit entry for each outcome;
//! - sessions: server-side rows, ended when idle or old (`domain::auth::SessionPolicy`), by sign-out,
//!   by a password or PIN change, by disabling the account or revoking the kiosk.

mod hash;
pub mod mqtt_password;
pub mod roster;
pub mod tickets;

pub use hash::{HashError, Hasher};
pub use tickets::{TICKET_FOLLOW_MS, TICKET_LINK_MS, TicketError, Tickets};

use domain::auth::{self as rules, LockoutPolicy, Role, SessionPolicy};
use sha2::{Digest, Sha256};
use store::{AuditEntry, Kiosk, SessionRow, Store, StoreError, now_ms};

/// Where a request came from, for lockout and the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Client {
    /// The client's IP address.
    pub addr: Option<String>,
    pub user_agent: Option<String>,
}

/// Who a session belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Principal {
    Admin { id: i64, username: String },
    Student { id: i64, number: String, name: String, kiosk_id: Option<i64> },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::Admin { .. } => Role::Admin,
            Principal::Student { .. } => Role::Student,
        }
    }

    /// How the audit log names this actor.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin { username, .. } => format!("admin:{username}"),
            Principal::Student { number, .. } => format!("student:{number}"),
        }
    }

    fn policy(&self) -> SessionPolicy {
        match self {
            Principal::Admin { .. } => SessionPolicy::ADMIN,
            Principal::Student { kiosk_id: Some(_), .. } => SessionPolicy::KIOSK_STUDENT,
            Principal::Student { kiosk_id: None, .. } => SessionPolicy::STUDENT,
        }
    }
}

/// A live session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    /// When it ends unless used again (Unix ms): the kiosk's countdown.
    pub ends_at: i64,
    pub idle_ms: i64,
}

/// A successful sign-in: the new session's token (for the cookie only), and for how long the
/// cookie may live.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub token: String,
    pub principal: Principal,
    pub max_age_s: i64,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn").field("principal", &self.principal).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong name, password, PIN or card, or no such (active) account: one answer for all.
    #[error("wrong credentials")]
    Rejected,
    #[error("locked out for {retry_after_s} s")]
    LockedOut { retry_after_s: u64 },
    /// A new password, PIN or name breaks the rules.
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// The accounts service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Auth {
    store: Store,
    hasher: Hasher,
    /// How long a kiosk student session lasts without input.
    kiosk_idle_ms: i64,
    /// The ticket-link key, read from the database once (it never changes).
    tickets: std::sync::Arc<tokio::sync::OnceCell<Tickets>>,
}

/// A fresh random secret: 32 bytes from the OS, hex.
fn token() -> Result<String, AuthError> {
    Ok(store::random_hex(32)?)
}

/// What is stored of a token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Enrolment codes: 10 characters of Crockford's base32 (no I, L, O, U), shown as `XXXXX-XXXXX`.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// How long an enrolment code is valid.
pub const ENROL_CODE_MS: i64 = 15 * 60_000;

fn normalize_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

impl Auth {
    pub fn new(store: Store, hasher: Hasher) -> Auth {
        Auth { store, hasher, kiosk_idle_ms: SessionPolicy::KIOSK_STUDENT.idle_ms, tickets: Default::default() }
    }

    /// Ticket links' signer, under the key kept in the database (made at first use; the same for
    /// every instance on that database).
    pub async fn tickets(&self) -> Result<&Tickets, AuthError> {
        self.tickets
            .get_or_try_init(|| async {
                let key = self.store.meta_get_or_insert("ticket_key", &token()?).await?;
                Ok::<_, AuthError>(Tickets::new(key.as_bytes()))
            })
            .await
    }

    /// Sets how long a student's session at a kiosk lasts without input (default 120 s).
    pub fn with_kiosk_idle(mut self, idle: std::time::Duration) -> Auth {
        self.kiosk_idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX).max(1_000);
        self
    }

    fn policy(&self, p: &Principal) -> SessionPolicy {
        match p {
            Principal::Student { kiosk_id: Some(_), .. } => {
                SessionPolicy { idle_ms: self.kiosk_idle_ms, ..SessionPolicy::KIOSK_STUDENT }
            }
            other => other.policy(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// Signs an admin in. `replaces`: the token of the session the browser had, which ends.
    pub async fn sign_in_admin(
        &self,
        username: &str,
        password: &str,
        replaces: Option<&str>,
        client: &Client,
    ) -> Result<SignedIn, AuthError> {
        let name = username.trim().to_ascii_lowercase();
        let key = format!("account:admin:{}", truncate(&name));
        self.guard(&key, client, &format!("admin:{}", truncate(&name))).await?;
        let cred = self.store.admin_credential(&name).await?;
        let usable = cred.as_ref().filter(|c| c.active).map(|c| c.password_hash.as_str());
        let ok = self.hasher.verify(password, usable).await?;
        match cred.filter(|_| ok) {
            Some(c) => {
                let principal = Principal::Admin { id: c.id, username: c.username };
                self.start(&key, principal, None, replaces, client, "signed_in").await
            }
            None => Err(self.failed(&key, client, &format!("admin:{}", truncate(&name)), "password").await),
        }
    }

    /// Signs a student in with number and PIN (on a kiosk when `kiosk_id` is given).
    pub async fn sign_in_student(
        &self,
        number: &str,
        pin: &str,
        kiosk_id: Option<i64>,
        replaces: Option<&str>,
        client: &Client,
    ) -> Result<SignedIn, AuthError> {
        let number = number.trim();
        let key = format!("account:student:{}", truncate(number));
        self.guard(&key, client, &format!("student:{}", truncate(number))).await?;
        let cred = self.store.student_credential_by_number(number).await?;
        let usable = cred.as_ref().filter(|c| c.active).and_then(|c| c.pin_hash.as_deref());
        let ok = self.hasher.verify(pin, usable).await?;
        match cred.filter(|_| ok) {
            Some(c) => {
                let principal = Principal::Student { id: c.id, number: c.number, name: c.name, kiosk_id };
                self.start(&key, principal, kiosk_id, replaces, client, "signed_in").await
            }
            None => Err(self.failed(&key, client, &format!("student:{}", truncate(number)), "pin").await),
        }
    }

    /// Signs a student in by card, at an enrolled kiosk only (the caller checked the kiosk).
    pub async fn sign_in_card(
        &self,
        kiosk_id: i64,
        raw_uid: &str,
        replaces: Option<&str>,
        client: &Client,
    ) -> Result<SignedIn, AuthError> {
        let uid = rules::normalize_card_uid(raw_uid).unwrap_or_default();
        let key = format!("account:card:{}", truncate(&uid));
        self.guard(&key, client, &format!("card:{}", truncate(&uid))).await?;
        let cred = match uid.is_empty() {
            true => None,
            false => self.store.student_credential_by_card(&uid).await?,
        };
        match cred.filter(|c| c.active) {
            Some(c) => {
                let principal =
                    Principal::Student { id: c.id, number: c.number, name: c.name, kiosk_id: Some(kiosk_id) };
                self.start(&key, principal, Some(kiosk_id), replaces, client, "signed_in_by_card").await
            }
            None => Err(self.failed(&key, client, &format!("card:{}", truncate(&uid)), "card").await),
        }
    }

    /// Refuses at once (no hashing) while the account key or the client's address is locked out.
    async fn guard(&self, key: &str, client: &Client, _claimed: &str) -> Result<(), AuthError> {
        let now = now_ms();
        let addr_key = address_key(client);
        let keys: Vec<&str> = std::iter::once(key).chain(addr_key.as_deref()).collect();
        let records = self.store.attempts(&keys).await?;
        let wait = records.iter().filter_map(|a| a.wait(now)).max();
        match wait {
            Some(ms) => {
                Err(AuthError::LockedOut { retry_after_s: u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1) })
            }
            None => Ok(()),
        }
    }

    /// Records a failed sign-in against the account key and the address; audits it (and a lockout
    /// it starts). Returns the error to answer with.
    async fn failed(&self, key: &str, client: &Client, claimed: &str, what: &str) -> AuthError {
        let now = now_ms();
        let addr_key = address_key(client);
        let keys: Vec<&str> = std::iter::once(key).chain(addr_key.as_deref()).collect();
        let records = match self.store.attempts(&keys).await {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        let mut next = Vec::with_capacity(keys.len());
        let mut audit =
            vec![self.entry(claimed, "sign_in_failed", None, Some(format!(r#"{{"wrong":"{what}"}}"#)), client)];
        for ((k, before), policy) in keys.iter().zip(records).zip([LockoutPolicy::ACCOUNT, LockoutPolicy::ADDRESS]) {
            let after = before.fail(policy, now);
            if let (None, Some(wait)) = (before.wait(now), after.wait(now)) {
                audit.push(self.entry(
                    claimed,
                    "locked_out",
                    Some((*k).to_owned()),
                    Some(format!(r#"{{"seconds":{}}}"#, wait / 1000)),
                    client,
                ));
            }
            next.push((*k, after));
        }
        match self.store.record_attempts(&next, &audit).await {
            Ok(()) => AuthError::Rejected,
            Err(e) => e.into(),
        }
    }

    async fn start(
        &self,
        key: &str,
        principal: Principal,
        kiosk_id: Option<i64>,
        replaces: Option<&str>,
        client: &Client,
        action: &str,
    ) -> Result<SignedIn, AuthError> {
        let now = now_ms();
        let token = token()?;
        let row = SessionRow {
            role: principal.role(),
            subject_id: id_of(&principal),
            kiosk_id,
            created_at: now,
            last_seen: now,
        };
        let old = replaces.map(token_hash);
        let detail = kiosk_id.map(|k| format!(r#"{{"kiosk":{k}}}"#));
        let audit = self.entry(&principal.actor(), action, None, detail, client);
        self.store.start_session(&token_hash(&token), &row, old.as_deref(), &audit).await?;
        self.store.clear_attempts(key).await?;
        let max_age_s = principal.policy().absolute_ms / 1000;
        Ok(SignedIn { token, principal, max_age_s })
    }

    /// The live session behind `token`, if any; marks it used. An idle or expired session, or one
    /// whose account was disabled, is ended here.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, AuthError> {
        let hash = token_hash(token);
        let Some(row) = self.store.session(&hash).await? else { return Ok(None) };
        let principal = match row.role {
            Role::Admin => self
                .store
                .admin(row.subject_id)
                .await?
                .filter(|a| a.active)
                .map(|a| Principal::Admin { id: a.id, username: a.username }),
            Role::Student => self
                .store
                .student(row.subject_id)
                .await?
                .filter(|s| s.active)
                .map(|s| Principal::Student { id: s.id, number: s.number, name: s.name, kiosk_id: row.kiosk_id }),
        };
        let now = now_ms();
        let Some(principal) = principal.filter(|p| self.policy(p).alive(row.created_at, row.last_seen, now)) else {
            self.store.end_session(&hash, None).await?;
            return Ok(None);
        };
        let policy = self.policy(&principal);
        // One write per interval at most per session, however many requests it makes.
        if now - row.last_seen >= policy.touch_every_ms() {
            self.store.touch_session(&hash, now).await?;
        }
        Ok(Some(Session { ends_at: policy.ends_at(row.created_at, now), idle_ms: policy.idle_ms, principal }))
    }

    /// Ends the session behind `token` (audited when it existed).
    pub async fn sign_out(&self, token: &str, client: &Client) -> Result<(), AuthError> {
        let who = self.session(token).await?.map(|s| s.principal.actor());
        let audit = who.map(|w| self.entry(&w, "signed_out", None, None, client));
        self.store.end_session(&token_hash(token), audit.as_ref()).await?;
        Ok(())
    }

    /// The enrolled kiosk holding `token`, if it is not revoked.
    pub async fn kiosk(&self, token: &str) -> Result<Option<Kiosk>, AuthError> {
        Ok(self.store.kiosk_by_token(&token_hash(token)).await?)
    }

    /// Registers a kiosk; returns its id and the one-time enrolment code (valid 15 minutes).
    pub async fn add_kiosk(&self, name: &str, actor: &str, client: &Client) -> Result<(i64, String), AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(AuthError::Invalid("The kiosk's name must be 1 to 80 characters."));
        }
        let raw = store::random_hex(10)?;
        let code: String = raw
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let v = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("00"), 16).unwrap_or(0);
                CODE_ALPHABET[usize::from(v % 32)] as char
            })
            .collect();
        let id = self.store.add_kiosk(name, &token_hash(&code), now_ms() + ENROL_CODE_MS).await?;
        self.store
            .audit(&self.entry(
                actor,
                "kiosk_added",
                Some(format!("kiosk:{id}")),
                Some(format!(r#"{{"name":{}}}"#, json(name))),
                client,
            ))
            .await?;
        Ok((id, format!("{}-{}", &code[..5], &code[5..])))
    }

    /// Enrols the browser presenting `code`: returns the kiosk and its long-lived token. A wrong,
    /// used or expired code is `Rejected`, and counts against the client's address.
    pub async fn enrol_kiosk(&self, code: &str, client: &Client) -> Result<(Kiosk, String), AuthError> {
        let code = normalize_code(code);
        let key = "account:kiosk-enrolment";
        self.guard(key, client, "kiosk").await?;
        let token = token()?;
        match self.store.enrol_kiosk(&token_hash(&code), &token_hash(&token)).await? {
            Some(k) => {
                let audit = self.entry("kiosk", "kiosk_enrolled", Some(format!("kiosk:{}", k.id)), None, client);
                self.store.audit(&audit).await?;
                Ok((k, token))
            }
            None => Err(self.failed(key, client, "kiosk", "code").await),
        }
    }

    pub async fn revoke_kiosk(&self, id: i64, actor: &str, client: &Client) -> Result<(), AuthError> {
        self.store.revoke_kiosk(id).await?;
        self.store.audit(&self.entry(actor, "kiosk_revoked", Some(format!("kiosk:{id}")), None, client)).await?;
        Ok(())
    }

    pub async fn create_admin(
        &self,
        username: &str,
        password: &str,
        actor: &str,
        client: &Client,
    ) -> Result<i64, AuthError> {
        rules::check_username(username).map_err(AuthError::Invalid)?;
        rules::check_password(password).map_err(AuthError::Invalid)?;
        let hash = self.hasher.hash(password).await?;
        let id = self.store.create_admin(username, &hash).await?;
        self.store.audit(&self.entry(actor, "admin_created", Some(format!("admin:{username}")), None, client)).await?;
        Ok(id)
    }

    pub async fn set_admin_password(
        &self,
        username: &str,
        password: &str,
        actor: &str,
        client: &Client,
    ) -> Result<(), AuthError> {
        rules::check_password(password).map_err(AuthError::Invalid)?;
        let hash = self.hasher.hash(password).await?;
        self.store.set_admin_password(username, &hash).await?;
        self.store
            .audit(&self.entry(actor, "admin_password_set", Some(format!("admin:{username}")), None, client))
            .await?;
        Ok(())
    }

    pub async fn disable_admin(&self, username: &str, actor: &str, client: &Client) -> Result<(), AuthError> {
        self.store.disable_admin(username).await?;
        self.store.audit(&self.entry(actor, "admin_disabled", Some(format!("admin:{username}")), None, client)).await?;
        Ok(())
    }

    pub async fn set_student_pin(
        &self,
        number: &str,
        pin: &str,
        actor: &str,
        client: &Client,
    ) -> Result<(), AuthError> {
        rules::check_pin(pin).map_err(AuthError::Invalid)?;
        let hash = self.hasher.hash(pin).await?;
        let entry = self.entry(actor, "student_pin_set", Some(format!("student:{number}")), None, client);
        self.store.set_student_pin(number, Some(&hash), Some(&entry)).await?;
        Ok(())
    }

    /// An audit entry from `actor` (an actor or what a failed sign-in claimed to be).
    pub fn entry(
        &self,
        actor: &str,
        action: &str,
        subject: Option<String>,
        detail: Option<String>,
        client: &Client,
    ) -> AuditEntry {
        AuditEntry {
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject,
            detail,
            client_addr: client.addr.clone(),
            user_agent: client.user_agent.as_deref().map(truncate).map(str::to_owned),
        }
    }
}

fn id_of(p: &Principal) -> i64 {
    match p {
        Principal::Admin { id, .. } | Principal::Student { id, .. } => *id,
    }
}

fn address_key(client: &Client) -> Option<String> {
    client.addr.as_deref().map(|a| format!("address:{a}"))
}

/// What a client typed, cut to a length fit for a key or a log line.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn json(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}
