//! Signature Version 4 on the management API, checked as API Gateway checks `@connections`
//! calls (service `execute-api`), so that any AWS SDK pointed at a room's callback URL with
//! the gateway's keys works unchanged, and nothing else does.
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>
//!
//! # Expected flow
//! The request's `Authorization` header names the key, the credential scope, the signed
//! headers and the signature. The gateway signs the same request with the same inputs —
//! method, path, query, the headers the client signed, the SHA-256 of the body, the client's
//! `x-amz-date` — through `aws-sigv4`, the SDK's own signer, and compares.
//!
//! # Guarantees
//! - Only the configured access key with its secret passes; a request signed more than
//!   15 minutes before or after the gateway's clock is refused, as AWS refuses it.
//! - Answers are AWS's: 403 with `x-amzn-ErrorType` `MissingAuthenticationTokenException`,
//!   `UnrecognizedClientException`, `IncompleteSignatureException` or
//!   `InvalidSignatureException`, which the SDK maps to its own errors.
//!
//! # Assumptions
//! - The keys are long-term (no session token): the chart makes them for the gateway alone.
//!
//! # Caveats
//! - Any region in the credential scope is accepted: the local gateway serves no region.
//! - Signatures in the query string (presigned URLs) are not accepted; SDKs sign headers.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::http::{HeaderMap, Method, Uri};
use chrono::NaiveDateTime;

/// API Gateway's own limit on clock skew.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The service name `@connections` requests are signed for.
const SERVICE: &str = "execute-api";

/// The key pair the management API accepts.
#[derive(Clone)]
pub struct ManagementKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for ManagementKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .finish()
    }
}

/// Why a request was refused, as API Gateway words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct Refused {
    pub error_type: &'static str,
    pub message: String,
}

impl Refused {
    fn missing() -> Self {
        Self {
            error_type: "MissingAuthenticationTokenException",
            message: "Missing Authentication Token".into(),
        }
    }

    fn incomplete(message: impl Into<String>) -> Self {
        Self {
            error_type: "IncompleteSignatureException",
            message: message.into(),
        }
    }

    fn unrecognized() -> Self {
        Self {
            error_type: "UnrecognizedClientException",
            message: "The security token included in the request is invalid.".into(),
        }
    }

    /// AWS's answer to a signature that does not cover the host, as reported in
    /// aws/aws-sdk-js-v3#3796 (403 `InvalidSignatureException`).
    fn host_not_signed() -> Self {
        Self {
            error_type: "InvalidSignatureException",
            message: "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
                .into(),
        }
    }

    fn mismatch() -> Self {
        Self {
            error_type: "InvalidSignatureException",
            message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
        }
    }
}

/// What the request is, as its signature covers it.
pub struct SignedRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, Refused> {
    let fields = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| Refused::incomplete("Authorization header must use AWS4-HMAC-SHA256"))?;
    let field = |name: &str| {
        fields
            .split(',')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
            .ok_or_else(|| {
                Refused::incomplete(format!("Authorization header requires '{name}' parameter."))
            })
    };
    let credential = field("Credential")?;
    let signed_headers: Vec<&str> = field("SignedHeaders")?.split(';').collect();
    // Names as the SDKs write them: lower case, each once. Anything else is no signature an
    // SDK made, and would reach the signer as input it does not expect.
    let mut seen = std::collections::BTreeSet::new();
    for name in &signed_headers {
        let well_formed = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed || !seen.insert(*name) {
            return Err(Refused::incomplete(format!(
                "SignedHeaders must be distinct lower-case header names; got {name:?}"
            )));
        }
    }
    // The SDK's signer panics on a request without an authority (aws-sigv4 1.6.4,
    // canonical_request.rs), and AWS refuses such a signature anyway.
    if !seen.contains("host") {
        return Err(Refused::host_not_signed());
    }
    let signature = field("Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(Refused::incomplete(format!(
            "Credential should be scoped to a valid region, service and aws4_request; got {credential}"
        )));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// Checks `request`'s signature against `keys` at `now`, for `@connections`.
pub fn verify(
    keys: &ManagementKeys,
    request: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), Refused> {
    verify_for(SERVICE, keys, request, now)
}

