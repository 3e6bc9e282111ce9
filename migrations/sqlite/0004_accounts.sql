-- Accounts, sessions, sign-in lockout and the audit trail. Times are Unix milliseconds.

CREATE TABLE admins (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,            -- argon2id PHC string
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    changed_at    INTEGER NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE students (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    number     TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    email      TEXT,
    department TEXT,
    card_uid   TEXT    UNIQUE,
    pin_hash   TEXT,                           -- argon2id PHC string; NULL until a PIN is set
    active     INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE kiosks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL,
    code_hash        TEXT    UNIQUE,           -- SHA-256 of the one-time enrolment code
    code_expires_at  INTEGER,
    token_hash       TEXT    UNIQUE,           -- SHA-256 of the kiosk cookie, once enrolled
    enrolled_at      INTEGER,
    last_seen        INTEGER,
    revoked_at       INTEGER,
    created_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1
);

-- Server-side sessions: the cookie carries a random token; only its SHA-256 is stored.
CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY,
    role       TEXT    NOT NULL,               -- admin | student
    subject_id INTEGER NOT NULL,
    kiosk_id   INTEGER REFERENCES kiosks (id),
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);
CREATE INDEX sessions_subject ON sessions (role, subject_id);

-- Failed sign-ins per key (`account:admin:NAME`, `account:student:NUMBER`, `address:IP`), whether
-- or not the account exists.
CREATE TABLE sign_in_attempts (
    key          TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
);

-- Append-only: every sign-in, sign-out, lockout, kiosk enrolment and admin action.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,              -- `admin:NAME`, `student:NUMBER`, `cli`, `system`, or what was claimed
    action      TEXT    NOT NULL,
    subject     TEXT,
    detail      TEXT,                          -- JSON (before/after for edits)
    client_addr TEXT,
    user_agent  TEXT
);
CREATE INDEX audit_at ON audit (at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
