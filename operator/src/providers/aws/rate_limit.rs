//! A client-side rate limit per AWS service, shared by every reconcile and region, in front of
//! the HTTP client of that service's SDK clients: each HTTP request (the SDK's retries
//! included) waits for a token of its service's bucket.
//!
//! # Guarantees
//! - No more than `rate` requests per second leave for a service, after a burst of at most one
//!   second's worth; the rest wait their turn (they are not dropped).
//!
//! # Assumptions
//! - One operator process per account uses these buckets; other users of the account are why
//!   the defaults sit well below AWS's quotas.
//!
//! # Caveats
//! - A request waiting for a token counts against the reconcile's own time, and a fleet whose
//!   steady state needs more requests per resync than the rate allows simply takes longer per
//!   resync (docs/benchmarks.md has the arithmetic).
//! - The wait happens inside the HTTP connector, after the SDK has started watching the
//!   request's upload for a stall, so the clients using these buckets turn the SDK's upload
//!   stall protection off ([`stalled_stream_protection`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The services the operator calls, by the name `--aws-rate-limit` takes, and API Gateway's
/// custom-domain mutations, which have a quota of their own.
pub const SERVICES: [&str; 7] = [
    "apigateway",
    DOMAIN_MUTATIONS,
    "dynamodb",
    "iam",
    "lambda",
    "logs",
    "sts",
];

/// CreateDomainName, UpdateDomainName and DeleteDomainName: API Gateway allows one create and
/// one delete every 30 s per account ("API Gateway quotas for creating, deploying and managing
/// an API", <https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html>). They
/// wait for this bucket as well as API Gateway's: one every 31 s, because AWS counts the 30 s
/// between arrivals, and a request paced exactly 30 s after one that was slower on its way
/// would arrive inside the window.
pub const DOMAIN_MUTATIONS: &str = "apigateway-domains";

/// Requests per second per service. The defaults are about half of AWS's documented control
/// plane quotas (API Gateway: 10 requests per second per account for all management
/// operations, <https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html>),
/// leaving the rest to other users of the account.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimits(BTreeMap<&'static str, f64>);

impl Default for RateLimits {
    fn default() -> Self {
        Self(BTreeMap::from([
            ("apigateway", 5.0),
            (DOMAIN_MUTATIONS, 1.0 / 31.0),
            ("dynamodb", 10.0),
            ("iam", 5.0),
            ("lambda", 10.0),
            ("logs", 3.0),
            ("sts", 5.0),
        ]))
    }
}

impl RateLimits {
    /// The defaults with `overrides` applied.
    pub fn with(overrides: &[RateLimit]) -> Self {
        let mut limits = Self::default();
        for limit in overrides {
            limits.0.insert(limit.service, limit.per_second);
        }
        limits
    }

    pub fn per_second(&self, service: &str) -> f64 {
        self.0.get(service).copied().unwrap_or(1.0)
    }
}

/// One `--aws-rate-limit SERVICE=PER_SECOND`.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    pub service: &'static str,
    pub per_second: f64,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (service, rate) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not SERVICE=REQUESTS_PER_SECOND"))?;
        let service = SERVICES
            .into_iter()
            .find(|s| *s == service.trim())
            .ok_or_else(|| format!("unknown service {service:?}; one of {SERVICES:?}"))?;
        let per_second: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("{rate:?} is not a number of requests per second"))?;
        if !(0.01..=10_000.0).contains(&per_second) {
            return Err(format!(
                "{per_second} requests per second is out of range (0.01 to 10000)"
            ));
        }
        Ok(Self {
            service,
            per_second,
        })
    }
}

