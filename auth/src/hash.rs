//! Password and PIN hashing: argon2id at OWASP's minimum cost or above, on blocking threads, a few
//! at a time.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Hashes secrets with argon2id (m = 19 MiB, t = 2, p = 1: OWASP's minimum for argon2id). Each hash
/// costs tens of milliseconds of one core, so at most `parallel` run at once, on tokio's blocking
/// threads: a flood of sign-in attempts queues here instead of starving the MQTT ingest.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    params: Params,
    /// A hash of nothing anyone knows, verified against when an account does not exist, so that
    /// "no such account" takes as long as "wrong password".
    decoy: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("hashing failed: {0}")]
    Argon(String),
    #[error("the hashing task ended unexpectedly")]
    Join,
}

impl Hasher {
    pub fn new(parallel: usize) -> Result<Hasher, HashError> {
        Hasher::with_params(parallel, Params::new(19 * 1024, 2, 1, None).map_err(|e| HashError::Argon(e.to_string()))?)
    }

    /// A cheaper hasher for tests (the format and the algorithm are the same).
    pub fn for_tests() -> Hasher {
        let params = Params::new(256, 1, 1, None).expect("constant argon2 parameters are valid");
        Hasher::with_params(4, params).expect("hashing with constant parameters works")
    }

    fn with_params(parallel: usize, params: Params) -> Result<Hasher, HashError> {
        let decoy = hash_sync(&params, "decoy: no account has this")?;
        Ok(Hasher { permits: Arc::new(Semaphore::new(parallel.max(1))), params, decoy: decoy.into() })
    }

    /// The argon2id PHC string of `secret`, with a fresh salt.
    pub async fn hash(&self, secret: &str) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Join)?;
        let (params, secret) = (self.params.clone(), secret.to_owned());
        tokio::task::spawn_blocking(move || hash_sync(&params, &secret)).await.map_err(|_| HashError::Join)?
    }

    /// Whether `secret` matches `hash`; with `None` (no such account, or no PIN set) it verifies
    /// against the decoy and says no, in about the same time.
    pub async fn verify(&self, secret: &str, hash: Option<&str>) -> Result<bool, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Join)?;
        let known = hash.is_some();
        let (hash, secret) = (hash.map_or_else(|| self.decoy.to_string(), str::to_owned), secret.to_owned());
        let ok = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| HashError::Argon(e.to_string()))?;
            Ok::<_, HashError>(Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|_| HashError::Join)??;
        Ok(ok && known)
    }
}

fn hash_sync(params: &Params, secret: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let h = Hasher::for_tests();
        let a = h.hash("correct horse battery").await.unwrap();
        let b = h.hash("correct horse battery").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(h.verify("correct horse battery", Some(&a)).await.unwrap());
        assert!(!h.verify("correct horse batterx", Some(&a)).await.unwrap());
        assert!(!h.verify("decoy: no account has this", None).await.unwrap(), "the decoy never lets anyone in");
    }

    #[test]
    fn production_cost_is_owasp_minimum_or_above() {
        let h = Hasher::new(1).unwrap();
        assert!(h.params.m_cost() >= 19 * 1024 && h.params.t_cost() >= 2 && h.params.p_cost() >= 1);
        assert!(h.decoy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", h.decoy);
    }
}