/// Everything [`verify`] checks that the headers alone decide (the Authorization header's
/// shape, the key, the service, the date): a request they refuse is answered before its body
/// is read.
pub fn check_headers(
    keys: &ManagementKeys,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<(), Refused> {
    signed_headers(SERVICE, keys, headers, now).map(|_| ())
}

fn verify_for(
    service: &str,
    keys: &ManagementKeys,
    request: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), Refused> {
    let (authorization, signed_at) = signed_headers(service, keys, request.headers, now)?;
    let expected = expected_signature(service, keys, request, &authorization, signed_at)?;
    if constant_time_eq(expected.as_bytes(), authorization.signature.as_bytes()) {
        Ok(())
    } else {
        Err(Refused::mismatch())
    }
}

/// The request's Authorization, and when it was signed, when the headers are a signature
/// this gateway could accept.
fn signed_headers<'h>(
    service: &str,
    keys: &ManagementKeys,
    headers: &'h HeaderMap,
    now: SystemTime,
) -> Result<(Authorization<'h>, SystemTime), Refused> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(authorization) = header("authorization") else {
        return Err(Refused::missing());
    };
    // Two of either would leave the gateway to pick one; AWS refuses the request instead.
    for name in ["authorization", "x-amz-date"] {
        if headers.get_all(name).iter().count() > 1 {
            return Err(Refused::incomplete(format!(
                "the request carries more than one {name} header"
            )));
        }
    }
    let authorization = parse_authorization(authorization)?;
    if authorization.access_key_id != keys.access_key_id
        || headers.contains_key("x-amz-security-token")
    {
        return Err(Refused::unrecognized());
    }
    if authorization.service != service {
        return Err(Refused::incomplete(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    let amz_date = header("x-amz-date")
        .ok_or_else(|| Refused::incomplete("Authorization requires the X-Amz-Date header."))?;
    let signed_at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            Refused::incomplete(format!("X-Amz-Date {amz_date:?} is not yyyyMMddTHHmmssZ"))
        })?
        .and_utc();
    if !amz_date.starts_with(authorization.date) {
        return Err(Refused::mismatch());
    }
    let signed_at = SystemTime::from(signed_at);
    let skew = now
        .duration_since(signed_at)
        .or_else(|_| signed_at.duration_since(now))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(Refused {
            error_type: "InvalidSignatureException",
            message: format!(
                "Signature expired: {amz_date} is outside 15 minutes of the server's time"
            ),
        });
    }
    Ok((authorization, signed_at))
}

