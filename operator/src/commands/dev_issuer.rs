//! `dev-issuer`: a token issuer for trying rooms with `spec.auth.jwt` on one machine, where no
//! real identity provider is reachable. **Not for production**: anyone who can reach its port
//! can read its key set, and it prints tokens for whatever names it is asked for.
//!
//! # Expected flow
//! It makes an ES256 key pair in memory (a new one every run: its tokens die with it), serves
//! the public key as a JSON Web Key Set on a loopback address, prints the `spec.auth.jwt` that
//! trusts it (`examples/chatroom-dev-auth.yaml` holds the same for the default port) and one
//! token per `--name`, and serves `GET /token?name=…` for more, until Ctrl-C.
//!
//! # Guarantees
//! - It listens on loopback only, and says so in every answer's `x-chatroom-warning` header.
//! - Tokens carry `iss`, `aud`, `sub`, `name`, `iat` and `exp`, as a room's authorizer checks.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::signal::shutdown_signal;
use crate::cli::DevIssuerArgs;

const KID: &str = "dev-issuer";
const WARNING: &str = "development issuer: not for production";

/// The issuer's key pair and what its tokens say.
struct Issuer {
    signing: EncodingKey,
    public_jwk: Value,
    issuer: String,
    audience: String,
    valid_for: Duration,
}

#[derive(Debug, thiserror::Error)]
enum IssuerError {
    #[error(
        "--listen {0} is not a loopback address: the development issuer never serves a network"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot make a key pair: {0}")]
    Key(String),
    #[error("cannot sign a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub async fn run(args: DevIssuerArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(super::EXIT_BAD_INPUT)
        }
    }
}

async fn serve(args: DevIssuerArgs) -> Result<(), IssuerError> {
    if !args.listen.ip().is_loopback() {
        return Err(IssuerError::NotLoopback(args.listen));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| IssuerError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| IssuerError::Listen {
            addr: args.listen,
            source,
        })?;
    let issuer = Issuer::new(
        format!("http://{addr}/"),
        args.audience.clone(),
        args.valid_for,
    )?;
    println!("# {WARNING}: tokens for anyone who asks, keys gone when it stops");
    println!("spec:\n  auth:\n    jwt:");
    println!("      issuer: {}", issuer.issuer);
    println!("      audiences: [{}]", issuer.audience);
    println!("      jwksUri: http://{addr}/jwks.json");
    for name in &args.name {
        println!("# {name}: {}", issuer.token(name)?);
    }
    println!("# more: curl 'http://{addr}/token?name=grace'");
    let app = Router::new()
        .route("/jwks.json", get(jwks))
        .route("/token", get(token))
        .with_state(std::sync::Arc::new(issuer));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|source| IssuerError::Listen { addr, source })
}

impl Issuer {
    fn new(issuer: String, audience: String, valid_for: Duration) -> Result<Self, IssuerError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|e| IssuerError::Key(e.to_string()))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|e| IssuerError::Key(e.to_string()))?;
        // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = point
            .get(1..33)
            .zip(point.get(33..65))
            .ok_or_else(|| IssuerError::Key("the public key is not a P-256 point".into()))?;
        Ok(Self {
            signing: EncodingKey::from_ec_der(pkcs8.as_ref()),
            public_jwk: json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KID,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }),
            issuer,
            audience,
            valid_for,
        })
    }

    fn token(&self, name: &str) -> Result<String, IssuerError> {
        let now = chrono::Utc::now().timestamp();
        let valid_for = i64::try_from(self.valid_for.as_secs()).unwrap_or(i64::MAX);
        let claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": format!("dev|{name}"),
            "name": name,
            "iat": now,
            "exp": now.saturating_add(valid_for),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        Ok(jsonwebtoken::encode(&header, &claims, &self.signing)?)
    }
}

fn warned(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-chatroom-warning", HeaderValue::from_static(WARNING));
    response
}

async fn jwks(State(issuer): State<std::sync::Arc<Issuer>>) -> Response {
    let body = json!({ "keys": [issuer.public_jwk] }).to_string();
    warned(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    name: String,
}

async fn token(
    State(issuer): State<std::sync::Arc<Issuer>>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let name = query.name.trim();
    if name.is_empty() || name.chars().count() > 32 {
        return warned((StatusCode::BAD_REQUEST, "name: 1-32 characters\n").into_response());
    }
    match issuer.token(name) {
        Ok(token) => warned(format!("{token}\n").into_response()),
        Err(error) => {
            warned((StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response())
        }
    }
}
