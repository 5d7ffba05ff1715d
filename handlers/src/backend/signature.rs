//! Every request to a room's backend is signed, so that the backend can refuse a forgery or a
//! replay: `X-Chatroom-Timestamp` is the Unix time in seconds when it was sent, and
//! `X-Chatroom-Signature` is `v1=` and the hex HMAC-SHA256, with the room's key, of the
//! timestamp, a `.` and the body. A backend checks the signature, refuses a timestamp more than
//! five minutes away from its clock, and refuses a signature it has already accepted.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-chatroom-timestamp";
pub const SIGNATURE_HEADER: &str = "x-chatroom-signature";
/// How far a request's timestamp may be from the backend's clock, in seconds.
pub const TOLERANCE_SECONDS: i64 = 300;
const VERSION: &str = "v1=";

/// The `X-Chatroom-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "{VERSION}{}",
        hex::encode(mac(key, timestamp, body).finalize().into_bytes())
    )
}

fn mac(key: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no {0} header")]
    Missing(&'static str),
    #[error("the timestamp {0:?} is not Unix seconds")]
    BadTimestamp(String),
    #[error("the timestamp is {0} s from now, more than {TOLERANCE_SECONDS} s: a replay")]
    Stale(i64),
    #[error("the signature does not match the body: a forgery")]
    Forged,
    #[error("this signature was already accepted: a replay")]
    Replayed,
}

/// A backend's check of the requests it receives: the signature, the timestamp, and every
/// signature it accepted within the tolerance, so that a request replayed as it was sent is
/// refused too. Holds one entry per request of the last ten minutes at most.
pub struct RequestCheck {
    key: Vec<u8>,
    accepted: Mutex<HashMap<String, i64>>,
}

impl RequestCheck {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            accepted: Mutex::default(),
        }
    }

    /// Accepts the request once, if `signature` is the room's for `body` at `timestamp` and
    /// `timestamp` is within the tolerance of `now` (Unix seconds).
    pub fn accept(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
        let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
        let sent: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::BadTimestamp(timestamp.to_owned()))?;
        let skew = now.saturating_sub(sent);
        if skew.abs() > TOLERANCE_SECONDS {
            return Err(SignatureError::Stale(skew));
        }
        let given = signature
            .strip_prefix(VERSION)
            .and_then(|h| hex::decode(h).ok())
            .ok_or(SignatureError::Forged)?;
        mac(&self.key, sent, body)
            .verify_slice(&given)
            .map_err(|_| SignatureError::Forged)?;
        let mut accepted = self.accepted.lock().unwrap_or_else(PoisonError::into_inner);
        accepted.retain(|_, at| now.saturating_sub(*at).abs() <= TOLERANCE_SECONDS);
        if accepted.insert(signature.to_owned(), sent).is_some() {
            return Err(SignatureError::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"room key";
    const NOW: i64 = 1_765_000_000;

    #[test]
    fn a_signed_request_is_accepted_once() {
        let check = RequestCheck::new(KEY);
        let signature = sign(KEY, NOW, b"{}");
        let ts = NOW.to_string();
        assert_eq!(
            check.accept(Some(&ts), Some(&signature), b"{}", NOW + 3),
            Ok(())
        );
        assert_eq!(
            check.accept(Some(&ts), Some(&signature), b"{}", NOW + 4),
            Err(SignatureError::Replayed)
        );
    }

    #[test]
    fn forgeries_and_old_requests_are_refused() {
        let check = RequestCheck::new(KEY);
        let ts = NOW.to_string();
        let signature = sign(KEY, NOW, b"{}");
        assert_eq!(
            check.accept(Some(&ts), Some(&signature), b"{ }", NOW),
            Err(SignatureError::Forged)
        );
        assert_eq!(
            check.accept(Some(&ts), Some(&sign(b"other", NOW, b"{}")), b"{}", NOW),
            Err(SignatureError::Forged)
        );
        assert_eq!(
            check.accept(Some(&ts), Some(&signature), b"{}", NOW + 301),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            check.accept(None, Some(&signature), b"{}", NOW),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert!(matches!(
            check.accept(Some("soon"), Some(&signature), b"{}", NOW),
            Err(SignatureError::BadTimestamp(_))
        ));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed with Python's hmac module, as the docs' check does.
        assert_eq!(
            sign(b"key", 1_700_000_000, br#"{"a":1}"#),
            "v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }
}
