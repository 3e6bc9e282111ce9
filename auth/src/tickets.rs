//! Ticket links: a kiosk shows a QR code of `/t/{token}`, which opens one request's ticket on the
//! student's phone without signing in. The token names the request and an expiry and is signed
//! (HMAC-SHA256 under a random key kept in the database, so every instance on one database agrees);
//! it grants reading that one request's progress, nothing else, until it expires.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a ticket link can be opened after it is shown.
pub const TICKET_LINK_MS: i64 = 15 * 60_000;

/// How long a ticket page, once opened, keeps following its request (the page carries a token of
/// its own for its stream; the default `--request-expiry` ends any request within this time).
pub const TICKET_FOLLOW_MS: i64 = 4 * 3_600_000;

/// Bytes of the MAC kept in a token (128 bits: a guess succeeds with probability 2^-128).
const MAC_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("not a ticket link")]
    Malformed,
    #[error("the ticket link's signature does not match")]
    BadSignature,
    #[error("the ticket link has expired")]
    Expired,
}

/// Signs and checks ticket tokens: `{request}.{expires_at}.{mac}` (decimal, decimal, 32 hex digits).
#[derive(Clone)]
pub struct Tickets {
    key: Vec<u8>,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tickets { key: <secret> }")
    }
}

impl Tickets {
    pub fn new(key: &[u8]) -> Tickets {
        Tickets { key: key.to_vec() }
    }

    fn mac(&self, request: i64, expires_at: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(format!("ticket:{request}.{expires_at}").as_bytes());
        mac
    }

    /// A token for `request`, valid until `expires_at` (Unix ms).
    pub fn sign(&self, request: i64, expires_at: i64) -> String {
        let tag = self.mac(request, expires_at).finalize().into_bytes();
        let hex: String = tag[..MAC_BYTES].iter().map(|b| format!("{b:02x}")).collect();
        format!("{request}.{expires_at}.{hex}")
    }

    /// The request a token names, if it is well formed, signed by us, and not expired at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<i64, TicketError> {
        let mut parts = token.split('.');
        let (Some(request), Some(expires_at), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TicketError::Malformed);
        };
        let number = |s: &str| {
            (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<i64>().ok())
                .flatten()
                .ok_or(TicketError::Malformed)
        };
        let (request, expires_at) = (number(request)?, number(expires_at)?);
        if hex.len() != MAC_BYTES * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(TicketError::Malformed);
        }
        let tag: Vec<u8> = (0..MAC_BYTES)
            .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).map_err(|_| TicketError::Malformed))
            .collect::<Result<_, _>>()?;
        // Constant-time comparison of the truncated tag.
        self.mac(request, expires_at).verify_truncated_left(&tag).map_err(|_| TicketError::BadSignature)?;
        if now >= expires_at {
            return Err(TicketError::Expired);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_opens_its_request_until_it_expires() {
        let t = Tickets::new(b"0123456789abcdef0123456789abcdef");
        let token = t.sign(41, 1_000_000);
        assert_eq!(t.verify(&token, 999_999), Ok(41));
        assert_eq!(t.verify(&token, 1_000_000), Err(TicketError::Expired));
    }

    #[test]
    fn forged_tokens_are_refused_the_way_an_attacker_would_try_them() {
        let t = Tickets::new(b"0123456789abcdef0123456789abcdef");
        let token = t.sign(41, 1_000_000);
        let mac = token.rsplit('.').next().unwrap();
        // Another request, or a later expiry, under the same MAC.
        assert_eq!(t.verify(&format!("42.1000000.{mac}"), 0), Err(TicketError::BadSignature));
        assert_eq!(t.verify(&format!("41.9999999999.{mac}"), 0), Err(TicketError::BadSignature));
        // Another key's token.
        let other = Tickets::new(b"another key entirely, 32 bytes!!").sign(41, 1_000_000);
        assert_eq!(t.verify(&other, 0), Err(TicketError::BadSignature));
        // A flipped MAC digit; a shortened MAC; upper case; junk.
        let flipped = format!("41.1000000.{}{}", if mac.starts_with('0') { '1' } else { '0' }, &mac[1..]);
        assert_eq!(t.verify(&flipped, 0), Err(TicketError::BadSignature));
        for bad in [
            format!("41.1000000.{}", &mac[..30]),
            format!("41.1000000.{}", mac.to_uppercase()),
            format!("+41.1000000.{mac}"),
            format!("-1.1000000.{mac}"),
            format!("41.1000000.{mac}.x"),
            "41".to_owned(),
            String::new(),
            "../../etc/passwd".to_owned(),
            format!("99999999999999999999.1.{mac}"),
        ] {
            assert_eq!(t.verify(&bad, 0), Err(TicketError::Malformed), "{bad}");
        }
    }
}
