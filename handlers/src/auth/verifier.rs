//! A token checked as API Gateway's authorizer checks it: signed by one of the issuer's keys
//! (RS256 or ES256, the key named by `kid`), from the issuer, for one of the audiences, within
//! `nbf`..`exp` give or take [`CLOCK_SKEW`].

use jsonwebtoken::{Algorithm, Validation, decode, decode_header, errors::ErrorKind};
use serde_json::{Map, Value};

use super::jwks::{FetchError, JwksCache, KeySource, Lookup};
use super::{Identity, JwtSettings};
use crate::display_name::display_name;

/// How far the issuer's clock and ours may disagree, in seconds.
pub const CLOCK_SKEW: u64 = 60;
/// API Gateway refuses requests whose headers exceed 10 KB; no real token comes near this.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token does not let its holder in. Every variant but `KeysUnavailable` is the
/// client's doing (API Gateway answers 401); that one is the issuer's (500).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Denied {
    #[error("no token")]
    MissingToken,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    #[error("the token is signed with {0}; the room accepts RS256 and ES256")]
    Algorithm(String),
    #[error("the token's header has no kid")]
    NoKeyId,
    #[error("the issuer publishes no {algorithm} key with kid {kid:?}")]
    UnknownKey { kid: String, algorithm: String },
    #[error("the token is refused: {0}")]
    Refused(&'static str),
    #[error("the token's {claim} claim is no display name: {reason}")]
    NoName { claim: String, reason: String },
    #[error("the issuer's keys are unavailable: {0}")]
    KeysUnavailable(FetchError),
}

impl Denied {
    /// Not the client's fault: the room could not check the token.
    pub fn is_server_error(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_))
    }
}

/// One room's token checks, with its keys cached across tokens.
pub struct Verifier<K> {
    settings: JwtSettings,
    keys: JwksCache<K>,
}