/// The signature the client would have computed with the right secret.
fn expected_signature(
    service: &str,
    keys: &ManagementKeys,
    request: &SignedRequest<'_>,
    authorization: &Authorization<'_>,
    signed_at: SystemTime,
) -> Result<String, Refused> {
    let mut headers = Vec::with_capacity(authorization.signed_headers.len());
    for name in &authorization.signed_headers {
        let value = request
            .headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(Refused::mismatch)?;
        headers.push((*name, value));
    }
    let path_and_query = request.uri.path_and_query().map_or("/", |p| p.as_str());
    let signable = SignableRequest::new(
        request.method.as_str(),
        path_and_query,
        headers.into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|_| Refused::mismatch())?;
    let identity: Identity = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        None,
        None,
        "management-keys",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Sign exactly what the client listed, whatever it is.
    settings.excluded_headers = Some(Vec::new());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(authorization.region)
        .name(service)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|_| Refused::mismatch())?
        .into();
    let signed = sign(signable, &params).map_err(|_| Refused::mismatch())?;
    Ok(signed.signature().to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use aws_sigv4::http_request::SigningInstructions;
    use axum::http::HeaderValue;

    use super::*;

    fn keys() -> ManagementKeys {
        ManagementKeys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    /// A request signed by `aws-sigv4` the way the SDK signs one, at `at`.
    fn signed(secret: &str, at: SystemTime, body: &[u8]) -> (Method, Uri, HeaderMap) {
        let uri: Uri = "/default/lobby/dev/@connections/abc123=".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8081"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let identity: Identity = Credentials::new("AKIDEXAMPLE", secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("execute-api")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            uri.path(),
            pairs.into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        apply(&instructions, &mut headers);
        (Method::POST, uri, headers)
    }

    fn apply(instructions: &SigningInstructions, headers: &mut HeaderMap) {
        for (name, value) in instructions.headers() {
            headers.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
    }

    fn check(
        request: &(Method, Uri, HeaderMap),
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), Refused> {
        verify(
            &keys(),
            &SignedRequest {
                method: &request.0,
                uri: &request.1,
                headers: &request.2,
                body,
            },
            now,
        )
    }

    /// AWS's Signature Version 4 test suite, as aws-sigv4 ships it (`aws-signing-test-suite/v4`):
    /// the requests and signatures of `get-vanilla` and `post-x-www-form-urlencoded`.
    #[test]
    fn aws_test_suite_requests_pass_at_their_time_and_fail_when_changed() {
        let at: SystemTime = chrono::DateTime::parse_from_rfc3339("2015-08-30T12:36:00Z")
            .unwrap()
            .into();
        let mut get = HeaderMap::new();
        get.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        get.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        get.insert("authorization", HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
        let root: Uri = "/".parse().unwrap();
        let request = |method, headers, body| SignedRequest {
            method,
            uri: &root,
            headers,
            body,
        };
        assert_eq!(
            verify_for("service", &keys(), &request(&Method::GET, &get, b""), at),
            Ok(())
        );
        assert_eq!(
            verify_for("service", &keys(), &request(&Method::POST, &get, b""), at),
            Err(Refused::mismatch())
        );

        let mut post = HeaderMap::new();
        post.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        post.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        post.insert("content-length", HeaderValue::from_static("13"));
        post.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        post.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static(
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            ),
        );
        post.insert("authorization", HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"));
        assert_eq!(
            verify_for(
                "service",
                &keys(),
                &request(&Method::POST, &post, b"Param1=value1"),
                at
            ),
            Ok(())
        );
        assert_eq!(
            verify_for(
                "service",
                &keys(),
                &request(&Method::POST, &post, b"Param1=value2"),
                at
            ),
            Err(Refused::mismatch())
        );
        assert_eq!(
            verify(&keys(), &request(&Method::GET, &get, b""), at)
                .unwrap_err()
                .error_type,
            "IncompleteSignatureException",
            "signed for another service than execute-api"
        );
    }

    #[test]
    fn a_request_the_sdks_signer_signed_with_the_key_passes() {
        let now = SystemTime::now();
        let request = signed(&keys().secret_access_key, now, b"hello");
        assert_eq!(check(&request, b"hello", now), Ok(()));
    }

    #[test]
    fn another_secret_a_changed_body_or_an_unsigned_request_is_refused_as_aws_does() {
        let now = SystemTime::now();
        let wrong = signed("not-the-secret", now, b"hello");
        assert_eq!(
            check(&wrong, b"hello", now).unwrap_err().error_type,
            "InvalidSignatureException"
        );
        let right = signed(&keys().secret_access_key, now, b"hello");
        assert_eq!(
            check(&right, b"tampered", now).unwrap_err().error_type,
            "InvalidSignatureException"
        );
        let mut unsigned = right.clone();
        unsigned.2.remove("authorization");
        assert_eq!(
            check(&unsigned, b"hello", now).unwrap_err().error_type,
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn another_key_id_is_unrecognized_and_old_signatures_expire() {
        let now = SystemTime::now();
        let mut request = signed(&keys().secret_access_key, now, b"");
        let later = now + Duration::from_secs(16 * 60);
        let expired = check(&request, b"", later).unwrap_err();
        assert!(
            expired.message.starts_with("Signature expired"),
            "{expired}"
        );
        let authorization = request.2["authorization"]
            .to_str()
            .unwrap()
            .replace("AKIDEXAMPLE", "AKIDOTHER");
        request.2.insert(
            "authorization",
            HeaderValue::from_str(&authorization).unwrap(),
        );
        assert_eq!(
            check(&request, b"", now).unwrap_err().error_type,
            "UnrecognizedClientException"
        );
    }

    #[test]
    fn a_malformed_authorization_header_says_what_it_lacks() {
        let now = SystemTime::now();
        let mut request = signed(&keys().secret_access_key, now, b"");
        request.2.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/execute-api/aws4_request"),
        );
        let refused = check(&request, b"", now).unwrap_err();
        assert_eq!(refused.error_type, "IncompleteSignatureException");
        assert!(refused.message.contains("SignedHeaders"), "{refused}");
    }

    /// A current date, the right key id and `SignedHeaders` without `host` once made the SDK's
    /// signer panic inside the gateway (the connection dropped with no answer, a panic in the
    /// log); and a repeated `Authorization` or `X-Amz-Date` was read at its first value, where
    /// AWS refuses it. Each is now a 403 in AWS's shape.
    #[test]
    fn malformed_or_ambiguous_signing_input_is_refused_never_a_panic() {
        let now = SystemTime::now();
        let amz_date = chrono::DateTime::<chrono::Utc>::from(now)
            .format("%Y%m%dT%H%M%SZ")
            .to_string();
        let scope = format!(
            "AKIDEXAMPLE/{}/us-east-1/execute-api/aws4_request",
            &amz_date[..8]
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
        for (signed_headers, answer) in [
            ("x-amz-date", "InvalidSignatureException"),
            ("", "IncompleteSignatureException"),
            ("host;host;x-amz-date", "IncompleteSignatureException"),
            ("Host;x-amz-date", "IncompleteSignatureException"),
            ("host;;x-amz-date", "IncompleteSignatureException"),
        ] {
            headers.insert(
                "authorization",
                HeaderValue::from_str(&format!(
                    "AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed_headers}, Signature=00"
                ))
                .unwrap(),
            );
            headers.insert("host", HeaderValue::from_static("127.0.0.1:8081"));
            let request = (
                Method::POST,
                "/a/b/c/@connections/x".parse().unwrap(),
                headers.clone(),
            );
            let refused = check(&request, b"", now).unwrap_err();
            assert_eq!(
                refused.error_type, answer,
                "SignedHeaders={signed_headers}: {refused}"
            );
        }

        let mut request = signed(&keys().secret_access_key, now, b"");
        assert_eq!(check(&request, b"", now), Ok(()));
        for repeated in ["authorization", "x-amz-date"] {
            let mut twice = request.clone();
            let value = twice.2.get(repeated).unwrap().clone();
            twice.2.append(repeated, value);
            let refused = check(&twice, b"", now).unwrap_err();
            assert_eq!(
                refused.error_type, "IncompleteSignatureException",
                "{repeated}"
            );
        }
        request.2.remove("host");
        assert_eq!(check(&request, b"", now), Err(Refused::mismatch()));
    }
}
