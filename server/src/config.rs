//! Command-line and environment configuration. Every server option has an environment variable.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// ConsultEase: live faculty availability and consultation requests.
#[derive(Debug, Parser)]
#[command(name = "consultease", version, about, long_about = None)]
pub struct Cli {
    /// Database: `sqlite://PATH` (created and migrated at start) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "CONSULTEASE_DATABASE_URL", default_value = "sqlite://data/consultease.db", global = true)]
    pub database_url: String,

    /// Log filter, in `tracing` EnvFilter syntax (e.g. `debug`, or `info,server::mqtt::broker=debug`
    /// to see every connection the embedded broker closes, and why).
    #[arg(long, env = "CONSULTEASE_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app and ingest desk messages (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Manage faculty members.
    #[command(subcommand)]
    Faculty(FacultyCmd),
    /// Manage desk units.
    #[command(subcommand)]
    Desk(DeskCmd),
    /// Manage admin accounts (passwords are read from standard input, never from a flag).
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Manage student accounts (PINs are read from standard input, never from a flag).
    #[command(subcommand)]
    Student(StudentCmd),
    /// Register kiosks (one-time enrolment codes) and revoke them.
    #[command(subcommand)]
    Kiosk(KioskCmd),
    /// Simulate desk units over MQTT, exactly as docs/PROTOCOL.md says (for demos and tests).
    DeskSim(DeskSimArgs),
    /// Run only the embedded MQTT broker, anonymous (for development and tests without Mosquitto);
    /// or `broker export --mosquitto DIR`.
    #[command(args_conflicts_with_subcommands = true)]
    Broker {
        #[command(subcommand)]
        action: Option<BrokerCmd>,
        /// Where the broker listens.
        #[arg(long, env = "CONSULTEASE_MQTT_BIND", default_value = "127.0.0.1:1883")]
        mqtt_bind: SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
pub enum BrokerCmd {
    /// Write the desks' credentials and topic isolation as Mosquitto 2.x files in DIR: `passwd`,
    /// `acl`, `mosquitto.conf` (each replaced atomically; reload Mosquitto with SIGHUP). The
    /// server's password is read from standard input, or with --new-server-password made here and
    /// printed once (then give it to the server: --mqtt-url mqtt://USER:PASSWORD@host).
    Export {
        /// The directory to write the files in.
        #[arg(long)]
        mosquitto: PathBuf,
        /// The topic prefix (as the server's --mqtt-prefix).
        #[arg(long, env = "CONSULTEASE_MQTT_PREFIX", default_value = "consultease")]
        mqtt_prefix: String,
        /// The server's MQTT user name.
        #[arg(long, default_value = "consultease-server")]
        server_user: String,
        /// Make a new server password and print it, instead of reading it from standard input.
        #[arg(long)]
        new_server_password: bool,
        /// PBKDF2 iterations of the server's hash (desks' hashes keep theirs).
        #[arg(long, default_value_t = auth::mqtt_password::ITERATIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        iterations: u32,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DeskSimArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Desk ids to simulate (repeat the flag or separate with commas).
    #[arg(long = "desk", value_delimiter = ',', required = true)]
    pub desks: Vec<String>,
    /// A file of `DESK:PASSWORD` lines (the passwords `consultease desk add` printed): each listed
    /// desk connects with its credential (client id = username = desk id), as firmware does. A
    /// file, not a flag: a password on the command line is visible to every user of the machine.
    #[arg(long, env = "CONSULTEASE_DESK_CREDENTIALS")]
    pub credentials: Option<PathBuf>,

    /// Folder keeping each desk's boot counter (bumped at every start, as firmware does in flash).
    #[arg(long, default_value = "data/desk-sim")]
    pub state_dir: PathBuf,

    /// Take commands from standard input instead of changing at random, one per line:
    /// `DESK present|busy|away|heartbeat|queue|offline|kill` (`offline` leaves politely, `kill` drops
    /// the connection so the broker publishes the will), and the buttons on a request:
    /// `DESK accept|busy|decline|done|no-show ID [note]`. Without it, each desk changes at random
    /// and answers its requests (accept after a few seconds, done a little later).
    #[arg(long)]
    pub stdin: bool,

    /// Random mode: shortest wait between two changes of one desk.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub min_interval: Duration,

    /// Random mode: longest wait between two changes of one desk.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub max_interval: Duration,
}

#[derive(Debug, Subcommand)]
pub enum FacultyCmd {
    /// Add a faculty member; prints the new id.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        department: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// List faculty members with their current status.
    List,
}

#[derive(Debug, Subcommand)]
pub enum DeskCmd {
    /// Register a desk unit and bind it to a faculty member (one desk per faculty member); prints
    /// its MQTT password once, as `password: …` (the desk connects with client id = username = its
    /// id). Only a hash of it is kept.
    Add {
        /// The desk's id, as in its MQTT topics (1-64 of A-Z a-z 0-9 _ -).
        desk: String,
        /// The faculty member's id (see `consultease faculty list`).
        #[arg(long)]
        faculty: i64,
    },
    /// Say whether a desk has an MQTT credential; with --rotate, issue a new password (printed once
    /// as `password: …`): the old one stops working at once and the desk's live connection drops.
    Credentials {
        desk: String,
        #[arg(long)]
        rotate: bool,
    },
    /// List desk units: online, last seen, boot/seq.
    List,
    /// Forget a desk's clock (after a firmware wipe that reset its boot counter, or a message that
    /// pinned it with a huge boot): its next message applies whatever its boot and seq.
    ResetClock { desk: String },
}

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Create an admin; the password (12-128 characters) is read from standard input.
    Create { username: String },
    /// List admins.
    List,
    /// Set an admin's password (read from standard input); their sessions end.
    Passwd { username: String },
    /// Disable an admin: no more sign-ins, sessions end.
    Disable { username: String },
}

#[derive(Debug, Subcommand)]
pub enum StudentCmd {
    /// Add a student; prints the new id.
    Add {
        #[arg(long)]
        number: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        department: Option<String>,
        /// The card UID their RFID card types (hex).
        #[arg(long)]
        card: Option<String>,
    },
    /// Set a student's PIN (6-12 digits, read from standard input); their sessions end.
    SetPin { number: String },
    /// Set (or with no UID, clear) a student's card.
    SetCard { number: String, card: Option<String> },
    /// Disable a student: no more sign-ins, sessions end.
    Disable { number: String },
    /// List students.
    List,
    /// Import students from a CSV file with a header row (number,name,email,department,card). Every
    /// row is checked first; nothing is written unless all are valid, or with --partial only the
    /// valid ones.
    Import {
        file: PathBuf,
        #[arg(long)]
        partial: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KioskCmd {
    /// Register a kiosk; prints a one-time enrolment code, valid 15 minutes, to enter at
    /// /kiosk/enrol on the kiosk's browser.
    Add { name: String },
    /// List kiosks.
    List,
    /// Revoke a kiosk at once: its browser falls back to the public board.
    Revoke { id: i64 },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "CONSULTEASE_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Folder with the built browser bundle (`pkg/`), as written by `cargo xtask build`.
    #[arg(long, env = "CONSULTEASE_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Seed a dozen demo faculty members with desks (once) and run simulated desks against the
    /// broker, so the board comes alive without hardware.
    #[arg(long, env = "CONSULTEASE_DEMO")]
    pub demo: bool,

    /// The URL browsers use to reach the server (`https://consult.uni.example`). State-changing
    /// requests must come from this origin (CSRF guard), and cookies are `Secure` when it is
    /// HTTPS or a loopback address. Default: `http://` + --bind (and, on a loopback bind,
    /// `localhost` too).
    #[arg(long, env = "CONSULTEASE_PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    /// The university's time zone (IANA name, e.g. `Europe/Berlin`): office hours are local times.
    /// Default: the machine's (`TZ`, else `/etc/localtime`).
    #[arg(long, env = "CONSULTEASE_TIMEZONE", value_parser = parse_zone)]
    pub timezone: Option<jiff::tz::TimeZone>,

    /// How many password/PIN hashes may run at once (each is ~20 MiB and tens of milliseconds of a
    /// core): a sign-in flood waits here instead of starving the rest of the server.
    #[arg(long, env = "CONSULTEASE_HASH_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub hash_concurrency: u16,

    /// A request held for a faculty member who is away or offline expires after this long.
    #[arg(long, env = "CONSULTEASE_HOLD_EXPIRY", default_value = "60m", value_parser = parse_duration)]
    pub hold_expiry: Duration,

    /// Any request still open after this long expires.
    #[arg(long, env = "CONSULTEASE_REQUEST_EXPIRY", default_value = "4h", value_parser = parse_duration)]
    pub request_expiry: Duration,

    /// The board's event log keeps this much history (`0s`: all of it). Older events are deleted
    /// every hour; a live stream resuming from before them gets a snapshot.
    #[arg(long, env = "CONSULTEASE_EVENT_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub event_retention: Duration,

    /// A student signed in at a kiosk is signed out after this long without touching the screen
    /// (a countdown shows for the last 90 s).
    #[arg(long, env = "CONSULTEASE_KIOSK_IDLE", default_value = "120s", value_parser = parse_duration)]
    pub kiosk_idle: Duration,

    /// A client must send a request's headers within this long (on a new connection, and between
    /// requests on a kept-alive one), or the connection is closed.
    #[arg(long, env = "CONSULTEASE_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// A live stream resuming further back than this many events gets a fresh snapshot instead.
    #[arg(long, env = "CONSULTEASE_MAX_REPLAY", default_value_t = 1000, value_parser = clap::value_parser!(i64).range(0..))]
    pub max_replay: i64,

    #[command(flatten)]
    pub mqtt: MqttArgs,
}

/// Where the MQTT broker is, and the desk protocol's topic prefix: declared once, for `serve`,
/// `desk-sim` and the load generator alike.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// External MQTT broker, `mqtt://[user[:pass]@]host[:port]`. Without it `serve` starts an
    /// embedded broker on --mqtt-bind, and the tools connect to mqtt://127.0.0.1:1883.
    #[arg(long, env = "CONSULTEASE_MQTT_URL")]
    pub mqtt_url: Option<String>,

    /// Topic prefix of the desk protocol (`PREFIX/desk/{desk}/state`, …).
    #[arg(long, env = "CONSULTEASE_MQTT_PREFIX", default_value = "consultease", value_parser = parse_prefix)]
    pub mqtt_prefix: String,

    /// For a TLS broker (`mqtts://`): trust only the CA certificates in this PEM file (default:
    /// the system's roots).
    #[arg(long, env = "CONSULTEASE_MQTT_CA")]
    pub mqtt_ca: Option<PathBuf>,
}

impl BrokerArgs {
    /// The external broker named by --mqtt-url, if any.
    pub fn external(&self) -> anyhow::Result<Option<crate::mqtt::BrokerAddr>> {
        let Some(addr) =
            self.mqtt_url.as_deref().map(crate::mqtt::BrokerAddr::parse).transpose().map_err(anyhow::Error::msg)?
        else {
            return Ok(None);
        };
        Ok(Some(match &self.mqtt_ca {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|e| anyhow::anyhow!("reading --mqtt-ca {}: {e}", path.display()))?;
                addr.with_ca(pem)
            }
            None => addr,
        }))
    }

    /// For the tools (desk-sim, loadgen): --mqtt-url, or a broker on this machine's standard port.
    pub fn connect_to(&self) -> anyhow::Result<crate::mqtt::BrokerAddr> {
        Ok(self.external()?.unwrap_or_else(|| crate::mqtt::BrokerAddr::local(([127, 0, 0, 1], 1883).into())))
    }
}

#[derive(Debug, Clone, Args)]
pub struct MqttArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Where the embedded broker listens (port 0: any free port). Ignored with --mqtt-url.
    #[arg(long, env = "CONSULTEASE_MQTT_BIND", default_value = "127.0.0.1:1883")]
    pub mqtt_bind: SocketAddr,

