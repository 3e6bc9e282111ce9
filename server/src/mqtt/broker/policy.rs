//! Who may connect to the embedded broker, and what each client may publish and subscribe to.

use futures::future::BoxFuture;
use rumqttc::Login;

/// Who a connection is, decided once at CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The server's own MQTT client (the ingest).
    Server,
    /// A desk unit, by its id (its credential checked).
    Desk(String),
    /// Any other client, where anonymous access is allowed.
    Anonymous,
}

/// Why a CONNECT is refused (the CONNACK code says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    BadCredentials,
    NotAuthorized,
    /// The credentials cannot be checked now (the database is away).
    Unavailable,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BadCredentials => "bad_credentials",
            Refusal::NotAuthorized => "not_authorized",
            Refusal::Unavailable => "unavailable",
        }
    }
}

pub trait Policy: Send + Sync + 'static {
    fn authenticate<'a>(
        &'a self,
        client_id: &'a str,
        login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<Identity, Refusal>>;
    fn may_publish(&self, who: &Identity, topic: &str) -> bool;
    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool;
}

/// The server's own credential on the embedded broker: made at start, never shown.
#[derive(Clone)]
pub struct ServerCredential {
    pub client_id: String,
    pub username: String,
    pub password: String,
}

impl ServerCredential {
    /// `Some` when a client claims to be the server (by its client id or user name): whether it
    /// proves it. The server's credential is good for the server's client id only.
    pub fn claimed(&self, client_id: &str, login: Option<&Login>) -> Option<Result<Identity, Refusal>> {
        let presented = login.map(|l| (l.username.as_str(), l.password.as_str()));
        let claims = client_id == self.client_id || presented.is_some_and(|(u, _)| u == self.username);
        if !claims {
            return None;
        }
        let proves = presented.is_some_and(|(u, p)| {
            constant_time_eq(u.as_bytes(), self.username.as_bytes())
                & constant_time_eq(p.as_bytes(), self.password.as_bytes())
        });
        Some(match (client_id == self.client_id, proves) {
            (true, true) => Ok(Identity::Server),
            (false, false) => Err(Refusal::BadCredentials),
            _ => Err(Refusal::NotAuthorized),
        })
    }
}

impl std::fmt::Debug for ServerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredential").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// Anonymous clients may publish and subscribe to anything, but the server's client id (and its
/// credential) belongs to the server alone. Regression (outside test run): any client connecting
/// with the server's public client id kicked the server off and wiped its persistent session, and
/// 21-24 % of 2,000 QoS 1 messages never reached it.
#[derive(Debug)]
pub struct Open {
    pub server: Option<ServerCredential>,
}

impl Policy for Open {
    fn authenticate<'a>(
        &'a self,
        client_id: &'a str,
        login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<Identity, Refusal>> {
        Box::pin(async move {
            match &self.server {
                Some(server) => server.claimed(client_id, login).unwrap_or(Ok(Identity::Anonymous)),
                None => Ok(Identity::Anonymous),
            }
        })
    }

    fn may_publish(&self, _who: &Identity, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _who: &Identity, _filter: &str) -> bool {
        true
    }
}

/// The server's policy: the server's own credential; desk units by their credentials (client id =
/// username = desk id, the password checked against the hash in the database), each confined to
/// its own topics (`domain::acl`); anonymous clients only when allowed (`--demo`,
/// `--mqtt-allow-anonymous`).
pub struct Credentials {
    pub server: ServerCredential,
    pub store: store::Store,
    pub prefix: String,
    pub allow_anonymous: bool,
    /// Each desk's hash its newest connection was admitted with (to notice rotations).
    pub admitted: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Credentials {
    /// Drops the live connection of a desk whose credential changed since it was admitted
    /// (`consultease desk credentials --rotate` runs in another process, on the same database): the
    /// old password fails at once at CONNECT, and the connection made with it ends within two
    /// seconds.
    pub async fn drop_rotated(
        self: std::sync::Arc<Self>,
        broker: super::EmbeddedBroker,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
            // Nobody admitted with a credential: nothing to compare.
            if self.admitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty() {
                continue;
            }
            let current = match self.store.desk_mqtt_hashes().await {
                Ok(rows) => rows.into_iter().collect::<std::collections::HashMap<_, _>>(),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read desk credentials");
                    continue;
                }
            };
            let stale: Vec<String> = {
                let mut admitted = self.admitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let stale: Vec<String> = admitted
                    .iter()
                    .filter(|(desk, hash)| current.get(*desk).and_then(Option::as_ref) != Some(*hash))
                    .map(|(desk, _)| desk.clone())
                    .collect();
                for desk in &stale {
                    admitted.remove(desk);
                }
                stale
            };
            for desk in stale {
                if broker.disconnect(&desk) {
                    tracing::info!(desk, "desk credential changed: its connection is dropped");
                }
            }
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("prefix", &self.prefix)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

impl Policy for Credentials {
    fn authenticate<'a>(
        &'a self,
        client_id: &'a str,
        login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<Identity, Refusal>> {
        Box::pin(async move {
            if let Some(decided) = self.server.claimed(client_id, login) {
                return decided;
            }
            let Some(Login { username, password }) = login else {
                return if self.allow_anonymous { Ok(Identity::Anonymous) } else { Err(Refusal::NotAuthorized) };
            };
            // A desk is its id three times over: client id, username, topics.
            if username != client_id {
                return Err(Refusal::NotAuthorized);
            }
            match self.store.desk_mqtt_hash(username).await {
                Ok(Some(Some(hash))) if auth::mqtt_password::verify(password, &hash) => {
                    self.admitted
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(username.to_owned(), hash);
                    Ok(Identity::Desk(username.to_owned()))
                }
                Ok(_) => Err(Refusal::BadCredentials),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check a desk's MQTT credential");
                    Err(Refusal::Unavailable)
                }
            }
        })
    }

    fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        match who {
            Identity::Server | Identity::Anonymous => true,
            Identity::Desk(desk) => domain::acl::desk_may_publish(&self.prefix, desk, topic),
        }
    }

    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        match who {
            Identity::Server | Identity::Anonymous => true,
            Identity::Desk(desk) => domain::acl::desk_may_subscribe(&self.prefix, desk, filter),
        }
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
