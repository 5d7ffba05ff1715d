//! `apply` and `delete`: ChatRoom files converged or torn down once, for pipelines and tests.
//! Progress goes to stderr; `apply` prints each room with its status to stdout.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use backon::{ExponentialBuilder, Retryable};

use crate::cli::{ApplyArgs, AwsArgs, DeleteArgs};
use crate::crd::ChatRoom;
use crate::files::{LoadedRoom, load_rooms, print_rooms};
use crate::local_command::EXIT_BAD_INPUT;
use crate::providers::aws::{AwsProvider, HandlerZip, Settings};
use crate::reconcile::{self, Provider, Reconciled};

pub async fn apply(args: ApplyArgs) -> ExitCode {
    let Some(rooms) = load(&args.files) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(zip_path) = args.aws.handler_zip.clone() else {
        eprintln!(
            "error: --handler-zip is required: the room function's bootstrap.zip (bash scripts/build-lambda.sh)"
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let provider = match aws_provider(&args.aws, Some(&zip_path)).await {
        Ok(provider) => provider,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };

    let mut all_ready = true;
    let mut applied = Vec::with_capacity(rooms.len());
    for loaded in rooms {
        let started = std::time::Instant::now();
        if let Provider::Aws(aws) = &provider {
            aws.calls().clear();
        }
        let reconciled = converge_until_ready(&provider, &loaded, args.timeout).await;
        let who = format!("{}/{}", loaded.namespace(), loaded.name());
        if let Provider::Aws(aws) = &provider {
            let calls = aws.calls().calls();
            let changes = calls.iter().filter(|c| c.is_mutating()).count();
            eprintln!(
                "{who}: {} AWS calls ({changes} changing), {:.2} s",
                calls.len(),
                started.elapsed().as_secs_f64()
            );
        }
        match &reconciled.failure {
            None => eprintln!(
                "{who}: Ready: {}",
                reconciled
                    .status
                    .websocket_url
                    .as_deref()
                    .unwrap_or_default()
            ),
            Some(failure) => {
                all_ready = false;
                eprintln!("{who}: not ready: {}: {}", failure.reason, failure.message);
            }
        }
        let mut room = loaded.room;
        room.status = Some(reconciled.status);
        applied.push(room);
    }
    if let Err(error) = print_rooms(&applied) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    if all_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn delete(args: DeleteArgs) -> ExitCode {
    let Some(rooms) = load(&args.files) else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let provider = match aws_provider(&args.aws, None).await {
        Ok(provider) => provider,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let mut all_deleted = true;
    for loaded in rooms {
        let who = format!("{}/{}", loaded.namespace(), loaded.name());
        match reconcile::delete(&provider, &loaded.room).await {
            Ok(summary) => eprintln!("{who}: {summary}"),
            Err(message) => {
                all_deleted = false;
                eprintln!("{who}: delete failed: {message}");
            }
        }
    }
    if all_deleted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn load(files: &[std::path::PathBuf]) -> Option<Vec<LoadedRoom>> {
    match load_rooms(files) {
        Ok(rooms) => Some(rooms),
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            eprintln!("{} problem(s) found; nothing was changed", errors.len());
            None
        }
    }
}

pub async fn aws_provider(
    args: &AwsArgs,
    zip: Option<&std::path::Path>,
) -> Result<Provider, String> {
    let read = |path: &std::path::Path, flag: &str| {
        HandlerZip::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
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
    settings.permissions_boundary = args.permissions_boundary.clone();
    Ok(Provider::Aws(Arc::new(AwsProvider::new(sdk, settings))))
}

/// Reconciles until Ready, a failure only a change can fix, or the timeout; transient failures
/// are retried with exponential backoff.
async fn converge_until_ready(
    provider: &Provider,
    loaded: &LoadedRoom,
    timeout: Duration,
) -> Reconciled {
    let room: &ChatRoom = &loaded.room;
    let attempt = || async {
        let reconciled = reconcile::reconcile(provider, room).await;
        if reconciled.is_ready() {
            Ok(reconciled)
        } else {
            Err(reconciled)
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(15))
        .with_total_delay(Some(timeout))
        .without_max_times();
    let outcome = attempt
        .retry(backoff)
        .when(|not_ready: &Reconciled| not_ready.failure.as_ref().is_some_and(|f| !f.permanent))
        .notify(|not_ready, delay| {
            if let Some(failure) = &not_ready.failure {
                eprintln!(
                    "{}: {}: retrying in {delay:?}",
                    loaded.source, failure.message
                );
            }
        })
        .await;
    outcome.unwrap_or_else(|not_ready| not_ready)
}