    /// FOR DEVELOPMENT ONLY: the embedded broker also takes clients without credentials, which may
    /// then publish and read any desk's topics (`--demo` implies it). Desks with credentials stay
    /// confined to their own topics.
    #[arg(long, env = "CONSULTEASE_MQTT_ALLOW_ANONYMOUS")]
    pub mqtt_allow_anonymous: bool,

    /// The embedded broker also takes MQTT over TLS here (with --mqtt-tls-cert and --mqtt-tls-key),
    /// so that desks on a campus network do not send their passwords in clear.
    #[arg(long, env = "CONSULTEASE_MQTT_TLS_BIND", requires_all = ["mqtt_tls_cert", "mqtt_tls_key"])]
    pub mqtt_tls_bind: Option<SocketAddr>,

    /// The TLS listener's certificate chain (PEM).
    #[arg(long, env = "CONSULTEASE_MQTT_TLS_CERT", requires = "mqtt_tls_bind")]
    pub mqtt_tls_cert: Option<PathBuf>,

    /// The TLS listener's private key (PEM).
    #[arg(long, env = "CONSULTEASE_MQTT_TLS_KEY", requires = "mqtt_tls_bind")]
    pub mqtt_tls_key: Option<PathBuf>,

    /// MQTT client id of the server. It must stay stable (the broker keeps the server's session, and
    /// the messages that arrive while it is down, under it) and nobody else may use it: by default
    /// it is `consultease-server-` and a random suffix made at first start and kept in the database.
    #[arg(long, env = "CONSULTEASE_MQTT_CLIENT_ID")]
    pub mqtt_client_id: Option<String>,

