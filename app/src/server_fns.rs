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
}

#[server(endpoint = "board")]
pub async fn get_board() -> Result<BoardData, AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            let snapshot = ctx.store.snapshot().await?;
            Ok(BoardData { snapshot, now: store::now_ms() })
        }
        .await,
    )
}
