-- ConsultEase schema v1 (SQLite). Times are Unix milliseconds. Keep in step with ../postgres/.

CREATE TABLE faculty (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL,
    department          TEXT    NOT NULL,
    email               TEXT    UNIQUE,
    -- The derived status and the inputs it was derived from, as of `version`.
    status              TEXT    NOT NULL DEFAULT 'offline',
    present             INTEGER NOT NULL DEFAULT 0,
    busy                INTEGER NOT NULL DEFAULT 0,
    desk_online         INTEGER NOT NULL DEFAULT 0,
    -- Room for the admin override (ranks above the desk).
    override_status     TEXT,
    override_note       TEXT,
    override_expires_at INTEGER,
    changed_at          INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    -- Optimistic lock: bumps on every committed change of the row.
    version             INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE desks (
    id          TEXT    PRIMARY KEY,
    faculty_id  INTEGER UNIQUE REFERENCES faculty (id) ON DELETE SET NULL,
    -- domain::DeskRecord: each fact with the clock of the message that set it.
    last_boot   INTEGER,
    last_seq    INTEGER,
    state_boot  INTEGER,
    state_seq   INTEGER,
    present     INTEGER NOT NULL DEFAULT 0,
    busy        INTEGER NOT NULL DEFAULT 0,
    online_boot INTEGER,
    online_seq  INTEGER,
    online      INTEGER NOT NULL DEFAULT 0,
    last_seen   INTEGER,
    created_at  INTEGER NOT NULL,
    -- Optimistic lock, as on faculty.
    version     INTEGER NOT NULL DEFAULT 1
);

-- Append-only. `id` is the global event cursor of the live stream.
CREATE TABLE status_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL DEFAULT 'faculty_status',
    faculty_id  INTEGER NOT NULL REFERENCES faculty (id),
    version     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    present     INTEGER NOT NULL,
    busy        INTEGER NOT NULL,
    desk_online INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL,
    last_seen   INTEGER,
    source      TEXT    NOT NULL, -- desk | timeout | admin
    desk_id     TEXT,
    boot        INTEGER,
    seq         INTEGER,
    at          INTEGER NOT NULL
);
CREATE INDEX status_events_faculty ON status_events (faculty_id, version);
