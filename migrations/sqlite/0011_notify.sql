-- PostgreSQL's 0011 adds the NOTIFY triggers several instances need; one SQLite file serves one
-- process, whose events go straight to its own buses. Kept so both schemas have the same versions.
SELECT 1;
