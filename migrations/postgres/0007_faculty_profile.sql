-- What the admin dashboard edits beside name, department and email.
ALTER TABLE faculty ADD COLUMN room TEXT;
ALTER TABLE faculty ADD COLUMN photo_url TEXT;
