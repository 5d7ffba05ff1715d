//! The issuer's signing keys, by `kid`, fetched from its JWKS URI and kept: a fresh copy at
//! most every [`FRESH_FOR`], and sooner when a token names a key the copy lacks (the issuer
//! rotated), but not more than once per [`UNKNOWN_KEY_REFETCH`] — a stream of tokens with
//! made-up `kid`s must not turn into a stream of requests to the issuer.
//!
//! # Guarantees
//! - A token whose key is at hand is decided at once, even while the copy is being fetched
//!   again: a stale copy is refreshed in the background and used meanwhile.
//! - One fetch at a time: tokens that need the issuer wait for the fetch under way instead
//!   of starting their own.
//! - While the issuer cannot be reached and the key a token names is not at hand, the answer
//!   is [`Lookup::Unavailable`] (a server error, as AWS answers an authorizer that fails),
//!   never [`Lookup::Unknown`]; a failed fetch is tried again after [`RETRY_AFTER_FAILURE`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

/// How long a fetched key set is used before it is fetched again.
pub const FRESH_FOR: Duration = Duration::from_secs(10 * 60);
/// The shortest time between two fetches caused by unknown key ids.
pub const UNKNOWN_KEY_REFETCH: Duration = Duration::from_secs(30);
/// How long after a failed fetch the issuer is asked again (meanwhile: server errors).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

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
    shared: Arc<Shared<K>>,
}

struct Shared<K> {
    uri: String,
    source: K,
    /// Held only to read or replace the copy, never across a fetch.
    state: Mutex<State>,
    /// Held across a fetch: one at a time.
    fetching: tokio::sync::Mutex<()>,
    /// A background refresh is wanted or under way.
    refreshing: AtomicBool,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<Key>>,
    /// The last fetch that succeeded.
    fetched_at: Option<Instant>,
    /// The last fetch, whatever came of it.
    attempted_at: Option<Instant>,
    /// Why the last fetch failed; `None` once one succeeds.
    failure: Option<FetchError>,
}

/// Why no key was found for a `kid`.
#[derive(Debug)]
pub enum Lookup {
    /// The issuer publishes no usable key by that id.
    Unknown,
    /// The key set could not be fetched, and the key is not at hand.
    Unavailable(FetchError),
}

/// What the copy says about one `kid`, read in one short lock.
struct View {
    key: Option<Arc<Key>>,
    stale: bool,
    may_fetch: bool,
    failure: Option<FetchError>,
}

impl<K: KeySource + 'static> JwksCache<K> {
    pub fn new(uri: impl Into<String>, source: K) -> Self {
        Self {
            shared: Arc::new(Shared {
                uri: uri.into(),
                source,
                state: Mutex::new(State::default()),
                fetching: tokio::sync::Mutex::new(()),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// The key `kid` names. A fetch that fails keeps the keys already at hand: an issuer
    /// that is briefly down does not lock out the tokens they can check.
    pub async fn key(&self, kid: &str) -> Result<Arc<Key>, Lookup> {
        let view = self.shared.view(kid);
        if let Some(key) = view.key {
            if view.stale {
                self.refresh_in_background();
            }
            return Ok(key);
        }
        // Nothing at hand decides this token: ask the issuer, after any fetch under way.
        let one_at_a_time = self.shared.fetching.lock().await;
        let view = self.shared.view(kid);
        if view.key.is_none() && view.may_fetch {
            self.shared.refresh().await;
        }
        drop(one_at_a_time);
        let view = self.shared.view(kid);
        match (view.key, view.failure) {
            (Some(key), _) => Ok(key),
            (None, Some(failure)) => Err(Lookup::Unavailable(failure)),
            (None, None) => Err(Lookup::Unknown),
        }
    }

    fn refresh_in_background(&self) {
        if self.shared.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let one_at_a_time = shared.fetching.lock().await;
            if shared.view("").stale {
                shared.refresh().await;
            }
            drop(one_at_a_time);
            shared.refreshing.store(false, Ordering::Release);
        });
    }
}

impl<K: KeySource> Shared<K> {
    fn view(&self, kid: &str) -> View {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let since = |at: Option<Instant>, wait: Duration| at.is_none_or(|at| at.elapsed() >= wait);
        let stale = since(state.fetched_at, FRESH_FOR);
        let may_fetch = match &state.failure {
            Some(_) => since(state.attempted_at, RETRY_AFTER_FAILURE),
            None if stale => true,
            None => since(state.attempted_at, UNKNOWN_KEY_REFETCH),
        };
        View {
            key: state.keys.get(kid).cloned(),
            stale,
            may_fetch,
            failure: state.failure.clone(),
        }
    }

    async fn refresh(&self) {
        // Counted as an attempt even when it fails, so a failing issuer is not asked again
        // at once by every token.
        self.lock_state().attempted_at = Some(Instant::now());
        let fetched = self.source.fetch(&self.uri).await.and_then(|body| {
            serde_json::from_slice::<JwkSet>(&body).map_err(|error| FetchError::NotAKeySet {
                uri: self.uri.clone(),
                reason: error.to_string(),
            })
        });
        let mut state = self.lock_state();
        match fetched {
            Ok(set) => {
                state.keys = usable_keys(&set);
                state.fetched_at = Some(Instant::now());
                state.failure = None;
                tracing::info!(uri = %self.uri, keys = state.keys.len(), "fetched the issuer's keys");
            }
            Err(error) => {
                tracing::warn!(%error, keys_at_hand = state.keys.len(), "could not fetch the issuer's keys");
                state.failure = Some(error);
            }
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
