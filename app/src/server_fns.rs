//! Server functions: called from the browser over HTTP (`/api/<endpoint>`), run on the server.

use crate::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// The newest applied database migration.
    pub schema_version: i64,
    pub backend: String,
    pub uptime_s: u64,
}

/// Reads the schema version from the database and the server's uptime.
#[server(endpoint = "system_info")]
pub async fn get_system_info() -> Result<SystemInfo, AppError> {
    let ctx = crate::ssr::AppContext::current()?;
    let schema_version = ctx.store.schema_version().await?;
    Ok(SystemInfo {
        schema_version,
        backend: ctx.store.backend().as_str().to_owned(),
        uptime_s: ctx.started.elapsed().as_secs(),
    })
}

/// What the board page renders from: one snapshot, and the server's clock for the ages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardData {
    pub snapshot: domain::Snapshot,
    /// Unix ms when the snapshot was read.
    pub now: i64,
}

#[server(endpoint = "board")]
pub async fn get_board() -> Result<BoardData, AppError> {
    let ctx = crate::ssr::AppContext::current()?;
    let snapshot = ctx.store.snapshot().await?;
    Ok(BoardData { snapshot, now: store::now_ms() })
}
