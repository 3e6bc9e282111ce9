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
    /// Each faculty member's returns on today's weekday in recent weeks, for "usually back around".
    pub back: Back,
}

/// The board's local-time data, read again by an open board every few minutes: a board left open
/// past midnight gets the new day's history, and one open across a change of daylight saving
/// time the new offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalData {
    pub utc_offset_min: i32,
    pub back: Back,
}

#[server(endpoint = "board_local")]
pub async fn get_board_local() -> Result<LocalData, AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            let now = store::now_ms();
            let utc_offset_min = ctx.local.utc_offset_min(now);
            Ok(LocalData { utc_offset_min, back: back(&ctx.store, None, now, utc_offset_min).await? })
        }
        .await,
    )
}

/// Returns to availability on one weekday of recent weeks (`domain::presence`), per faculty
/// member with enough of them to say anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Back {
    /// The local day (days since 1970-01-01) they are for: on another day the board says nothing.
    pub day: i64,
    /// (faculty, each day's return minutes).
    pub faculty: Vec<(i64, Vec<Vec<u16>>)>,
}

impl Back {
    /// "Usually back around 13:10" for someone away at `now`, when their history says so.
    pub fn line(&self, faculty: i64, now: i64, offset_min: i32) -> Option<String> {
        let local_day = (now + i64::from(offset_min) * 60_000).div_euclid(86_400_000);
        if local_day != self.day {
            return None;
        }
        let (_, minute) = domain::schedule::local(now, offset_min);
        let days = &self.faculty.iter().find(|(f, _)| *f == faculty)?.1;
        domain::presence::usually_back(days, minute).map(|m| format!("Usually back around {}", domain::schedule::hm(m)))
    }
}

/// The returns of recent weeks on `now`'s local weekday, grouped per faculty member (only `one`'s
/// when given).
#[cfg(feature = "ssr")]
pub async fn back(store: &store::Store, one: Option<i64>, now: i64, offset_min: i32) -> Result<Back, AppError> {
    use domain::presence::{MIN_DAYS, WEEKS, same_weekday};
    let day = (now + i64::from(offset_min) * 60_000).div_euclid(86_400_000);
    let (weekday, _) = domain::schedule::local(now, offset_min);
    let since = now - (WEEKS * 7 + 1) * 86_400_000;
    let returns = match one {
        Some(f) => store.faculty_returns_since(f, since).await?.into_iter().map(|at| (f, at)).collect(),
        None => store.returns_since(since).await?,
    };
    let mut by_faculty: std::collections::BTreeMap<i64, Vec<i64>> = std::collections::BTreeMap::new();
    for (f, at) in returns {
        by_faculty.entry(f).or_default().push(at);
    }
    let faculty = by_faculty
        .into_iter()
        .map(|(f, ats)| (f, same_weekday(&ats, weekday, day, offset_min)))
        .filter(|(_, days)| days.len() >= MIN_DAYS)
        .collect();
    Ok(Back { day, faculty })
}

#[server(endpoint = "board")]
pub async fn get_board() -> Result<BoardData, AppError> {
    crate::ssr::respond(
        async {
            let ctx = crate::ssr::AppContext::current()?;
            let snapshot = ctx.store.snapshot().await?;
            let now = store::now_ms();
            let utc_offset_min = ctx.local.utc_offset_min(now);
            let back = back(&ctx.store, None, now, utc_offset_min).await?;
            Ok(BoardData { snapshot, now, utc_offset_min, back })
        }
        .await,
    )
}
