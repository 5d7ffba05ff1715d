//! Connection, request and message ids: unique, opaque and URL-safe, like API Gateway's
//! (`L0SM9cOFvHcCIhw=`), but without `=` so that they never need escaping in a path.

use std::sync::atomic::{AtomicU32, Ordering};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// 16 characters from 12 bytes: 8 random bytes, so that ids cannot be guessed, then a
/// process-wide sequence number masked with the first 4 of them. The sequence is recoverable
/// from the id, so two ids of one gateway differ whenever their sequence numbers do.
pub fn new_id() -> String {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    let random: [u8; 8] = rand::random();
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&random);
    for i in 0..4 {
        bytes[8 + i] = sequence[i] ^ random[i];
    }
    encode(&bytes)
}

fn encode(bytes: &[u8; 12]) -> String {
    let mut out = String::with_capacity(16);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_and_url_safe() {
        let ids: Vec<String> = (0..100_000).map(|_| new_id()).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 16);
            assert!(id.bytes().all(|b| ALPHABET.contains(&b)), "{id}");
        }
    }
}
