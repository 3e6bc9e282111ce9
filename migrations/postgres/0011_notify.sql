-- Several instances on one database (docs/ARCHITECTURE.md, "Several instances"): every instance
-- learns of a commit by NOTIFY and reads the logs from its own cursor. The notification carries
-- only where to look: `e:<id>` (the newest board event of the statement), `r:<id>` (the newest
-- request event), `q:<faculty id>` (that faculty member's desk queue changed). Triggers, so that
-- no write path can forget one; NOTIFY is transactional, so a rolled-back write says nothing.
-- One per statement for the logs: the ingest's bulk insert of hundreds of events is one.

CREATE FUNCTION consultease_notify_log() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    newest BIGINT := (SELECT MAX(id) FROM new_rows);
BEGIN
    IF newest IS NOT NULL THEN -- an INSERT … SELECT of no rows says nothing
        PERFORM pg_notify('consultease', TG_ARGV[0] || newest::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER status_events_notify AFTER INSERT ON status_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION consultease_notify_log('e:');

CREATE TRIGGER request_events_notify AFTER INSERT ON request_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION consultease_notify_log('r:');

CREATE FUNCTION consultease_notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('consultease', 'q:' || NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER faculty_queue_notify AFTER UPDATE OF queue_version ON faculty
    FOR EACH ROW WHEN (NEW.queue_version IS DISTINCT FROM OLD.queue_version)
    EXECUTE FUNCTION consultease_notify_queue();
