//! `chatroom-operator run`: the controller in a cluster (in-cluster config or KUBECONFIG).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{ProviderKind, RunArgs};
use crate::controller::server::{Health, router};
use crate::controller::{Context, Metrics, error_policy, reconcile_room};
use crate::crd::ChatRoom;
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
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (in-cluster config or KUBECONFIG): {e}"))?;
    let provider = match args.provider {
        ProviderKind::Aws => aws_provider(&args.aws, args.aws.handler_zip.as_deref()).await?,
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
            tokio::spawn(async move {
                if let Err(error) = serving.serve(listener, shutdown_signal()).await {
                    tracing::error!(%error, "the local gateway stopped");
                }
            });
            Provider::Local(LocalProvider::new(gateway))
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

    let lost_lease = if args.leader_elect {
        let namespace = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| lease_client.default_namespace().to_owned());
        Some(lead(lease_client, &namespace).await?)
    } else {
        None
    };
    let stop = stop_on_signal_or(lost_lease.clone());

    ready.store(true, Ordering::Release);
    tracing::info!(provider = ?args.provider, namespace = args.watch_namespace.as_deref().unwrap_or("(all)"), "controller started");
    let controller = Controller::new(rooms, watcher::Config::default().any_semantic())
        .with_config(ControllerConfig::default().concurrency(args.max_concurrent_reconciles))
        // On SIGTERM (or a lost lease): take no new work, let in-flight reconciles finish.
        .graceful_shutdown_on(stop)
        .run(reconcile_room, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile ended with an error");
            }
        });
    // In-flight reconciles get SHUTDOWN_BOUND after the signal; then the process exits anyway.
    let deadline = async {
        shutdown_signal().await;
        tokio::time::sleep(SHUTDOWN_BOUND).await;
    };
    tokio::select! {
        () = controller => {}
        () = deadline => tracing::warn!(bound = ?SHUTDOWN_BOUND, "in-flight reconciles did not finish in time; exiting"),
    }
    tracing::info!("controller stopped");
    ready.store(false, Ordering::Release);
    match lost_lease {
        Some(leading) if !*leading.borrow() => {
            Err("lost the leader lease; exiting so that a new leader takes over".into())
        }
        _ => Ok(()),
    }
}

const LEASE: &str = "chatroom-operator";
/// How long in-flight reconciles may run after SIGTERM (Kubernetes' default grace is 30 s).
const SHUTDOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(25);

/// Blocks until this replica holds the Lease; the receiver then tells whether it still does.
async fn lead(client: Client, namespace: &str) -> Result<watch::Receiver<bool>, String> {
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("chatroom-operator-{}", std::process::id()));
    let manager = LeaseManagerBuilder::new(client, LEASE)
        .with_namespace(namespace)
        .with_identity(&identity)
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .build()
        .await
        .map_err(|e| format!("leader election: {e}"))?;
    let (mut leading, _task) = manager.watch().await;
    tracing::info!(%identity, %namespace, "waiting for the leader lease");
    while !*leading.borrow_and_update() {
        leading
            .changed()
            .await
            .map_err(|e| format!("leader election stopped: {e}"))?;
    }
    tracing::info!(%identity, "leading");
    Ok(leading)
}

/// Completes on SIGTERM/SIGINT or, when electing, when the lease is lost.
async fn stop_on_signal_or(leading: Option<watch::Receiver<bool>>) {
    let lost = async move {
        let Some(mut leading) = leading else {
            return std::future::pending().await;
        };
        while *leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                break;
            }
        }
        tracing::warn!("lost the leader lease");
    };
    tokio::select! {
        () = shutdown_signal() => {}
        () = lost => {}
    }
}
