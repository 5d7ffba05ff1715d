//! `apply` and `delete`: ChatRoom files converged or torn down once, for pipelines and tests.
//! Progress goes to stderr; `apply` prints each room with its status to stdout.

use std::process::ExitCode;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::aws::one_shot_provider;
use super::{EXIT_BAD_INPUT, load_or_report};
use crate::cli::{ApplyArgs, DeleteArgs};
use crate::crd::ChatRoom;
use crate::files::{LoadedRoom, print_rooms};
use crate::reconcile::{self, Provider, Reconciled};
use crate::secrets::SecretSource;

pub async fn apply(args: ApplyArgs) -> ExitCode {
    let Some(rooms) = load_or_report(&args.files, "changed") else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let Some(zip_path) = args.aws.handler_zip.clone() else {
        eprintln!(
            "error: --handler-zip is required: the room function's bootstrap.zip (bash scripts/build-lambda.sh)"
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let secrets = args
        .secrets_dir
        .clone()
        .map_or(SecretSource::Unavailable, SecretSource::Dir);
    let provider = match one_shot_provider(&args.aws, Some(&zip_path), &rooms, secrets).await {
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
            aws.calls().reset_counts();
        }
        let reconciled = converge_until_ready(&provider, &loaded, args.timeout).await;
        let who = format!("{}/{}", loaded.namespace(), loaded.name());
        if let Provider::Aws(aws) = &provider {
            let (calls, changing) = aws.calls().counts();
            eprintln!(
                "{who}: {calls} AWS calls ({changing} changing), {:.2} s",
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
    let Some(rooms) = load_or_report(&args.files, "changed") else {
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let provider = match one_shot_provider(&args.aws, None, &rooms, SecretSource::Unavailable).await
    {
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
