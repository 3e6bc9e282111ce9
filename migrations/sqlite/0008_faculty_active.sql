-- Deactivated faculty members leave the board and take no requests; their history stays.
ALTER TABLE faculty ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
