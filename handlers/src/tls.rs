//! The one TLS client configuration of the crate's HTTPS clients (issuers' keys, backends).

use std::sync::Arc;

/// Trusts the system's certificate authorities, with aws-lc-rs as its crypto (the one provider
/// the AWS SDK brings too, so that rustls never has two to choose from).
pub(crate) fn client_config() -> Result<rustls::ClientConfig, String> {
    use hyper_rustls::ConfigBuilderExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_native_roots()
        .map_err(|e| e.to_string())?
        .with_no_client_auth())
}