    /// A desk that sent nothing for this long is offline, as if its last will arrived
    /// (e.g. `90s`, `2m`, `500ms`; a bare number is seconds).
    #[arg(long, env = "CONSULTEASE_DESK_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
    pub desk_timeout: Duration,

    /// Most desk messages committed in one transaction.
    #[arg(long, env = "CONSULTEASE_BATCH_MAX", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch_max: u64,

    /// How long a batch waits for more messages once one arrived and none are queued (e.g. `2ms`).
    /// At 0 a batch is whatever arrived while the previous one committed: batches grow with load.
    #[arg(long, env = "CONSULTEASE_BATCH_DELAY", default_value = "0ms", value_parser = parse_duration)]
    pub batch_delay: Duration,
}

fn parse_zone(s: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(s).map_err(|_| format!("{s:?} is not a time zone (an IANA name such as Europe/Berlin)"))
}

/// `90s`, `2m`, `500ms`, `1h`, `30d`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 90s, 500ms, 2m or 30d"))?;
    let seconds = |per: u64| n.checked_mul(per).map(Duration::from_secs).ok_or_else(|| format!("{s:?} is too long"));
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)")),
    }
}

pub fn parse_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(['+', '#']) || s.starts_with('/') || s.ends_with('/') {
        return Err("the prefix must be non-empty, without + or #, and not start or end with /".into());
    }
    Ok(s.to_owned())
}

impl Default for Command {
    fn default() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        Command::Serve(Box::new(Only::parse_from(["serve"]).args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Regression: `--event-retention`'s default `30d` did not parse (no `d` unit), so the
    /// server would not start without the flag. Every default must parse.
    #[test]
    fn every_default_parses() {
        let Command::Serve(args) = Command::default() else { panic!("serve is the default") };
        assert_eq!(args.event_retention, Duration::from_secs(30 * 86_400));
        assert!(args.timezone.is_none());
        assert!(parse_zone("Europe/Berlin").is_ok() && parse_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err(), "too large: an error, not an overflow");
        assert!(parse_duration(&format!("{}d", u64::MAX / 2)).is_err());
    }

    #[test]
    fn prefixes() {
        assert!(parse_prefix("campus/a").is_ok());
        for bad in ["", "a/+", "#", "/a", "a/"] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }
}
