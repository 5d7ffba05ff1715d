//! The AWS provider as the commands build it: the operator's code from `--handler-zip`, the
//! SDK's default chain for credentials, region and endpoint, and its retry policy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;

use crate::cli::AwsArgs;
use crate::providers::aws::{AwsProvider, HandlerZip, RateLimits, Settings};
use crate::reconcile::Provider;

#[derive(Debug, thiserror::Error)]
#[error("{flag} {}: {source}", path.display())]
pub struct UnreadableZip {
    flag: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// The provider for `args`, with `zip` as the x86_64 code (`delete` needs none).
pub async fn aws_provider(args: &AwsArgs, zip: Option<&Path>) -> Result<Provider, UnreadableZip> {
    let read = |path: &Path, flag: &'static str| {
        HandlerZip::read(path).map_err(|source| UnreadableZip {
            flag,
            path: path.to_owned(),
            source,
        })
    };
    let handler_zip = zip.map(|path| read(path, "--handler-zip")).transpose()?;
    let handler_zip_arm64 = args
        .handler_zip_arm64
        .as_deref()
        .map(|path| read(path, "--handler-zip-arm64"))
        .transpose()?;
    // Throttling and 5xx are retried by the SDK itself, with backoff.
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .load()
        .await;
    let mut settings = Settings::new(handler_zip, &args.cluster_name);
    settings.handler_zip_arm64 = handler_zip_arm64;
    settings
        .permissions_boundary
        .clone_from(&args.permissions_boundary);
    settings
        .allowed_role_arns
        .clone_from(&args.allowed_role_arns);
    settings.rate_limits = RateLimits::with(&args.aws_rate_limits);
    Ok(Provider::Aws(Arc::new(AwsProvider::new(sdk, settings))))
}