/// The SDK's stalled-stream protection for clients behind these buckets: downloads watched as
/// by default, uploads not. The SDK counts a request body that is not read for its 5 s grace
/// period as a stalled upload, and a body waiting here for a token is not read: a domain
/// mutation waiting out API Gateway's 30 s window failed with "minimum throughput was
/// specified at 1 B/s, but throughput of 0 B/s was observed" (`aws_as_documented::custom_domain_…`).
/// What the protection bounded, an upload to a peer that stops reading, [`timeouts`] bounds.
pub fn stalled_stream_protection() -> StalledStreamProtectionConfig {
    StalledStreamProtectionConfig::enabled()
        .upload_enabled(false)
        .build()
}

/// How long one HTTP request may take from its first byte sent to its answer's head: the
/// operator's bodies are in memory (the largest, a function's code, a few MB), so a request
/// that takes longer is stuck, and failing it lets the SDK retry. The read timeout starts
/// inside the connector the buckets wrap, after the token, so waiting for one never counts.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The SDK's own default connect timeout (behavior version 2023-11-09 and later).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);

/// `shared` (the SDK configuration's timeouts) with [`READ_TIMEOUT`], and the SDK's default
/// connect timeout where none is set.
pub fn timeouts(shared: Option<&TimeoutConfig>) -> TimeoutConfig {
    let shared = shared.cloned().unwrap_or_else(TimeoutConfig::disabled);
    let connect = shared.connect_timeout().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    shared
        .to_builder()
        .connect_timeout(connect)
        .read_timeout(READ_TIMEOUT)
        .build()
}

/// A token bucket that refills at `per_second` and holds one second's worth (at least 1).
pub fn bucket(per_second: f64) -> Arc<DefaultDirectRateLimiter> {
    Arc::new(RateLimiter::direct(quota(per_second)))
}

/// One second's worth of requests, at least one.
fn quota(per_second: f64) -> Quota {
    crate::token_bucket::quota(per_second, per_second.floor() as u32)
}

/// `given` (a configuration's own client: tests, proxies), else the SDK's default HTTPS client
/// (rustls with aws-lc, proxy settings from the environment), with every request first waiting
/// for a token of `bucket`, and custom-domain mutations for one of `domains` too (API Gateway's
/// client).
pub fn client(
    given: Option<SharedHttpClient>,
    bucket: Arc<DefaultDirectRateLimiter>,
    domains: Option<Arc<DefaultDirectRateLimiter>>,
) -> SharedHttpClient {
    SharedHttpClient::new(RateLimited {
        inner: given.unwrap_or_else(default_client),
        bucket,
        domains,
    })
}

fn default_client() -> SharedHttpClient {
    let inner = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    SharedHttpClient::new(inner)
}

/// Whether a request to API Gateway v2 (its URI, or just the path) creates, changes or deletes
/// a custom domain (not one of its API mappings).
pub fn is_domain_mutation(method: &str, uri: &str) -> bool {
    let path = match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => uri,
    };
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v2", "domainnames"] => method == "POST",
        ["v2", "domainnames", _] => matches!(method, "PATCH" | "DELETE"),
        _ => false,
    }
}

#[derive(Clone)]
struct RateLimited {
    inner: SharedHttpClient,
    bucket: Arc<DefaultDirectRateLimiter>,
    domains: Option<Arc<DefaultDirectRateLimiter>>,
}

impl fmt::Debug for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimited").finish_non_exhaustive()
    }
}

impl HttpClient for RateLimited {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RateLimitedConnector {
            inner: self.inner.http_connector(settings, components),
            bucket: self.bucket.clone(),
            domains: self.domains.clone(),
        })
    }
}

#[derive(Clone)]
struct RateLimitedConnector {
    inner: SharedHttpConnector,
    bucket: Arc<DefaultDirectRateLimiter>,
    domains: Option<Arc<DefaultDirectRateLimiter>>,
}

impl fmt::Debug for RateLimitedConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitedConnector")
            .finish_non_exhaustive()
    }
}

