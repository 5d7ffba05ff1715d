//! Tokens for tests, signed with the test-only keys in `testkit/fixtures/jwt/` (their file
//! names are their `kid`s): `rsa-a`, `rsa-b` (RS256), `ec-c` (ES256), and `rsa-stranger`,
//! which is in no key set a test serves unless it says so.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const KEYS: [(&str, &str); 4] = [
    ("rsa-a", include_str!("../fixtures/jwt/rsa-a.pem")),
    ("rsa-b", include_str!("../fixtures/jwt/rsa-b.pem")),
    ("ec-c", include_str!("../fixtures/jwt/ec-c.pem")),
    (
        "rsa-stranger",
        include_str!("../fixtures/jwt/rsa-stranger.pem"),
    ),
];
const PUBLIC_JWKS: &str = include_str!("../fixtures/jwt/public-jwks.json");

pub const ISSUER: &str = "https://login.example.test/";
pub const AUDIENCE: &str = "chat";

/// The current time, in the seconds JWTs count in.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims a room with [`ISSUER`] and [`AUDIENCE`] accepts for an hour from now.
pub fn claims(sub: &str, name: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "name": name,
        "iat": now(),
        "exp": now() + 3600,
    })
}

/// `claims` signed with the key `kid` (RS256 for `rsa-*`, ES256 for `ec-*`), the header
/// naming `header_kid`.
pub fn sign_as(kid: &str, header_kid: &str, claims: &Value) -> String {
    let (_, pem) = KEYS
        .iter()
        .find(|(name, _)| *name == kid)
        .unwrap_or_else(|| panic!("no test key {kid}"));
    let (algorithm, key) = if kid.starts_with("ec-") {
        (Algorithm::ES256, EncodingKey::from_ec_pem(pem.as_bytes()))
    } else {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(pem.as_bytes()))
    };
    let mut header = Header::new(algorithm);
    header.kid = Some(header_kid.to_owned());
    encode(&header, claims, &key.expect("test key reads")).expect("test token signs")
}

/// `claims` signed with the key `kid`, the header naming it.
pub fn sign(kid: &str, claims: &Value) -> String {
    sign_as(kid, kid, claims)
}

/// A JSON Web Key Set with the public keys `kids`.
pub fn jwks(kids: &[&str]) -> String {
    let all: Value = serde_json::from_str(PUBLIC_JWKS).expect("fixture parses");
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| all[*kid].clone())
        .inspect(|key| assert!(!key.is_null(), "no public key in the fixture"))
        .collect();
    json!({ "keys": keys }).to_string()
}
