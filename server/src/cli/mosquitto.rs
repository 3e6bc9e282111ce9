//! `consultease broker export --mosquitto DIR`: the desks' credentials and topic isolation as
//! Mosquitto 2.x files — `passwd` (`user:$7$…` lines, the hashes exactly as stored), `acl` (each
//! desk its own topics through `%u` patterns; the server everything under the prefix) and
//! `mosquitto.conf` (a snippet naming them). Each file is written to a temporary name and renamed,
//! so a Mosquitto reloading (SIGHUP) mid-export reads the old file or the new one, never half.

use anyhow::{Context, Result, bail};
use domain::protocol::Kind;
use std::io::Write;
use std::path::Path;
use store::Store;

/// What the export needs besides the database.
#[derive(Debug)]
pub struct Export<'a> {
    pub dir: &'a Path,
    pub prefix: &'a str,
    pub server_user: &'a str,
    /// The server's password (read from standard input, or made here and printed once).
    pub server_password: &'a str,
    /// PBKDF2 iterations of the server's line (each desk's line keeps those it was issued with).
    pub iterations: u32,
}

/// Writes the three files; returns how many desks have a credential in them.
pub async fn export(store: &Store, e: &Export<'_>) -> Result<usize> {
    if e.server_user.is_empty() || e.server_user.contains([':', ' ', '\n']) {
        bail!("the server's user name must be non-empty, without ':' or spaces");
    }
    if e.prefix.is_empty() || e.prefix.contains(['+', '#', ' ', '\n']) {
        bail!("the topic prefix must be non-empty, without wildcards or spaces");
    }
    std::fs::create_dir_all(e.dir).with_context(|| format!("creating {}", e.dir.display()))?;
    let dir = e.dir.canonicalize().with_context(|| format!("resolving {}", e.dir.display()))?;
    let desks = store.desk_mqtt_hashes().await?;
    if desks.iter().any(|(desk, _)| desk == e.server_user) {
        bail!("a desk is called {:?}, the server's user name: choose another with --server-user", e.server_user);
    }

    let mut passwd = format!("{}:{}\n", e.server_user, auth::mqtt_password::hash(e.server_password, e.iterations)?);
    let mut n = 0;
    for (desk, hash) in &desks {
        if let Some(hash) = hash {
            passwd.push_str(&format!("{desk}:{hash}\n"));
            n += 1;
        }
    }

    let p = e.prefix;
    let mut acl = format!(
        "# Written by `consultease broker export`: every desk may write only its own topics and read\n\
         # only its own queue (docs/PROTOCOL.md); the server may do anything under {p}/.\n\
         # After writing it again, reload Mosquitto: kill -HUP $(pidof mosquitto)\n\n\
         user {}\ntopic readwrite {p}/#\n\n",
        e.server_user
    );
    for kind in Kind::ALL {
        acl.push_str(&format!("pattern write {p}/desk/%u/{}\n", kind.as_str()));
    }
    acl.push_str(&format!("pattern read {p}/desk/%u/queue\n"));

    let conf = format!(
        "# Desk credentials and topic isolation for ConsultEase (Mosquitto 2.x). Include this file, or\n\
         # copy these lines into mosquitto.conf; add a `listener` line of your own.\n\
         allow_anonymous false\n\
         password_file {passwd}\n\
         acl_file {acl}\n\
         # A desk is its user name: no desk can take over another's session by its client id.\n\
         use_username_as_clientid true\n\
         # The server acknowledges each message after its commit: let a batch be in flight.\n\
         max_inflight_messages 1000\n",
        passwd = dir.join("passwd").display(),
        acl = dir.join("acl").display(),
    );

    // Readable by the file's group: Mosquitto reads it after dropping to its own user, so the
    // operator gives it that group (`chgrp mosquitto passwd`); nobody else reads it.
    write_atomically(&dir.join("passwd"), passwd.as_bytes(), 0o640)?;
    write_atomically(&dir.join("acl"), acl.as_bytes(), 0o644)?;
    write_atomically(&dir.join("mosquitto.conf"), conf.as_bytes(), 0o644)?;
    Ok(n)
}

/// Writes `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    // The file being replaced keeps its owner and group (an operator's `chgrp mosquitto` survives
    // the next export). Best effort: changing the owner needs root, keeping one's own does not.
    if let Ok(old) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::chown(&tmp, Some(old.uid()), Some(old.gid()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