impl HttpConnector for RateLimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let bucket = self.bucket.clone();
        let domains = self
            .domains
            .clone()
            .filter(|_| is_domain_mutation(request.method(), request.uri()));
        HttpConnectorFuture::new(async move {
            if let Some(domains) = domains {
                domains.until_ready().await;
            }
            bucket.until_ready().await;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use std::time::Duration;

    use super::*;

    #[test]
    fn flags_name_a_known_service_and_a_sane_rate() {
        assert_eq!(
            "apigateway=2.5".parse::<RateLimit>(),
            Ok(RateLimit {
                service: "apigateway",
                per_second: 2.5
            })
        );
        for bad in [
            "apigateway",
            "s3=5",
            "apigateway=fast",
            "apigateway=0",
            "dynamodb=-1",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad} was accepted");
        }
        let limits = RateLimits::with(&["apigateway=8".parse().unwrap()]);
        assert_eq!(limits.per_second("apigateway"), 8.0);
        assert_eq!(limits.per_second("dynamodb"), 10.0);
    }

    #[test]
    fn custom_domain_mutations_are_told_from_everything_else() {
        for (method, path) in [
            ("POST", "/v2/domainnames"),
            ("PATCH", "/v2/domainnames/chat.example.com"),
            ("DELETE", "/v2/domainnames/chat.example.com"),
            (
                "DELETE",
                "https://apigateway.eu-west-1.amazonaws.com/v2/domainnames/chat.example.com",
            ),
        ] {
            assert!(is_domain_mutation(method, path), "{method} {path}");
        }
        for (method, path) in [
            ("GET", "/v2/domainnames/chat.example.com"),
            ("POST", "/v2/domainnames/chat.example.com/apimappings"),
            ("DELETE", "/v2/domainnames/chat.example.com/apimappings/abc"),
            ("POST", "/v2/apis"),
        ] {
            assert!(!is_domain_mutation(method, path), "{method} {path}");
        }
        assert_eq!(
            RateLimits::default().per_second(DOMAIN_MUTATIONS),
            1.0 / 31.0
        );
        assert!("apigateway-domains=0.05".parse::<RateLimit>().is_ok());
    }

    #[test]
    fn every_request_has_a_read_timeout_and_keeps_a_connect_timeout_given_or_the_sdks() {
        let defaults = timeouts(None);
        assert_eq!(defaults.read_timeout(), Some(READ_TIMEOUT));
        assert_eq!(defaults.connect_timeout(), Some(DEFAULT_CONNECT_TIMEOUT));
        let given = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_timeout(Duration::from_secs(300))
            .build();
        let kept = timeouts(Some(&given));
        assert_eq!(kept.connect_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(kept.operation_timeout(), Some(Duration::from_secs(300)));
        assert_eq!(kept.read_timeout(), Some(READ_TIMEOUT));
        assert!(!stalled_stream_protection().upload_enabled());
        assert!(stalled_stream_protection().download_enabled());
    }

    #[test]
    fn a_bucket_lets_one_seconds_worth_through_then_one_request_per_interval() {
        let clock = FakeRelativeClock::default();
        let bucket = RateLimiter::direct_with_clock(quota(5.0), clock.clone());
        for n in 0..5 {
            assert!(bucket.check().is_ok(), "request {n} of the burst");
        }
        assert!(bucket.check().is_err(), "the sixth waits");
        clock.advance(Duration::from_millis(199));
        assert!(bucket.check().is_err(), "not before 1/5 s");
        clock.advance(Duration::from_millis(1));
        assert!(bucket.check().is_ok());
        assert!(bucket.check().is_err());
        // Idle for a minute: still no more than one second's worth at once.
        clock.advance(Duration::from_secs(60));
        let burst = (0..20).filter(|_| bucket.check().is_ok()).count();
        assert_eq!(burst, 5);
    }

    #[test]
    fn a_slow_rate_still_lets_one_request_through() {
        let clock = FakeRelativeClock::default();
        let bucket = RateLimiter::direct_with_clock(quota(0.5), clock.clone());
        assert!(bucket.check().is_ok());
        assert!(bucket.check().is_err());
        clock.advance(Duration::from_secs(2));
        assert!(bucket.check().is_ok());
    }
}
