//! The issuer's signing keys, by `kid`, fetched from its JWKS URI and kept: a fresh copy at
//! most every [`FRESH_FOR`], and sooner when a token names a key the copy lacks (the issuer
//! rotated), but not more than once per [`UNKNOWN_KEY_REFETCH`] — a stream of tokens with
//! made-up `kid`s must not turn into a stream of requests to the issuer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a fetched key set is used before it is fetched again.
pub const FRESH_FOR: Duration = Duration::from_secs(10 * 60);
/// The shortest time between two fetches caused by unknown key ids.
pub const UNKNOWN_KEY_REFETCH: Duration = Duration::from_secs(30);

/// Where key sets come from: HTTPS in production, memory in tests.
pub trait KeySource: Send + Sync {
    /// The body of a `GET` of `uri`.
    fn fetch(&self, uri: &str) -> impl Future<Output = Result<Vec<u8>, FetchError>> + Send;
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("fetching {uri}: {reason}")]
    Failed { uri: String, reason: String },
    #[error("{uri} is not a JSON Web Key Set: {reason}")]
    NotAKeySet { uri: String, reason: String },
}

/// A key the room accepts signatures from, and the one algorithm it is used with.
#[derive(Clone)]
pub struct Key {
    pub decoding: DecodingKey,
    pub algorithm: Algorithm,
}

pub struct JwksCache<K> {
    uri: String,
    source: K,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<Key>>,
    fetched_at: Option<Instant>,
}

/// Why no key was found for a `kid`.
#[derive(Debug)]
pub enum Lookup {
    /// The issuer publishes no usable key by that id.
    Unknown,
    /// The key set could not be fetched, and none is at hand.
    Unavailable(FetchError),
}

impl<K: KeySource> JwksCache<K> {
    pub fn new(uri: impl Into<String>, source: K) -> Self {
        Self {
            uri: uri.into(),
            source,
            state: Mutex::new(State::default()),
        }
    }

    /// The key `kid` names. A fetch that fails keeps the keys already at hand: an issuer
    /// that is briefly down does not lock everyone out.
    pub async fn key(&self, kid: &str) -> Result<Arc<Key>, Lookup> {
        let mut state = self.state.lock().await;
        let stale = state.fetched_at.is_none_or(|at| at.elapsed() >= FRESH_FOR);
        if stale && let Err(error) = self.refresh(&mut state).await {
            if state.keys.is_empty() {
                return Err(Lookup::Unavailable(error));
            }
            tracing::warn!(%error, "keeping the keys fetched before");
        }
        if let Some(key) = state.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_refetch = state
            .fetched_at
            .is_none_or(|at| at.elapsed() >= UNKNOWN_KEY_REFETCH);
        if !stale && may_refetch {
            if let Err(error) = self.refresh(&mut state).await {
                tracing::warn!(%error, "could not look for a new key");
            }
            if let Some(key) = state.keys.get(kid) {
                return Ok(key.clone());
            }
        }
        Err(Lookup::Unknown)
    }

    async fn refresh(&self, state: &mut State) -> Result<(), FetchError> {
        // Counted as a fetch even when it fails, so a failing issuer is not asked again at
        // once by every token.
        state.fetched_at = Some(Instant::now());
        let body = self.source.fetch(&self.uri).await?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|error| FetchError::NotAKeySet {
                uri: self.uri.clone(),
                reason: error.to_string(),
            })?;
        state.keys = usable_keys(&set);
        tracing::info!(uri = %self.uri, keys = state.keys.len(), "fetched the issuer's keys");
        Ok(())
    }
}

/// The RS256 and ES256 (P-256) signing keys of `set` that have a `kid`. Keys for other
/// algorithms, for encryption, or whose `alg` disagrees with their type are left out: a token
/// may only be checked with the algorithm its key was published for.
fn usable_keys(set: &JwkSet) -> HashMap<String, Arc<Key>> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
                return None;
            }
            let published = jwk.common.key_algorithm;
            let algorithm = match (&jwk.algorithm, published) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => return None,
            };
            let decoding = DecodingKey::from_jwk(jwk).ok()?;
            Some((
                kid,
                Arc::new(Key {
                    decoding,
                    algorithm,
                }),
            ))
        })
        .collect()
}
