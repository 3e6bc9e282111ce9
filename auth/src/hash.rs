//! Password and PIN hashing: argon2id at OWASP's minimum cost or above, on blocking threads, a few
//! at a time.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Arc, Mutex, mpsc};

/// Hashes secrets with argon2id (m = 19 MiB, t = 2, p = 1: OWASP's minimum for argon2id). Each hash
/// costs tens of milliseconds of one core and 19 MiB, so they run on `parallel` threads of their
/// own, each verifying in one 19 MiB buffer it keeps: a flood of sign-in attempts queues here
/// instead of starving the MQTT ingest, and memory stays bounded. (Measured with a 50/s flood: on
/// tokio's blocking pool, the hashes spread over many threads and the server's RSS went from 37 MB
/// to 255 MB; on one thread allocating per hash, 158 MB.)
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
    params: Params,
    /// A hash of nothing anyone knows, verified against when an account does not exist, so that
    /// "no such account" takes as long as "wrong password".
    decoy: Arc<str>,
}

/// Work for a hashing thread, given that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("params", &self.params).finish_non_exhaustive()
    }
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
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..parallel.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut memory: Vec<Block> = Vec::new();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return, // every Hasher is gone
                        }
                    }
                })
                .map_err(|_| HashError::Join)?;
        }
        Ok(Hasher { jobs, params, decoy: decoy.into() })
    }

    /// Runs `work` on a hashing thread (with its memory) and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |memory: &mut Vec<Block>| {
                let _ = tx.send(work(memory));
            }))
            .map_err(|_| HashError::Join)?;
        rx.await.map_err(|_| HashError::Join)?
    }

    /// The argon2id PHC string of `secret`, with a fresh salt.
    pub async fn hash(&self, secret: &str) -> Result<String, HashError> {
        let (params, secret) = (self.params.clone(), secret.to_owned());
        self.run(move |_| hash_sync(&params, &secret)).await
    }

    /// Whether `secret` matches `hash`; with `None` (no such account, or no PIN set) it verifies
    /// against the decoy and says no, in about the same time.
    pub async fn verify(&self, secret: &str, hash: Option<&str>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let (hash, secret) = (hash.map_or_else(|| self.decoy.to_string(), str::to_owned), secret.to_owned());
        let ok = self.run(move |memory| verify_with(memory, &secret, &hash)).await?;
        Ok(ok && known)
    }
}

/// Verifies `secret` against a PHC string in `memory` (grown once to the largest cost seen, then
/// reused), comparing in constant time.
fn verify_with(memory: &mut Vec<Block>, secret: &str, phc: &str) -> Result<bool, HashError> {
    let err = |e: &dyn std::fmt::Display| HashError::Argon(e.to_string());
    let parsed = PasswordHash::new(phc).map_err(|e| err(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| err(&e))?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(|e| err(&e))?.unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| err(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(HashError::Argon("a hash without salt or output".into()));
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(|e| err(&e))?;
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(secret.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .map_err(|e| err(&e))?;
    Ok(out.iter().zip(expected.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
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
