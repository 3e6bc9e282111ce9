-- Weekly office hours, one slot per line as domain::schedule writes them ("Mon 14:00-16:00 Room B-204").
ALTER TABLE faculty ADD COLUMN office_hours TEXT;
