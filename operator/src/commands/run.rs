//! `chatroom-operator run`: the controller in a cluster (in-cluster config or KUBECONFIG).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::{ProviderKind, RunArgs};
use crate::controller::server::{Health, router};
use crate::controller::{Context, Metrics, error_policy, reconcile_room};
use crate::crd::ChatRoom;
use crate::election::Election;
use crate::gateway::Gateway;
use crate::local_command::shutdown_signal;
use crate::one_shot::aws_provider;
use crate::providers::local::LocalProvider;
use crate::reconcile::Provider;

pub async fn run(args: RunArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: RunArgs) -> Result<(), String> {
    // One listener for SIGTERM/SIGINT that everything waits on: the controller, the election
    // and the local gateway all stop on the same signal, and none can miss it.
    let stopping = CancellationToken::new();
    tokio::spawn({
        let stopping = stopping.clone();
        async move {
            shutdown_signal().await;
            stopping.cancel();
        }
    });

    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (in-cluster config or KUBECONFIG): {e}"))?;
    let (provider, gateway_task) = match args.provider {
        ProviderKind::Aws => (
            aws_provider(&args.aws, args.aws.handler_zip.as_deref()).await?,
            None,
        ),
        ProviderKind::Local => {
            let listener = TcpListener::bind(args.gateway_listen)
                .await
                .map_err(|e| format!("--gateway-listen {}: {e}", args.gateway_listen))?;
            let base_url = args
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", args.gateway_listen));
            let gateway = Gateway::new(&base_url, args.limits.limits());
            let serving = gateway.clone();
            let stopped = stopping.clone().cancelled_owned();
            let task = tokio::spawn(async move {
                if let Err(error) = serving.serve(listener, stopped).await {
                    tracing::error!(%error, "the local gateway stopped");
                }
            });
            (Provider::Local(LocalProvider::new(gateway)), Some(task))
        }
    };

    let metrics = Metrics::default();
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let listener = TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| format!("--metrics-addr {}: {e}", args.metrics_addr))?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(health)).await {
            tracing::error!(%error, "the metrics server stopped");
        }
    });

    let reporter = Reporter {
        controller: "chatroom-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let context = Arc::new(Context::new(
        client.clone(),
        provider,
        recorder,
        metrics,
        args.resync,
    ));
    let lease_client = client.clone();
    let rooms: Api<ChatRoom> = match &args.watch_namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    };

    // A standby is ready too: with leader election a rolling update starts the new pod while
    // the old one leads, and a standby that is never ready would stall the rollout forever.
    ready.store(true, Ordering::Release);
    let mut election = None;
    if args.leader_elect {
        let namespace = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| lease_client.default_namespace().to_owned());
        let mut competing = Election::start(lease_client, &namespace, args.lease_duration).await?;
        tokio::select! {
            won = competing.won() => won?,
            () = stopping.cancelled() => {
                competing.release().await;
                return Ok(());
            }
        }
        election = Some(competing);
    }
    context.metrics.set_leader(true);

    // On SIGTERM or a lost lease: take no new work, let in-flight reconciles finish in time.
    let lost = election.as_ref().map(Election::lost);
    let stop = {
        let stopping = stopping.clone();
        async move {
            match lost {
                Some(lost) => tokio::select! {
                    () = stopping.cancelled() => {}
                    () = lost => {}
                },
                None => stopping.cancelled().await,
            }
        }
    }
    .shared();
    tracing::info!(provider = ?args.provider, namespace = args.watch_namespace.as_deref().unwrap_or("(all)"), "controller started");
    let controller = Controller::new(rooms, watcher::Config::default().any_semantic())
        .with_config(ControllerConfig::default().concurrency(args.max_concurrent_reconciles))
        .graceful_shutdown_on(stop.clone())
        .run(reconcile_room, error_policy, context.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile ended with an error");
            }
        });
    let deadline = async {
        stop.await;
        tokio::time::sleep(args.shutdown_timeout).await;
    };
    tokio::select! {
        () = controller => {}
        () = deadline => tracing::warn!(bound = ?args.shutdown_timeout, "in-flight reconciles did not finish in time; exiting"),
    }
    tracing::info!("controller stopped");
    context.metrics.set_leader(false);
    ready.store(false, Ordering::Release);
    if let Some(task) = gateway_task {
        // Also after a lost lease, when no signal came. Its clients get their close frames
        // (1001) and `$disconnect` runs, within the gateway's own bound.
        stopping.cancel();
        let _ = task.await;
    }
    let Some(election) = election else {
        return Ok(());
    };
    let still_leading = election.leads();
    election.release().await;
    if still_leading {
        Ok(())
    } else {
        Err("lost the leader lease; exiting so that a new leader takes over".into())
    }
}
