//! Server functions: called from the browser over HTTP (`/api/<endpoint>`), run on the server.

use crate::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the board page renders from: one snapshot, and the server's clock for the ages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardData {
    pub snapshot: domain::Snapshot,
    /// Unix ms when the snapshot was read.
    pub now: i64,
    /// Minutes the university's local time is ahead of UTC (office hours are local times).
    pub utc_offset_min: i32,
}

#[server(endpoint = "board")]
pub async fn get_board() -> Result<BoardData, AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            let snapshot = ctx.store.snapshot().await?;
            let now = store::now_ms();
            Ok(BoardData { snapshot, now, utc_offset_min: ctx.local.utc_offset_min(now) })
        }
        .await,
    )
}
