//! Small facts the server keeps about itself (`store_meta`), and secrets made from the OS's RNG.

use crate::{Result, Store, StoreError, now_ms};

/// `n` bytes from the operating system's random source, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Io("the OS random source".into(), std::io::Error::other(e)))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl Store {
    /// Commits a tiny write (for `/readyz`): reads can go on working while writes fail (a full disk,
    /// files made read-only, a PostgreSQL standby), and a server that cannot write is not ready.
    pub async fn probe_write(&self) -> Result<()> {
        let mut tx = self.write_tx().await?;
        on_tx!(&mut tx, c => {
            sqlx::query("UPDATE store_meta SET value = $1 WHERE key = 'write_probe'")
                .bind(now_ms().to_string())
                .execute(&mut **c)
                .await
                .map(drop)?
        });
        tx.commit().await
    }

    /// The server's MQTT client id: `consultease-server-` and 64 random bits, made at first start and
    /// kept, so that it stays stable (the broker keeps the server's session under it) and nobody can
    /// guess it to take the session over.
    pub async fn server_client_id(&self) -> Result<String> {
        let fresh = format!("consultease-server-{}", random_hex(8)?);
        self.meta_get_or_insert("mqtt_client_id", &fresh).await
    }

    /// The value stored under `key`, storing `value` first when there is none (first writer wins).
    pub async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let insert = "INSERT INTO store_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
        let select = "SELECT value FROM store_meta WHERE key = $1";
        Ok(on_db!(&self.db, pool => {
            sqlx::query(insert).bind(key).bind(value).execute(pool).await?;
            sqlx::query_scalar(select).bind(key).fetch_one(pool).await?
        }))
    }
}
