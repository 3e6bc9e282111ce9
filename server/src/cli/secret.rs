//! Reading a password or PIN: from standard input, never from a flag (flags show up in `ps`, shell
//! history and logs). At a terminal it asks twice without echo; from a pipe it reads one line.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, IsTerminal, Write};

pub fn read(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading standard input")?;
        let secret = line.trim_end_matches(['\r', '\n']).to_owned();
        if secret.is_empty() {
            bail!("{prompt}: nothing on standard input");
        }
        return Ok(secret);
    }
    let first = ask(&format!("{prompt}: "))?;
    let second = ask("again: ")?;
    if first != second {
        bail!("the two entries differ");
    }
    Ok(first)
}

/// Asks at the terminal with echo off (restored whatever happens).
fn ask(prompt: &str) -> Result<String> {
    let mut err = std::io::stderr();
    write!(err, "{prompt}")?;
    err.flush()?;
    let guard = NoEcho::new();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    drop(guard);
    writeln!(err)?;
    read.context("reading the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Turns terminal echo off on standard input until dropped.
struct NoEcho(Option<libc::termios>);

impl NoEcho {
    fn new() -> NoEcho {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios that tcgetattr fills in.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return NoEcho(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return NoEcho(None);
            }
            NoEcho(Some(saved))
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(saved) = self.0 {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
            }
        }
    }
}
