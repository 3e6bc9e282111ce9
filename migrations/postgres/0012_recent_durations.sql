-- A faculty member's most recent accept -> done durations (the students' wait estimates), read
-- newest first and only as many as the estimate uses, however long the history: without it every
-- request's view read all of that faculty member's finished requests (BENCHMARKS.md row 8b‴).
CREATE INDEX requests_done_recent ON requests (faculty_id, finished_at) WHERE state = 'done';
