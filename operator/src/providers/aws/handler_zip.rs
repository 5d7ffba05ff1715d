//! The room function's code: a `bootstrap.zip`, read once at start-up.

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerZip {
    pub bytes: Arc<Vec<u8>>,
    /// Base64 SHA-256, as Lambda reports `CodeSha256`.
    pub sha256: String,
}

impl HandlerZip {
    pub fn read(path: &std::path::Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        Self {
            bytes: Arc::new(bytes),
            sha256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_lambdas_code_sha256() {
        // `printf abc | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            HandlerZip::from_bytes(b"abc".to_vec()).sha256,
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
