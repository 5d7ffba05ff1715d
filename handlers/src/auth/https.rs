//! Key sets fetched over HTTPS (or plain HTTP to loopback), bounded in time and bytes.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::https_or_loopback_problem;
use super::jwks::{FetchError, KeySource};

/// Longest a key set fetch may take, connection included: the authorizer answers API Gateway
/// within its own timeout.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set read; real ones are a few KB.
pub const MAX_KEY_SET_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct HttpsKeySource {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot make an HTTPS client for the issuer's keys: {0}")]
pub struct NoHttpsClient(pub(crate) String);

impl HttpsKeySource {
    /// A client trusting the system's certificate authorities, with aws-lc-rs as its crypto
    /// (the one provider the AWS SDK brings too).
    pub fn new() -> Result<Self, NoHttpsClient> {
        let connector =
            crate::https_client::connector(HttpConnector::new()).map_err(NoHttpsClient)?;
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn get(&self, uri: &str) -> Result<Vec<u8>, String> {
        if let Some(problem) = https_or_loopback_problem(uri) {
            return Err(problem);
        }
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_KEY_SET_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e} (at most {MAX_KEY_SET_BYTES} bytes)"))?;
        Ok(body.to_bytes().to_vec())
    }
}

impl KeySource for HttpsKeySource {
    async fn fetch(&self, uri: &str) -> Result<Vec<u8>, FetchError> {
        let failed = |reason: String| FetchError::Failed {
            uri: uri.to_owned(),
            reason,
        };
        match tokio::time::timeout(FETCH_TIMEOUT, self.get(uri)).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed(format!("no answer within {FETCH_TIMEOUT:?}"))),
        }
    }
}