impl<K: KeySource + 'static> Verifier<K> {
    pub fn new(settings: JwtSettings, source: K) -> Self {
        let keys = JwksCache::new(settings.jwks_uri.clone(), source);
        Self { settings, keys }
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Who `token` says its holder is, if every check passes.
    pub async fn verify(&self, token: &str) -> Result<Identity, Denied> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Denied::TooLong);
        }
        let header = decode_header(token).map_err(|e| Denied::Malformed(e.to_string()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(Denied::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(Denied::NoKeyId)?;
        let unknown = || Denied::UnknownKey {
            kid: kid.clone(),
            algorithm: format!("{:?}", header.alg),
        };
        let key = match self.keys.key(&kid).await {
            Ok(key) => key,
            Err(Lookup::Unknown) => return Err(unknown()),
            Err(Lookup::Unavailable(error)) => return Err(Denied::KeysUnavailable(error)),
        };
        // A key is used only with the algorithm it was published for: an RSA key never checks
        // an ES256 token, and no key checks an HMAC one.
        if key.algorithm != header.alg {
            return Err(unknown());
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW;
        let claims = decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| Denied::Refused(refusal(e.kind())))?
            .claims;
        self.identity(&claims)
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, Denied> {
        let text = |claim: &str| claims.get(claim).and_then(Value::as_str);
        let sub = text("sub")
            .filter(|s| !s.is_empty())
            .ok_or(Denied::Refused("its sub claim is not a string"))?;
        let (claim, raw) = match &self.settings.name_claim {
            Some(claim) => (claim.as_str(), text(claim)),
            None => match text("name") {
                Some(name) => ("name", Some(name)),
                None => ("sub", Some(sub)),
            },
        };
        let no_name = |reason: String| Denied::NoName {
            claim: claim.to_owned(),
            reason,
        };
        let name = display_name(raw)
            .map_err(no_name)?
            .ok_or_else(|| no_name("it is missing or empty".to_owned()))?;
        Ok(Identity {
            name,
            sub: sub.to_owned(),
        })
    }
}

/// A reason for the log that tells an operator which check failed, and nothing of the token.
fn refusal(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "its signature does not verify",
        ErrorKind::ExpiredSignature => "it has expired",
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "it is from another issuer",
        ErrorKind::InvalidAudience => "it is for another audience",
        ErrorKind::MissingRequiredClaim(_) => "it lacks exp, iss, aud or sub",
        ErrorKind::InvalidAlgorithm => "its algorithm does not match its key",
        _ => "it does not decode",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use chatroom_testkit::jwt::{AUDIENCE, ISSUER, claims, jwks, now, sign, sign_as};
    use serde_json::json;

    use super::*;
    use crate::auth::IdentitySource;
    use crate::auth::jwks::UNKNOWN_KEY_REFETCH;

    /// A key set in memory that a test can change, counting fetches.
    #[derive(Default)]
    struct Keys {
        body: Mutex<Option<String>>,
        fetches: AtomicUsize,
    }

    impl Keys {
        fn serving(kids: &[&str]) -> Self {
            let keys = Self::default();
            keys.serve(kids);
            keys
        }

        fn serve(&self, kids: &[&str]) {
            *self.body.lock().unwrap() = Some(jwks(kids));
        }

        fn fail(&self) {
            *self.body.lock().unwrap() = None;
        }
    }

    impl KeySource for Arc<Keys> {
        async fn fetch(&self, uri: &str) -> Result<Vec<u8>, FetchError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let body = self.body.lock().unwrap().clone();
            body.map(String::into_bytes).ok_or(FetchError::Failed {
                uri: uri.to_owned(),
                reason: "connection refused".into(),
            })
        }
    }

    fn settings() -> JwtSettings {
        JwtSettings {
            issuer: ISSUER.into(),
            audiences: vec!["other".into(), AUDIENCE.into()],
            jwks_uri: "https://login.example.test/jwks.json".into(),
            identity_source: IdentitySource::default(),
            name_claim: None,
        }
    }

    fn with(change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
        let mut claims = claims("user-1", "Ada");
        change(&mut claims);
        claims
    }

    #[tokio::test]
    async fn rs256_and_es256_tokens_from_the_issuer_let_their_holder_in() {
        let keys = Arc::new(Keys::serving(&["rsa-a", "ec-c"]));
        let verifier = Verifier::new(settings(), keys.clone());
        for kid in ["rsa-a", "ec-c"] {
            let identity = verifier.verify(&sign(kid, &claims("user-1", "Ada"))).await;
            assert_eq!(
                identity,
                Ok(Identity {
                    name: "Ada".into(),
                    sub: "user-1".into()
                }),
                "{kid}"
            );
        }
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 1, "keys are cached");
    }

    #[tokio::test]
    async fn a_forged_expired_early_or_misaddressed_token_is_refused() {
        let keys = Arc::new(Keys::serving(&["rsa-a", "ec-c"]));
        let verifier = Verifier::new(settings(), keys.clone());
        let refused = |why: &'static str| Err(Denied::Refused(why));
        let cases = [
            (
                sign_as("rsa-stranger", "rsa-a", &claims("u", "Ada")),
                refused("its signature does not verify"),
            ),
            (
                sign(
                    "rsa-a",
                    &with(|c| c["exp"] = json!(now() - 2 * CLOCK_SKEW as i64)),
                ),
                refused("it has expired"),
            ),
            (
                sign(
                    "rsa-a",
                    &with(|c| c["nbf"] = json!(now() + 2 * CLOCK_SKEW as i64)),
                ),
                refused("it is not valid yet (nbf)"),
            ),
            (
                sign("ec-c", &with(|c| c["aud"] = json!("billing"))),
                refused("it is for another audience"),
            ),
            (
                sign("ec-c", &with(|c| c["iss"] = json!("https://evil.example/"))),
                refused("it is from another issuer"),
            ),
            (
                sign(
                    "rsa-a",
                    &with(|c| {
                        c.as_object_mut().unwrap().remove("exp");
                    }),
                ),
                refused("it lacks exp, iss, aud or sub"),
            ),
            (
                "not.a.jwt".to_owned(),
                Err(Denied::Malformed(String::new())),
            ),
        ];
        for (token, expected) in cases {
            let got = verifier.verify(&token).await;
            match (&got, &expected) {
                (Err(Denied::Malformed(_)), Err(Denied::Malformed(_))) => {}
                _ => assert_eq!(got, expected),
            }
        }
    }

    #[tokio::test]
    async fn the_clock_may_be_a_minute_off_either_way() {
        let keys = Arc::new(Keys::serving(&["rsa-a"]));
        let verifier = Verifier::new(settings(), keys.clone());
        let half = CLOCK_SKEW as i64 / 2;
        let just_expired = with(|c| c["exp"] = json!(now() - half));
        let almost_valid = with(|c| c["nbf"] = json!(now() + half));
        for claims in [just_expired, almost_valid] {
            assert!(verifier.verify(&sign("rsa-a", &claims)).await.is_ok());
        }
    }

    #[tokio::test]
    async fn only_the_algorithm_a_key_was_published_for_is_accepted() {
        let keys = Arc::new(Keys::serving(&["rsa-a", "ec-c"]));
        let verifier = Verifier::new(settings(), keys.clone());
        // An ES256 token naming the RSA key, and the RSA key's public half as an HMAC secret
        // (the classic confusion): neither gets in.
        let es256_as_rsa = sign_as("ec-c", "rsa-a", &claims("u", "Ada"));
        assert!(matches!(
            verifier.verify(&es256_as_rsa).await,
            Err(Denied::UnknownKey { .. })
        ));
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some("rsa-a".into());
        let hmac = jsonwebtoken::encode(
            &header,
            &claims("u", "Ada"),
            &jsonwebtoken::EncodingKey::from_secret(jwks(&["rsa-a"]).as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&hmac).await,
            Err(Denied::Algorithm("HS256".into()))
        );
        let unsigned = sign("rsa-a", &claims("u", "Ada"));
        let no_kid = format!(
            "{}.{}",
            jwt_part(&json!({"alg": "RS256"})),
            unsigned.split_once('.').unwrap().1
        );
        assert_eq!(verifier.verify(&no_kid).await, Err(Denied::NoKeyId));
    }

    fn jwt_part(value: &serde_json::Value) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotated_key_is_fetched_but_made_up_kids_do_not_flood_the_issuer() {
        let keys = Arc::new(Keys::serving(&["rsa-a"]));
        let verifier = Verifier::new(settings(), keys.clone());
        let ada = claims("user-1", "Ada");
        assert!(verifier.verify(&sign("rsa-a", &ada)).await.is_ok());

        // The issuer rotates to b; a token from b arrives at once, then again later.
        keys.serve(&["rsa-a", "rsa-b"]);
        let from_b = sign("rsa-b", &ada);
        assert!(matches!(
            verifier.verify(&from_b).await,
            Err(Denied::UnknownKey { .. })
        ));
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(UNKNOWN_KEY_REFETCH).await;
        assert!(verifier.verify(&from_b).await.is_ok());
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);

        for _ in 0..100 {
            let made_up = sign_as("rsa-a", "no-such-key", &ada);
            assert!(verifier.verify(&made_up).await.is_err());
        }
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_issuer_that_is_down_is_a_server_error_until_keys_are_at_hand() {
        let keys = Arc::new(Keys::default());
        let verifier = Verifier::new(settings(), keys.clone());
        let token = sign("rsa-a", &claims("user-1", "Ada"));
        let down = verifier.verify(&token).await.unwrap_err();
        assert!(down.is_server_error(), "{down}");

        keys.serve(&["rsa-a"]);
        tokio::time::advance(crate::auth::jwks::FRESH_FOR).await;
        assert!(verifier.verify(&token).await.is_ok());
        // Down again when the copy goes stale: the keys at hand still work.
        keys.fail();
        tokio::time::advance(crate::auth::jwks::FRESH_FOR).await;
        assert!(verifier.verify(&token).await.is_ok());
    }

    /// After a failed fetch a valid token used to get 401 for 30 s: the copy counted as
    /// fresh, so its key was "unknown". While the keys cannot be had, the answer is a server
    /// error, and the issuer is asked again a few seconds later, not at every token.
    #[tokio::test(start_paused = true)]
    async fn while_the_issuer_is_unreachable_valid_tokens_get_server_errors_never_refusals() {
        let keys = Arc::new(Keys::default());
        let verifier = Verifier::new(settings(), keys.clone());
        let token = sign("rsa-a", &claims("user-1", "Ada"));
        for _ in 0..10 {
            let down = verifier.verify(&token).await.unwrap_err();
            assert!(down.is_server_error(), "{down}");
        }
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);

        keys.serve(&["rsa-a"]);
        tokio::time::advance(crate::auth::jwks::RETRY_AFTER_FAILURE).await;
        assert!(verifier.verify(&token).await.is_ok());
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);
    }

    /// A key set that takes the issuer seconds to send (a token with a new `kid` makes the
    /// room fetch it) must not hold up tokens whose keys are at hand, and tokens that need
    /// the issuer share the one fetch.
    #[tokio::test(start_paused = true)]
    async fn a_slow_fetch_holds_up_only_the_tokens_that_need_it_and_happens_once() {
        struct Slow(Arc<Keys>);
        impl KeySource for Slow {
            async fn fetch(&self, uri: &str) -> Result<Vec<u8>, FetchError> {
                if self.0.fetches.load(Ordering::SeqCst) > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
                }
                self.0.clone().fetch(uri).await
            }
        }
        let keys = Arc::new(Keys::serving(&["rsa-a"]));
        let verifier = Arc::new(Verifier::new(settings(), Slow(keys.clone())));
        let ada = claims("user-1", "Ada");
        assert!(verifier.verify(&sign("rsa-a", &ada)).await.is_ok());
        keys.serve(&["rsa-a", "rsa-b"]);
        tokio::time::advance(UNKNOWN_KEY_REFETCH).await;

        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let verifier = verifier.clone();
                let from_b = sign("rsa-b", &ada);
                tokio::spawn(async move { verifier.verify(&from_b).await.is_ok() })
            })
            .collect();
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        assert!(verifier.verify(&sign("rsa-a", &ada)).await.is_ok());
        assert_eq!(tokio::time::Instant::now(), started, "a known key waited");
        for task in waiting {
            assert!(task.await.unwrap(), "a token from the new key");
        }
        assert_eq!(
            keys.fetches.load(Ordering::SeqCst),
            2,
            "one fetch for all three"
        );
    }

    #[tokio::test]
    async fn the_name_comes_from_the_name_claim_else_sub_and_is_checked_like_a_chosen_name() {
        let keys = Arc::new(Keys::serving(&["rsa-a"]));
        let by_default = Verifier::new(settings(), keys.clone());
        let nameless = with(|c| {
            c.as_object_mut().unwrap().remove("name");
        });
        let identity = by_default.verify(&sign("rsa-a", &nameless)).await.unwrap();
        assert_eq!(identity.name, "user-1");

        let mut custom = settings();
        custom.name_claim = Some("preferred_username".into());
        let by_claim = Verifier::new(custom, keys.clone());
        let named = with(|c| c["preferred_username"] = json!(" ada.l "));
        let identity = by_claim.verify(&sign("rsa-a", &named)).await.unwrap();
        assert_eq!(identity.name, "ada.l");
        assert!(matches!(
            by_claim.verify(&sign("rsa-a", &claims("u", "Ada"))).await,
            Err(Denied::NoName { .. })
        ));

        let spoof = with(|c| c["name"] = json!("Ada\u{202e}nimda"));
        assert!(matches!(
            by_default.verify(&sign("rsa-a", &spoof)).await,
            Err(Denied::NoName { .. })
        ));
    }
}
