-- Consultation requests. Times are Unix milliseconds.

CREATE TABLE requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id   INTEGER NOT NULL REFERENCES students (id),
    faculty_id   INTEGER NOT NULL REFERENCES faculty (id),
    course       TEXT,
    message      TEXT    NOT NULL,
    state        TEXT    NOT NULL,              -- domain::consultation::State
    note         TEXT,                          -- the faculty member's note with an answer
    requested_at INTEGER NOT NULL,
    changed_at   INTEGER NOT NULL,
    accepted_at  INTEGER,
    finished_at  INTEGER,
    -- The faculty member's queue version at which the request entered the queue: an ack for that
    -- version or a later one delivers it.
    queued_in    INTEGER,
    -- The desk clock of the last reply applied: an older or repeated reply changes nothing.
    reply_boot   INTEGER,
    reply_seq    INTEGER,
    version      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX requests_faculty_state ON requests (faculty_id, state);
CREATE INDEX requests_student ON requests (student_id, requested_at);

-- The version of a faculty member's queue snapshot (bumps with every change to the queue), and how
-- many wait (shown on the public board, so it versions the faculty row too).
ALTER TABLE faculty ADD COLUMN queue_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE faculty ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE status_events ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;

-- Each committed change of a request, for the student's live stream (`id` is its cursor).
CREATE TABLE request_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests (id),
    student_id INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX request_events_student ON request_events (student_id, id);

-- Place in line among the faculty member's waiting requests (1 = next), kept with the row so that a
-- change of place is a change of the row (a new version the student's page shows).
ALTER TABLE requests ADD COLUMN position INTEGER;
