//! `PostToConnection`, the one request a room makes for every recipient of every message,
//! signed with SigV4 (`aws-sigv4`, the SDK's own signer) and sent over one keep-alive pool that
//! warm invocations share. The SDK's client spent 59 µs of CPU on each post and this path
//! 17–19 µs (docs/benchmarks.md); on a 128 MB function, which has 0.07 vCPU, that CPU is what
//! bounds how fast a worker posts.
//!
//! The request is the SDK's: `POST {endpoint}/@connections/{id}`, the id encoded as a URI
//! label, the payload as the body, signed with SigV4 for `execute-api` in the function's region
//! (<https://docs.aws.amazon.com/apigatewaymanagementapi/latest/APIReference/API_PostToConnection.html>,
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html>).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::auth::NoHttpsClient;
use crate::https_client::{self, with_causes};

/// Attempts per post: a 429 (`LimitExceededException`), a 5xx or a connection that failed is
/// tried again after a backoff that doubles from 50 ms to at most 2.5 s, each delay stretched by
/// up to itself at random (so 50–100 ms at first, 2.5–5 s at most; the SDK's standard mode
/// draws from 0–100 ms up to 0–5 s): a storm of 429s spreads out instead of coming back at once.
const ATTEMPTS_PER_POST: usize = 8;
/// The SDK's connect timeout for its current behaviour version.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);
/// One attempt, from sending to the end of the answer; a post is answered in milliseconds.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Of an error's answer, what is kept for the log.
const ERROR_ANSWER_BYTES: usize = 4 * 1024;
/// Credentials are fetched again this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A connection id is a URI label: all but RFC 3986's unreserved characters are encoded.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("the connection is gone (410)")]
    Gone,
    #[error("HTTP {status} {error_type}: {message}")]
    Refused {
        status: u16,
        error_type: String,
        message: String,
    },
    #[error("no answer: {0}")]
    Unreachable(String),
    #[error("not signed: {0}")]
    Unsigned(String),
}

impl PostError {
    /// What the SDK's standard retry mode retries: throttling, server errors, transport.
    fn is_transient(&self) -> bool {
        match self {
            PostError::Refused { status, .. } => *status == 429 || *status >= 500,
            PostError::Unreachable(_) => true,
            PostError::Gone | PostError::Unsigned(_) => false,
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The `@connections` API of any stage, as the function's role.
#[derive(Clone)]
pub struct ConnectionsApi {
    client: HttpsClient,
    signer: Arc<Signer>,
}

impl std::fmt::Debug for ConnectionsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionsApi")
            .field("region", &self.signer.region)
            .finish_non_exhaustive()
    }
}

impl ConnectionsApi {
    /// Signs with the region and credentials of `sdk`; fails only when no TLS client can be
    /// made (no system certificate authorities).
    pub fn new(sdk: &aws_config::SdkConfig) -> Result<Self, NoHttpsClient> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let connector = https_client::connector(http).map_err(NoHttpsClient)?;
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            signer: Arc::new(Signer {
                region: sdk.region().map(|r| r.to_string()),
                credentials: sdk.credentials_provider(),
                identity: RwLock::default(),
            }),
        })
    }

    /// Posts `payload` to `connection_id` at `endpoint`
    /// (`https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`), trying again what may
    /// pass later.
    pub async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        payload: Bytes,
    ) -> Result<(), PostError> {
        let uri = format!(
            "{endpoint}/@connections/{}",
            utf8_percent_encode(connection_id, LABEL)
        );
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_millis(2_500))
            .with_max_times(ATTEMPTS_PER_POST - 1)
            .with_jitter();
        (|| self.attempt(&uri, payload.clone()))
            .retry(backoff)
            .when(PostError::is_transient)
            .await
    }

    async fn attempt(&self, uri: &str, payload: Bytes) -> Result<(), PostError> {
        let request = self.signer.signed(uri, payload).await?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| PostError::Unreachable(with_causes(&e)))?;
            let (parts, body) = response.into_parts();
            // Read to its end either way, so that the connection goes back to the pool.
            let answer = Limited::new(body, ERROR_ANSWER_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, PostError>((parts, answer))
        };
        let (parts, answer) = tokio::time::timeout(ATTEMPT_TIMEOUT, exchange)
            .await
            .map_err(|_| PostError::Unreachable(format!("no answer in {ATTEMPT_TIMEOUT:?}")))??;
        match parts.status.as_u16() {
            200..=299 => Ok(()),
            410 => Err(PostError::Gone),
            status => Err(refused(status, &parts.headers, &answer)),
        }
    }
}

/// An error answer as the SDK reads it: the type from `x-amzn-ErrorType` (or the body's
/// `__type`), the body's `message`.
fn refused(status: u16, headers: &http::HeaderMap, answer: &[u8]) -> PostError {
    let body: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
    let field = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let error_type = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| field("__type"))
        .unwrap_or_default();
    // `ForbiddenException:http://internal.amazon.com/...`: the name is before the colon.
    let error_type = error_type
        .split(':')
        .next()
        .unwrap_or_default()
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .to_owned();
    PostError::Refused {
        status,
        error_type,
        message: field("message")
            .or_else(|| field("Message"))
            .unwrap_or_else(|| String::from_utf8_lossy(answer).into_owned()),
    }
}

