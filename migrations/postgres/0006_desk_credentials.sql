-- A desk unit's MQTT password, as a Mosquitto `$7$` PBKDF2-SHA512 hash (never the password);
-- NULL: the desk has no credential yet and can connect only where anonymous access is allowed.
ALTER TABLE desks ADD COLUMN mqtt_hash TEXT;
