//! ConsultEase's pure rules. Nothing here does I/O, reads a clock or touches a database: every
//! function takes what it needs and returns a decision, so each rule is unit-tested on its own.
//!
//! - [`auth`]: credential policies, lockout after failed sign-ins, session lifetimes.
//! - [`batch`]: how a batch of desk changes is decided (the ingest transaction's pure middle).
//! - [`consultation`]: a consultation request's life (a state machine) and its rules.
//! - [`clock`]: a desk's (boot, seq) clock and its ordering.
//! - [`desk`]: how a desk message changes a desk's recorded state (stale, duplicate, reordered).
//! - [`schedule`]: office hours, written and read one slot per line, and what the board says.
//! - [`roster`]: what a student record is; checking an import row by row.
//! - [`status`]: how a faculty member's status is derived (admin override > desk).
//! - [`time`]: UTC dates and times from and to Unix ms (the audit log's times).
//! - [`protocol`]: the desk-unit MQTT contract (topics, payloads, rejection reasons).
//! - [`presence`]: when someone usually comes back, from their own history.
//! - [`model`]: the types shared by the server and the browser.

pub mod acl;
pub mod auth;
pub mod batch;
pub mod clock;
pub mod consultation;
pub mod desk;
pub mod faculty;
pub mod model;
pub mod presence;
pub mod protocol;
pub mod roster;
pub mod schedule;
pub mod status;
pub mod time;

pub use clock::DeskClock;
pub use desk::{DeskMessage, DeskRecord, DeskUpdate};
pub use model::{
    Applied, FacultyEvent, FacultyView, MyRequests, RequestView, Snapshot, Ticket, TicketLink, apply_request,
    apply_view, merge_snapshot,
};
pub use status::{AdminOverride, Status, StatusInputs};
