//! The room's Lambda function: the handlers' `bootstrap` on provided.al2023. New code rolls
//! out when the zip's SHA-256 differs from the function's `CodeSha256`; drifted configuration
//! is restored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as AwsArchitecture, Environment, FunctionCode, LastUpdateStatus, Runtime, State,
};
use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::errors::{AwsError, On, Step};
use super::{Outcome, RoomContext};
use crate::crd::Architecture;

/// A `bootstrap.zip`, read once at start-up.
#[derive(Clone, Debug)]
pub struct HandlerZip {
    pub bytes: Arc<Vec<u8>>,
    /// Base64 SHA-256, as Lambda reports `CodeSha256`.
    pub sha256: String,
}

impl HandlerZip {
    pub fn read(path: &std::path::Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        Self {
            bytes: Arc::new(bytes),
            sha256,
        }
    }
}

pub async fn converge(
    room: &RoomContext<'_>,
    role_arn: &str,
) -> Result<(String, Outcome), AwsError> {
    let lambda = &room.clients.lambda;
    let name = &room.names.function;
    let fail = On::new(Step::Function, name);
    let zip = zip_for(room)?;
    let architecture = architecture(room.spec.function.architecture);
    let environment = environment(room);

    let found = match lambda.get_function().function_name(name).send().await {
        Ok(found) => found.configuration,
        Err(e) => {
            let error = fail.err(e);
            if !error.is_not_found() {
                return Err(error);
            }
            None
        }
    };

    let Some(current) = found else {
        let create = || async {
            lambda
                .create_function()
                .function_name(name)
                .runtime(Runtime::Providedal2023)
                .handler("bootstrap")
                .role(role_arn)
                .code(
                    FunctionCode::builder()
                        .zip_file(Blob::new(zip.bytes.as_slice()))
                        .build(),
                )
                .memory_size(room.spec.function.memory_mb)
                .timeout(room.spec.function.timeout_seconds)
                .architectures(architecture.clone())
                .environment(
                    Environment::builder()
                        .set_variables(Some(environment.clone()))
                        .build(),
                )
                .set_tags(Some(room.tags.clone().into_iter().collect()))
                .send()
                .await
                .map_err(|e| fail.err(e))
        };
        // A new role takes seconds to propagate through IAM; until then Lambda refuses it. A
        // role the spec brings should already exist: refused, it is a wrong ARN, not a delay.
        let attempts = if room.spec.function.role_arn.is_none() {
            room.settings.role_propagation_attempts
        } else {
            0
        };
        let created = create
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(500)).with_max_delay(Duration::from_secs(8)).with_max_times(attempts))
            .when(|error: &AwsError| error.message.contains("cannot be assumed"))
            .notify(|error, delay| tracing::info!(function = %name, %error, ?delay, "waiting for IAM to propagate the new role"))
            .await?;
        wait_usable(room).await?;
        return Ok((created.function_arn.unwrap_or_default(), Outcome::Created));
    };

    let mut outcome = Outcome::Unchanged;
    let current_environment = current
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    let drifted = current.memory_size() != Some(room.spec.function.memory_mb)
        || current.timeout() != Some(room.spec.function.timeout_seconds)
        || current.role() != Some(role_arn)
        || current.runtime() != Some(&Runtime::Providedal2023)
        || current.handler() != Some("bootstrap")
        || current_environment != environment;
    if drifted {
        lambda
            .update_function_configuration()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role_arn)
            .memory_size(room.spec.function.memory_mb)
            .timeout(room.spec.function.timeout_seconds)
            .environment(
                Environment::builder()
                    .set_variables(Some(environment))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        wait_usable(room).await?;
        outcome = Outcome::Updated;
    }
    let architecture_drifted = current.architectures().first() != Some(&architecture);
    if current.code_sha256() != Some(zip.sha256.as_str()) || architecture_drifted {
        lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(zip.bytes.as_slice()))
            .architectures(architecture)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        wait_usable(room).await?;
        outcome = Outcome::Updated;
    }
    Ok((
        current.function_arn().unwrap_or_default().to_owned(),
        outcome,
    ))
}

fn zip_for<'a>(room: &'a RoomContext<'_>) -> Result<&'a HandlerZip, AwsError> {
    match room.spec.function.architecture {
        Architecture::X86_64 => room.settings.handler_zip.as_ref().ok_or_else(|| {
            AwsError::new(Step::Function, &room.names.function, "NoHandlerZip", "the operator was started without --handler-zip")
        }),
        Architecture::Arm64 => room.settings.handler_zip_arm64.as_ref().ok_or_else(|| {
            AwsError::new(
                Step::Function,
                &room.names.function,
                "NoHandlerForArchitecture",
                "spec.function.architecture is arm64 but the operator has no arm64 bootstrap.zip (--handler-zip-arm64)",
            )
        }),
    }
}

fn architecture(architecture: Architecture) -> AwsArchitecture {
    match architecture {
        Architecture::X86_64 => AwsArchitecture::X8664,
        Architecture::Arm64 => AwsArchitecture::Arm64,
    }
}

fn environment(room: &RoomContext<'_>) -> HashMap<String, String> {
    HashMap::from([
        ("TABLE_NAME".to_owned(), room.names.table.clone()),
        ("MESSAGE_ROUTE".to_owned(), room.spec.message_route.clone()),
        (
            "ROUTE_SELECTION_EXPRESSION".to_owned(),
            room.spec.route_selection_expression.clone(),
        ),
    ])
}

/// Waits (bounded) for `State: Active` and a finished update, as the next change needs.
async fn wait_usable(room: &RoomContext<'_>) -> Result<(), AwsError> {
    let name = &room.names.function;
    for _ in 0..120 {
        let config = room
            .clients
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(Step::Function, name, e.into_service_error()))?;
        let active = matches!(config.state(), None | Some(State::Active));
        let updated = !matches!(
            config.last_update_status(),
            Some(LastUpdateStatus::InProgress)
        );
        match config.last_update_status() {
            Some(LastUpdateStatus::Failed) => {
                let reason = config
                    .last_update_status_reason()
                    .unwrap_or("no reason given");
                return Err(AwsError::new(Step::Function, name, "UpdateFailed", reason));
            }
            _ if active && updated => return Ok(()),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    Err(AwsError::new(
        Step::Function,
        name,
        "Timeout",
        "the function did not become Active within 2 minutes",
    ))
}

pub async fn delete(room: &RoomContext<'_>) -> Result<bool, AwsError> {
    let name = &room.names.function;
    match room
        .clients
        .lambda
        .delete_function()
        .function_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => {
            let error = AwsError::from_sdk(Step::Function, name, e.into_service_error());
            if error.is_not_found() {
                Ok(false)
            } else {
                Err(error)
            }
        }
    }
}
