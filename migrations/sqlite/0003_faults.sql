-- Small facts the server keeps about itself (its MQTT client id, the readiness write probe).
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO store_meta (key, value) VALUES ('write_probe', '0');

-- Desk messages the ingest could not apply for a reason that retrying cannot cure (a corrupt row, a
-- constraint): set aside here with the reason, acknowledged, so that the messages behind them go on.
CREATE TABLE dead_letters (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    reason  TEXT    NOT NULL
);
