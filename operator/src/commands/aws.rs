//! The AWS provider as the commands build it: the operator's code from `--handler-zip`, the
//! SDK's default chain for credentials, region and endpoint, and its retry policy.

use crate::secrets::SecretSource;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;

use crate::cli::AwsArgs;
use crate::files::LoadedRoom;
use crate::providers::aws::{AwsProvider, HandlerZip, RateLimits, Settings};
use crate::reconcile::Provider;

#[derive(Debug, thiserror::Error)]
#[error("{flag} {}: {source}", path.display())]
pub struct UnreadableZip {
    flag: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// The SDK's default chain, with the SDK's own retries for throttling and 5xx.
async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .load()
        .await
}

/// How long the credential chain may take to answer before `apply` or `delete` gives up: the
/// instance metadata service answers within a second where it exists.
const CREDENTIALS_WAIT: Duration = Duration::from_secs(10);

/// The provider for a one-shot command over `rooms`, or what it lacks to reach AWS: readable
/// code, a region for a room without `spec.region`, or credentials. The files come first, so a
/// bad path is named whatever the environment; finding out now means an `apply` without them
/// stops at once, instead of retrying every room until its timeout.
pub async fn one_shot_provider(
    args: &AwsArgs,
    zip: Option<&Path>,
    rooms: &[LoadedRoom],
    secrets: SecretSource,
) -> Result<Provider, String> {
    let code = HandlerCode::read(args, zip).map_err(|e| e.to_string())?;
    let sdk = sdk_config().await;
    if sdk.region().is_none()
        && let Some(room) = rooms.iter().find(|r| r.room.spec.region.is_none())
    {
        return Err(format!(
            "no AWS region for {}: set AWS_REGION (or a profile's region), or spec.region",
            room.source
        ));
    }
    let Some(credentials) = sdk.credentials_provider() else {
        return Err("no AWS credentials provider is configured".to_owned());
    };
    match tokio::time::timeout(CREDENTIALS_WAIT, credentials.provide_credentials()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            return Err(format!(
                "no AWS credentials: {error} (set AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where IRSA or an instance role provides them)"
            ));
        }
        Err(_) => {
            return Err(format!(
                "no AWS credentials within {CREDENTIALS_WAIT:?} from the SDK's default chain"
            ));
        }
    }
    Ok(provider_for(sdk, args, code, secrets))
}

/// The provider for `args`, with `zip` as the x86_64 code (`delete` needs none).
pub async fn aws_provider(
    args: &AwsArgs,
    zip: Option<&Path>,
    secrets: SecretSource,
) -> Result<Provider, UnreadableZip> {
    let code = HandlerCode::read(args, zip)?;
    Ok(provider_for(sdk_config().await, args, code, secrets))
}

/// The room function's code for each architecture the operator was given.
struct HandlerCode {
    x86_64: Option<HandlerZip>,
    arm64: Option<HandlerZip>,
}

impl HandlerCode {
    fn read(args: &AwsArgs, zip: Option<&Path>) -> Result<Self, UnreadableZip> {
        let read = |path: &Path, flag: &'static str| {
            HandlerZip::read(path).map_err(|source| UnreadableZip {
                flag,
                path: path.to_owned(),
                source,
            })
        };
        Ok(Self {
            x86_64: zip.map(|path| read(path, "--handler-zip")).transpose()?,
            arm64: args
                .handler_zip_arm64
                .as_deref()
                .map(|path| read(path, "--handler-zip-arm64"))
                .transpose()?,
        })
    }
}

fn provider_for(
    sdk: SdkConfig,
    args: &AwsArgs,
    code: HandlerCode,
    secrets: SecretSource,
) -> Provider {
    let mut settings = Settings::new(code.x86_64, &args.cluster_name);
    settings.handler_zip_arm64 = code.arm64;
    settings
        .permissions_boundary
        .clone_from(&args.permissions_boundary);
    settings
        .allowed_role_arns
        .clone_from(&args.allowed_role_arns);
    settings.rate_limits = RateLimits::with(&args.aws_rate_limits);
    settings.secrets = secrets;
    Provider::Aws(Arc::new(AwsProvider::new(sdk, settings)))
}
