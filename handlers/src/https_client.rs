//! What the crate's HTTPS clients (`@connections`, issuers' keys, backends) share: one TLS
//! configuration, and errors told with their causes.

use std::sync::{Arc, OnceLock};

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

/// `http` wrapped to speak TLS (HTTP/1) to `https://` URLs with [`client_config`], and plain
/// HTTP to `http://` ones (which of those a client may call is for its caller to judge).
pub(crate) fn connector<R>(
    mut http: HttpConnector<R>,
) -> Result<HttpsConnector<HttpConnector<R>>, String> {
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config()?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// Trusts the system's certificate authorities, with aws-lc-rs as its crypto (the one provider
/// the AWS SDK brings too, so that rustls never has two to choose from). Read once per process:
/// reading them costs a function's init ~2.6 ms (docs/benchmarks.md), and a room may have three
/// clients (`@connections`, its issuer's keys, its backend).
pub(crate) fn client_config() -> Result<rustls::ClientConfig, String> {
    static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    CONFIG.get_or_init(system_roots).clone()
}

fn system_roots() -> Result<rustls::ClientConfig, String> {
    use hyper_rustls::ConfigBuilderExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_native_roots()
        .map_err(|e| e.to_string())?
        .with_no_client_auth())
}

/// hyper's errors say little at the top ("client error (Connect)"); the reason is below.
#[cfg(feature = "backend")]
pub(crate) fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
