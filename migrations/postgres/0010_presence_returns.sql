-- Each time a faculty member became available after being away or offline ("usually back around"),
-- drawn from status_events by a background pass (never in the ingest's hot path).
CREATE TABLE presence_returns (
    faculty_id BIGINT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX presence_returns_faculty ON presence_returns (faculty_id, at);
-- Each faculty member's status as of the newest event that pass has read.
CREATE TABLE presence_last (
    faculty_id BIGINT PRIMARY KEY,
    status     TEXT   NOT NULL
);