/// The request, signed as of `time`. Signed are `host` and the `x-amz-*` headers the signer adds
/// (what SigV4 requires); `content-type` and `user-agent` go unsigned (the SDK signs those too,
/// which API Gateway does not ask for).
fn signed_post(
    uri: &str,
    payload: Bytes,
    identity: &Identity,
    region: &str,
    time: SystemTime,
) -> Result<http::Request<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name("execute-api")
        .time(time)
        .settings(SigningSettings::default())
        .build()?
        .into();
    let signable = SignableRequest::new(
        "POST",
        uri,
        std::iter::empty(),
        SignableBody::Bytes(&payload),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let mut request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .header(http::header::USER_AGENT, "chatroom-operator")
        .body(Full::new(payload))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

struct Signer {
    region: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
    /// The credentials, until [`CREDENTIALS_MARGIN`] before they expire (Lambda's own never
    /// change within an execution environment's life).
    identity: RwLock<Option<Identity>>,
}

impl Signer {
    async fn signed(
        &self,
        uri: &str,
        payload: Bytes,
    ) -> Result<http::Request<Full<Bytes>>, PostError> {
        let region = self
            .region
            .as_deref()
            .ok_or_else(|| PostError::Unsigned("no region (AWS_REGION)".into()))?;
        let identity = self.identity().await?;
        signed_post(uri, payload, &identity, region, SystemTime::now())
            .map_err(|e| PostError::Unsigned(e.to_string()))
    }

    async fn identity(&self) -> Result<Identity, PostError> {
        let fresh = |identity: &Identity| {
            identity
                .expiration()
                .is_none_or(|at| SystemTime::now() + CREDENTIALS_MARGIN < at)
        };
        if let Some(identity) = self
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|i| fresh(i))
        {
            return Ok(identity.clone());
        }
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| PostError::Unsigned("no credentials provider".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| PostError::Unsigned(with_causes(&e)))?;
        let identity = Identity::from(credentials);
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(identity.clone());
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use aws_credential_types::Credentials;

    use super::*;

    const ENDPOINT: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod";

    fn authorization(session_token: Option<&str>) -> String {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        );
        let uri = format!(
            "{ENDPOINT}/@connections/{}",
            utf8_percent_encode("L0SM9cOFvHcCIhw=", LABEL)
        );
        // 2026-12-07T22:00:00Z
        let time = UNIX_EPOCH + Duration::from_secs(1_796_680_800);
        let request = signed_post(
            &uri,
            Bytes::from_static(br#"{"type":"message","text":"hi"}"#),
            &Identity::from(credentials),
            "eu-west-1",
            time,
        )
        .unwrap();
        assert_eq!(request.headers()["x-amz-date"], "20261207T220000Z");
        request.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    // The expected signatures are botocore's, an implementation independent of aws-sigv4, for
    // the same request (tools/venv, botocore.auth.SigV4Auth("execute-api", "eu-west-1") on
    // AWSRequest("POST", ".../prod/@connections/L0SM9cOFvHcCIhw%3D", the same body), its
    // clock patched to 2026-12-07T22:00:00Z). A path encoded or signed differently from the
    // SDK's would be refused by API Gateway with 403, which no emulator here checks.
    #[test]
    fn a_post_is_signed_as_botocore_signs_it() {
        assert_eq!(
            authorization(None),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/eu-west-1/execute-api/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=f9b4225f632e292504f557b2738e21ae53cd0c1f8a74bcf1319c95be36fdc033"
        );
        assert_eq!(
            authorization(Some("session-token-example")),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/eu-west-1/execute-api/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=82ddbd7b5a81c535223232fd9319f40ffc5e2c499cb89ef9a5ce9691f12082e8"
        );
    }

    #[test]
    fn a_connection_id_is_encoded_as_a_uri_label() {
        assert_eq!(
            utf8_percent_encode("ab+/=-_.~", LABEL).to_string(),
            "ab%2B%2F%3D-_.~"
        );
    }

    #[test]
    fn an_error_answer_is_read_as_the_sdk_reads_it() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            "ForbiddenException:http://internal.amazon.com/coral/com.amazonaws.gateway/"
                .parse()
                .unwrap(),
        );
        let error = refused(403, &headers, br#"{"message":"Forbidden"}"#);
        assert_eq!(error.to_string(), "HTTP 403 ForbiddenException: Forbidden");
        assert!(!error.is_transient());
        let throttled = refused(
            429,
            &http::HeaderMap::new(),
            br#"{"__type":"com.amazonaws#LimitExceededException","message":"Rate exceeded"}"#,
        );
        assert_eq!(
            throttled.to_string(),
            "HTTP 429 LimitExceededException: Rate exceeded"
        );
        assert!(throttled.is_transient());
        assert!(!PostError::Gone.is_transient());
    }
}
