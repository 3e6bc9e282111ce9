//! Transactions that never hand a broken connection back to the pool.
//!
//! Regression (outside test run, SQLite files made unwritable for 10 s under load): when `COMMIT`
//! failed, SQLite had already rolled the transaction back, sqlx's own rollback then failed too, and
//! its bookkeeping left the connection "inside a transaction" for ever. Back in the pool, that
//! connection failed every later `BEGIN` ("attempted to call begin_with at non-zero transaction
//! depth"): the ingest stalled for good and about half the reads failed, until a restart.
//!
//! A [`PoolTx`] owns its pooled connection and issues `BEGIN`/`COMMIT`/`ROLLBACK` itself. Only a
//! transaction that ended cleanly returns its connection to the pool; any other end — an error
//! anywhere, a failed commit or rollback, a future dropped half-way (a cancelled request) — closes
//! the connection, which ends whatever was open on it, and the pool opens a fresh one when needed.

use crate::{Db, Result};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor};
use std::ops::{Deref, DerefMut};

pub(crate) struct PoolTx<DB: Database> {
    /// `None` once the transaction ended cleanly (the connection went back to the pool).
    conn: Option<PoolConnection<DB>>,
}

impl<DB: Database> PoolTx<DB> {
    fn new(conn: PoolConnection<DB>) -> PoolTx<DB> {
        PoolTx { conn: Some(conn) }
    }

    /// The transaction ended cleanly: the connection goes back to the pool.
    fn release(mut self) {
        self.conn = None;
    }
}

impl<DB: Database> Deref for PoolTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        // Only `commit`/`rollback` (which consume the Tx) take the connection out.
        self.conn.as_deref().expect("a transaction's connection is present until it ends")
    }
}

impl<DB: Database> DerefMut for PoolTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.conn.as_deref_mut().expect("a transaction's connection is present until it ends")
    }
}

impl<DB: Database> Drop for PoolTx<DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// A transaction on whichever backend the store runs; bodies use `on_tx!` to be type-checked once
/// per backend.
pub(crate) enum Tx {
    Sqlite(PoolTx<sqlx::Sqlite>),
    Postgres(PoolTx<sqlx::Postgres>),
}

/// `BEGIN`, `COMMIT`, `ROLLBACK` on a connection of either backend. (Through `Executor::execute`,
/// whose future is boxed: `sqlx::raw_sql`'s generic future is not provably `Send` across the
/// higher-ranked executor bound, and the ingest runs on a spawned task.)
macro_rules! run {
    ($conn:expr, $sql:expr) => {
        Executor::execute(&mut **$conn, $sql).await.map(drop)
    };
}

impl Tx {
    /// How this backend's generated statements write their parameters.
    pub(crate) fn params(&self) -> crate::Params {
        match self {
            Tx::Sqlite(_) => crate::Params::InOrder,
            Tx::Postgres(_) => crate::Params::Numbered,
        }
    }

    pub(crate) async fn begin(db: &Db, begin: &'static str) -> Result<Tx> {
        Ok(match db {
            Db::Sqlite(pool) => {
                let mut tx = PoolTx::new(pool.acquire().await?);
                run!(&mut tx, begin)?;
                Tx::Sqlite(tx)
            }
            Db::Postgres(pool) => {
                let mut tx = PoolTx::new(pool.acquire().await?);
                run!(&mut tx, begin)?;
                Tx::Postgres(tx)
            }
        })
    }

    pub(crate) async fn commit(self) -> Result<()> {
        self.end("COMMIT").await
    }

    /// Ends the transaction without writing anything (a business rule said no, or a read is done).
    pub(crate) async fn rollback(self) -> Result<()> {
        self.end("ROLLBACK").await
    }

    async fn end(self, sql: &'static str) -> Result<()> {
        match self {
            Tx::Sqlite(mut tx) => {
                run!(&mut tx, sql)?;
                tx.release();
            }
            Tx::Postgres(mut tx) => {
                run!(&mut tx, sql)?;
                tx.release();
            }
        }
        Ok(())
    }
}
