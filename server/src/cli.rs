//! The admin CLI: `consultease faculty …` and `consultease desk …`, on the same store as the server.

use crate::config::{DeskCmd, FacultyCmd};
use std::io::Write;
use store::{NewFaculty, Store};

pub async fn faculty(store: &Store, cmd: FacultyCmd, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        FacultyCmd::Add { name, department, email } => {
            let id = store.add_faculty(&NewFaculty { name, department, email }).await?;
            writeln!(out, "{id}")?;
        }
        FacultyCmd::List => {
            let snap = store.snapshot().await?;
            writeln!(out, "{:>5}  {:<30} {:<24} {:<10} {:>7}", "ID", "NAME", "DEPARTMENT", "STATUS", "VERSION")?;
            for f in snap.faculty {
                writeln!(out, "{:>5}  {:<30} {:<24} {:<10} {:>7}", f.id, f.name, f.department, f.status, f.version)?;
            }
        }
    }
    Ok(())
}

pub async fn desk(store: &Store, cmd: DeskCmd, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        DeskCmd::Add { desk, faculty } => {
            store.add_desk(&desk, faculty).await?;
            writeln!(out, "desk {desk} bound to faculty member {faculty}")?;
        }
        DeskCmd::ResetClock { desk } => {
            store.reset_desk_clock(&desk).await?;
            writeln!(out, "desk {desk}: clock reset; its next message applies")?;
        }
        DeskCmd::List => {
            let now = store::now_ms();
            writeln!(out, "{:<20} {:>7} {:<7} {:<16} {:>12}", "DESK", "FACULTY", "ONLINE", "LAST SEEN", "BOOT:SEQ")?;
            for d in store.list_desks().await? {
                let faculty = d.faculty_id.map_or("-".into(), |f| f.to_string());
                let seen = d.last_seen.map_or("never".into(), |t| format!("{} s ago", (now - t).max(0) / 1000));
                let clock = match (d.boot, d.seq) {
                    (Some(b), Some(s)) => format!("{b}:{s}"),
                    _ => "-".into(),
                };
                let online = if d.online { "yes" } else { "no" };
                writeln!(out, "{:<20} {:>7} {:<7} {:<16} {:>12}", d.id, faculty, online, seen, clock)?;
            }
        }
    }
    Ok(())
}
