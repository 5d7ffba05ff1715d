//! The backend over HTTP(S): one pooled client per room, each request signed, bounded in time
//! and in the bytes of its answer, and — in a gateway inside a cluster — kept away from
//! addresses the backend's owner should not be able to make the gateway call.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;

use super::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use super::{Backend, BackendError, MAX_ANSWER_BYTES};
use crate::https_client::{self, with_causes};

/// Which addresses a backend may resolve to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Any: a gateway on a laptop, or a Lambda function outside a VPC.
    Any,
    /// Loopback and public addresses only: a gateway inside a cluster, where a room's author
    /// could otherwise point its backend at the cloud's metadata service (link-local) or at
    /// the cluster's own services (private ranges, which service and pod networks use).
    PublicOnly,
}

impl AddressPolicy {
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::PublicOnly => ip.is_loopback() || !internal(ip),
        }
    }
}

fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // 100.64.0.0/10, carrier-grade NAT, which some cluster networks use.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
                    || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
            }
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NoBackendClient {
    #[error("{0}")]
    Url(String),
    #[error(
        "{0} is an address this gateway may not call: link-local, private and cluster-internal addresses need --backend-allow-internal-addresses"
    )]
    Internal(IpAddr),
    #[error("cannot make an HTTPS client: {0}")]
    Tls(String),
}

type HttpsClient = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

pub struct HttpBackend {
    url: http::Uri,
    key: Option<Arc<[u8]>>,
    timeout: Duration,
    client: HttpsClient,
}

impl HttpBackend {
    /// `url` must be `https://`, or `http://` to a loopback address; `key` signs every
    /// request (`None`: unsigned, for a loopback backend); `timeout` bounds each request,
    /// connecting included.
    pub fn new(
        url: &str,
        key: Option<Vec<u8>>,
        timeout: Duration,
        policy: AddressPolicy,
    ) -> Result<Self, NoBackendClient> {
        if let Some(problem) = crate::auth::https_or_loopback_problem(url) {
            return Err(NoBackendClient::Url(problem));
        }
        let parsed: http::Uri = url
            .parse()
            .map_err(|_| NoBackendClient::Url(url.to_owned()))?;
        let host = parsed.host().unwrap_or_default();
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            // An address in the URL is connected to without a lookup, so it is judged here.
            if !policy.allows(ip) {
                return Err(NoBackendClient::Internal(ip));
            }
        }
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            inner: GaiResolver::new(),
            policy,
        });
        http.set_connect_timeout(Some(timeout));
        let connector = https_client::connector(http).map_err(NoBackendClient::Tls)?;
        Ok(Self {
            url: parsed,
            key: key.map(Arc::from),
            timeout,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn exchange(&self, event: Bytes) -> Result<Bytes, BackendError> {
        let mut request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "chatroom-operator");
        if let Some(key) = &self.key {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            request = request
                .header(TIMESTAMP_HEADER, now)
                .header(SIGNATURE_HEADER, sign(key, now, &event));
        }
        let request = request
            .body(Full::new(event))
            .map_err(|e| BackendError::Unreachable(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| BackendError::Unreachable(with_causes(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(BackendError::Status(status.as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    BackendError::AnswerTooLarge
                } else {
                    BackendError::Unreachable(e.to_string())
                }
            })?;
        Ok(body.to_bytes())
    }
}

impl Backend for HttpBackend {
    fn deliver(&self, event: Bytes) -> BoxFuture<'_, Result<Bytes, BackendError>> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.exchange(event))
                .await
                .map_err(|_| BackendError::Timeout(self.timeout))?
        })
    }
}

/// The system's resolver, keeping only the addresses the policy allows, so that a name that
/// resolves (or is re-pointed) to an internal address is refused when it is connected to.
#[derive(Clone)]
struct GuardedResolver {
    inner: GaiResolver,
    policy: AddressPolicy,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, io::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_owned();
        let lookup = self.inner.call(name);
        let policy = self.policy;
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = lookup
                .await?
                .filter(|address| policy.allows(address.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{host} resolves only to addresses this gateway may not call (link-local, private or cluster-internal)"
                    ),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_a_cluster_only_loopback_and_public_addresses_are_called() {
        let policy = AddressPolicy::PublicOnly;
        for allowed in ["127.0.0.1", "::1", "93.184.215.14", "2606:4700::1111"] {
            assert!(policy.allows(allowed.parse().unwrap()), "{allowed}");
        }
        for refused in [
            "169.254.169.254",
            "10.96.0.1",
            "172.20.0.10",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!policy.allows(refused.parse().unwrap()), "{refused}");
            assert!(AddressPolicy::Any.allows(refused.parse().unwrap()));
        }
    }

    #[tokio::test]
    async fn a_url_naming_an_internal_address_is_refused_before_any_request() {
        let refused = HttpBackend::new(
            "https://169.254.169.254/latest/meta-data",
            None,
            Duration::from_secs(1),
            AddressPolicy::PublicOnly,
        );
        assert!(matches!(refused, Err(NoBackendClient::Internal(_))));
        let plain = HttpBackend::new(
            "http://backend.example.com/",
            None,
            Duration::from_secs(1),
            AddressPolicy::Any,
        );
        assert!(matches!(plain, Err(NoBackendClient::Url(_))));
    }
}
