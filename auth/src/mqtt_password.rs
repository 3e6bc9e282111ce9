//! Desk units' MQTT passwords: random (160 bits), shown once, stored only as a hash in the form
//! Mosquitto 2.x keeps in its password file (`$7$` = PBKDF2-HMAC-SHA512, a 12-byte salt, a
//! 64-byte key, both base64), so one stored hash serves the embedded broker and an exported
//! Mosquitto password file alike.
//!
//! Iterations: Mosquitto's own default (101). A slow hash protects guessable passwords; these are
//! 160 random bits, which no number of iterations makes harder or easier to guess, and a server
//! restart makes every desk reconnect at once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::Sha512;

/// PBKDF2 iterations for new hashes (Mosquitto's default for `$7$`).
pub const ITERATIONS: u32 = 101;
const SALT_BYTES: usize = 12;
const KEY_BYTES: usize = 64;

/// A new desk password: 20 random bytes as 40 hex digits.
pub fn generate() -> Result<String, store::StoreError> {
    store::random_hex(20)
}

/// The stored form of `password`: `$7${iterations}${salt}${key}`.
pub fn hash(password: &str, iterations: u32) -> Result<String, store::StoreError> {
    let salt_hex = store::random_hex(SALT_BYTES)?;
    let salt: Vec<u8> =
        (0..SALT_BYTES).filter_map(|i| u8::from_str_radix(&salt_hex[i * 2..i * 2 + 2], 16).ok()).collect();
    Ok(hash_with(password, iterations.max(1), &salt))
}

fn hash_with(password: &str, iterations: u32, salt: &[u8]) -> String {
    let mut key = [0u8; KEY_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut key);
    format!("$7${iterations}${}${}", STANDARD.encode(salt), STANDARD.encode(key))
}

/// Does `password` match `stored`? Anything not a well-formed `$7$` hash matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some(""), Some("7"), Some(iterations), Some(salt), Some(key), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(key)) = (iterations.parse::<u32>(), STANDARD.decode(salt), STANDARD.decode(key))
    else {
        return false;
    };
    // A stored hash is ours or an admin's; still, an absurd iteration count must not stall CONNECTs.
    if !(1..=1_000_000).contains(&iterations) || key.len() != KEY_BYTES {
        return false;
    }
    let mut derived = [0u8; KEY_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, iterations, &mut derived);
    derived.iter().zip(&key).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with Mosquitto 2.0's own tool: `mosquitto_passwd -c -b pw.txt desk-1 'correct horse
    /// battery staple'` (and `-I 1000` for the second): our verifier reads what Mosquitto writes.
    #[test]
    fn reads_what_mosquitto_passwd_writes() {
        let m101 = "$7$101$YpFTJPI5VckuzGH9$FlSFsA6FrCaQCjmyl5gIM/NrGdGQrDVDEqKoAdvyU9LyDYQuWWwa/HyvdWr2n46+zyTWdiuEWhqwHMLOhPd74Q==";
        assert!(verify("correct horse battery staple", m101));
        assert!(!verify("correct horse battery stapler", m101));
        let m1000 = "$7$1000$wFXGrcubwVyADCsm$ufG/aRnOXfFRy/iMdeYlpozjigtBkllZVabEM8bVd+QRKAbWxxgcZWNZDBwFEFBVK7Vku5eXpMUgXg50cZKbXA==";
        assert!(verify("x", m1000));
        // And writes the same thing for the same salt.
        let salt = STANDARD.decode("YpFTJPI5VckuzGH9").unwrap();
        assert_eq!(hash_with("correct horse battery staple", 101, &salt), m101);
    }

    #[test]
    fn new_hashes_verify_and_differ_and_junk_matches_nothing() {
        let pw = generate().unwrap();
        assert_eq!(pw.len(), 40, "160 bits");
        let (a, b) = (hash(&pw, ITERATIONS).unwrap(), hash(&pw, ITERATIONS).unwrap());
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify(&pw, &a) && verify(&pw, &b));
        for junk in
            ["", "$7$", "$7$101$$", "$6$101$YpFTJPI5VckuzGH9$AAAA", "$7$0$YpFTJPI5VckuzGH9$AAAA", &a[..a.len() - 4]]
        {
            assert!(!verify(&pw, junk), "{junk}");
        }
    }
}
