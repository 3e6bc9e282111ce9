//! `consultease desk-sim` and the server's `--demo` mode.

use crate::config::DeskSimArgs;
use crate::desk_sim::{Presence, Rng, SimDesk, describe_queue, next_boot, run_random};
use crate::mqtt::BrokerAddr;
use anyhow::{Context, Result, bail};
use domain::consultation::Action;
use std::path::Path;
use std::time::Duration;
use store::{NewFaculty, Store, StoreError};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

const DEMO_FACULTY: [(&str, &str); 12] = [
    ("Dr. Amara Okafor", "Computer Science"),
    ("Prof. Bernd Keller", "Mathematics"),
    ("Dr. Chloé Martin", "Physics"),
    ("Prof. Daniel Reyes", "Computer Science"),
    ("Dr. Elif Yılmaz", "Chemistry"),
    ("Prof. Farah Haddad", "Electrical Engineering"),
    ("Dr. Goran Petrović", "Mathematics"),
    ("Prof. Hana Sato", "Physics"),
    ("Dr. Ivan Novak", "Mechanical Engineering"),
    ("Prof. Julia Costa", "Biology"),
    ("Dr. Kwame Mensah", "Electrical Engineering"),
    ("Prof. Lena Schmidt", "Chemistry"),
];

fn demo_desk(i: usize) -> String {
    format!("demo-{:02}", i + 1)
}

/// Adds the demo faculty and their desks; those that exist already are left as they are.
pub async fn seed(store: &Store) -> Result<Vec<String>> {
    let existing: Vec<String> = store.list_desks().await?.into_iter().map(|d| d.id).collect();
    let mut desks = Vec::new();
    for (i, (name, department)) in DEMO_FACULTY.iter().enumerate() {
        let desk = demo_desk(i);
        if !existing.contains(&desk) {
            let email = format!("{desk}@demo.consultease.invalid");
            let nf = NewFaculty { name: (*name).into(), department: (*department).into(), email: Some(email) };
            match store.add_faculty(&nf).await {
                Ok(id) => store.add_desk(&desk, id).await?,
                // The faculty member exists without the desk (someone removed it): leave it be.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        desks.push(desk);
    }
    Ok(desks)
}

/// Seeds the demo and runs its desks against `broker` until `stop`.
pub async fn run(
    store: &Store,
    broker: BrokerAddr,
    prefix: String,
    state_dir: &Path,
    stop: CancellationToken,
) -> Result<()> {
    let ids = seed(store).await?;
    let mut rng = Rng::seeded();
    let mut desks = Vec::new();
    for id in &ids {
        let boot = next_boot(state_dir, id)?;
        desks.push(SimDesk::connect(&broker, &prefix, id, boot, rng.presence()).await?);
    }
    tracing::info!(desks = ids.len(), "demo desks running");
    tokio::spawn(run_random(desks, Duration::from_secs(4), Duration::from_secs(25), stop));
    Ok(())
}

/// `DESK:PASSWORD` lines (blank lines and `#` comments skipped).
fn read_credentials(path: &std::path::Path) -> Result<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((desk, password)) = line.split_once(':') else {
            bail!("{} line {}: expected DESK:PASSWORD", path.display(), n + 1);
        };
        out.insert(desk.trim().to_owned(), password.trim().to_owned());
    }
    Ok(out)
}

pub async fn desk_sim(args: DeskSimArgs) -> Result<()> {
    let broker = args.broker.connect_to()?;
    for id in &args.desks {
        if !domain::protocol::valid_desk_id(id) {
            bail!("desk id {id:?} must be 1-64 characters of A-Z a-z 0-9 _ -");
        }
    }
    let passwords = match &args.credentials {
        Some(path) => read_credentials(path)?,
        None => std::collections::HashMap::new(),
    };
    let mut rng = Rng::seeded();
    let mut desks = Vec::new();
    for id in &args.desks {
        let boot = next_boot(&args.state_dir, id)?;
        let mut broker = broker.clone();
        if let Some(password) = passwords.get(id) {
            broker.username = Some(id.clone());
            broker.password = Some(password.clone());
        }
        let desk = SimDesk::connect(&broker, &args.broker.mqtt_prefix, id, boot, rng.presence()).await?;
        println!("{id}: connected (boot {boot})");
        // Every queue the desk shows (and has acknowledged), as its screen would list it.
        let (mut queue, id) = (desk.queue(), id.clone());
        tokio::spawn(async move {
            while queue.changed().await.is_ok() {
                if let Some(q) = &*queue.borrow_and_update() {
                    println!("{}", describe_queue(&id, q));
                }
            }
        });
        desks.push(desk);
    }
    let stop = CancellationToken::new();
    if !args.stdin {
        let s = stop.clone();
        tokio::spawn(async move {
            crate::telemetry::shutdown_signal().await;
            s.cancel();
        });
        run_random(desks, args.min_interval, args.max_interval.max(args.min_interval), stop).await;
        return Ok(());
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.context("reading standard input")? {
        let mut words = line.split_whitespace();
        let (Some(id), Some(cmd)) = (words.next(), words.next()) else { continue };
        let Some(pos) = desks.iter().position(|d| d.id == id) else {
            eprintln!("unknown desk {id:?} (simulating: {})", args.desks.join(", "));
            continue;
        };
        // `DESK busy` is the desk's presence; `DESK busy ID` is the "not now" button on a request.
        let request = words.next().map(|w| w.parse::<i64>());
        let note = Some(words.collect::<Vec<_>>().join(" ")).filter(|n| !n.is_empty());
        let button = if cmd == "no-show" { Some(Action::NoShow) } else { Action::parse(cmd) };
        if let (Some(action), Some(request)) = (button, &request) {
            let Ok(request) = request else {
                eprintln!("{cmd}: the request is a number (the id shown in the queue)");
                continue;
            };
            let seq = desks[pos].reply(*request, action, note).await?;
            println!("{id}: seq {seq} {cmd} {request}");
            continue;
        }
        let presence = match cmd {
            "present" | "free" => Some(Presence { present: true, busy: false }),
            "busy" => Some(Presence { present: true, busy: true }),
            "away" => Some(Presence { present: false, busy: false }),
            _ => None,
        };
        match (cmd, presence) {
            (_, Some(p)) => {
                let seq = desks[pos].report(p).await?;
                println!("{id}: seq {seq} {cmd}");
            }
            ("heartbeat", _) => desks[pos].heartbeat(0).await?,
            ("queue", _) => match &*desks[pos].queue().borrow() {
                Some(q) => println!("{}", describe_queue(id, q)),
                None => println!("{id}: no queue received yet"),
            },
            ("offline", _) => {
                desks.remove(pos).shutdown().await;
                println!("{id}: offline");
            }
            ("kill", _) => {
                desks.remove(pos).kill();
                println!("{id}: connection dropped (the broker will publish its will)");
            }
            _ => eprintln!(
                "unknown command {cmd:?}: present|busy|away|heartbeat|queue|offline|kill, \
                 or accept|busy|decline|done|no-show ID [note]"
            ),
        }
    }
    for d in desks {
        d.shutdown().await;
    }
    Ok(())
}
