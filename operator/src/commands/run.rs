//! `chatroom-operator run`: the controller in a cluster (in-cluster config or KUBECONFIG).
//!
//! Start-up, in order: one SIGTERM listener, the Kubernetes client, the provider (and the
//! local gateway with `--provider local`), the metrics server, then leader election when
//! asked, and finally the controller until SIGTERM or a lost lease.

use crate::secrets::SecretSource;
use chatroom_handlers::backend::AddressPolicy;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::EXIT_BAD_INPUT;
use super::aws::{UnreadableZip, aws_provider};
use super::gateway::{BoundGateway, GatewayError, GatewayFlags, bind_gateway};
use super::signal::shutdown_signal;
use crate::cli::{ProviderKind, RunArgs};
use crate::controller::server::{Health, router};
use crate::controller::{Context, Metrics, error_policy, reconcile_room};
use crate::crd::ChatRoom;
use crate::election::{Election, ElectionError};
use crate::gateway::ManagementAuth;
use crate::providers::local::LocalProvider;
use crate::reconcile::Provider;

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot reach Kubernetes (in-cluster config or KUBECONFIG): {0}")]
    Kubernetes(#[source] kube::Error),
    #[error("{flag} {addr}: {source}")]
    Listen {
        flag: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    HandlerZip(#[from] UnreadableZip),
    #[error(transparent)]
    Election(#[from] ElectionError),
    #[error("lost the leader lease; exiting so that a new leader takes over")]
    LostLease,
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(
        "--provider local needs --management-access-key-id and --management-secret-access-key (MANAGEMENT_ACCESS_KEY_ID, MANAGEMENT_SECRET_ACCESS_KEY): without them anyone who reaches the management port can post to, inspect and disconnect every client; --insecure-management-api serves it unsigned anyway"
    )]
    NoManagementKeys,
}

impl RunError {
    /// Flags that can never work: exit 2, as for bad input files.
    fn is_bad_input(&self) -> bool {
        match self {
            Self::Gateway(error) => error.is_bad_input(),
            Self::NoManagementKeys => true,
            _ => false,
        }
    }
}

pub async fn run(args: RunArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            if error.is_bad_input() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn serve(args: RunArgs) -> Result<(), RunError> {
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

    let client = Client::try_default().await.map_err(RunError::Kubernetes)?;
    let (provider, gateway) = provider(&args, &client, &stopping).await?;
    let metrics = Metrics::default();
    let ready = serve_health(args.metrics_addr, &metrics).await?;
    let context = Arc::new(Context::new(
        client.clone(),
        provider,
        recorder(&client),
        metrics,
        args.resync,
    ));

    // A standby is ready too: with leader election a rolling update starts the new pod while
    // the old one leads, and a standby that is never ready would stall the rollout forever.
    ready.store(true, Ordering::Release);
    let election = match lead(&args, &client, &stopping).await? {
        Leadership::Stopped => return Ok(()),
        Leadership::Leading(election) => election,
    };
    context.metrics.set_leader(true);
    let stop = stop_signal(&stopping, election.as_ref());
    control(&args, client, context.clone(), stop).await;
    context.metrics.set_leader(false);
    ready.store(false, Ordering::Release);

    if let Some(gateway) = gateway {
        // Also after a lost lease, when no signal came. Its clients get their close frames
        // (1001) and `$disconnect` runs, within the gateway's own bound.
        stopping.cancel();
        let _ = gateway.await;
    }
    let Some(election) = election else {
        return Ok(());
    };
    let still_leading = election.leads();
    election.release().await;
    if still_leading {
        Ok(())
    } else {
        Err(RunError::LostLease)
    }
}

/// The provider; with `--provider local` also the gateway it serves rooms on, running until
/// `stopping`.
async fn provider(
    args: &RunArgs,
    client: &Client,
    stopping: &CancellationToken,
) -> Result<(Provider, Option<JoinHandle<()>>), RunError> {
    match args.provider {
        ProviderKind::Aws => {
            let secrets = SecretSource::Cluster(client.clone());
            let provider =
                aws_provider(&args.aws, args.aws.handler_zip.as_deref(), secrets).await?;
            Ok((provider, None))
        }
        ProviderKind::Local => {
            let auth = match (args.management.keys(), args.insecure_management_api) {
                (Some(keys), _) => ManagementAuth::SigV4(keys),
                (None, true) => ManagementAuth::Anyone,
                (None, false) => return Err(RunError::NoManagementKeys),
            };
            let BoundGateway {
                gateway,
                clients,
                management,
            } = bind_gateway(GatewayFlags {
                listen: args.gateway_listen,
                public_url: args.public_url.as_ref(),
                management_listen: args.management_listen,
                management: &args.management,
                limits: &args.limits,
                auth,
                room_index: args.room_index,
            })
            .await?;
            let serving = gateway.clone();
            let stopped = stopping.clone().cancelled_owned();
            let task = tokio::spawn(async move {
                serving.serve(clients, management, stopped).await;
            });
            let addresses = if args.backend_allow_internal_addresses {
                AddressPolicy::Any
            } else {
                AddressPolicy::PublicOnly
            };
            let local = LocalProvider::new(gateway)
                .with_secrets(SecretSource::Cluster(client.clone()))
                .with_backend_addresses(addresses);
            Ok((Provider::Local(local), Some(task)))
        }
    }
}

async fn bind(flag: &'static str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Listen { flag, addr, source })
}

/// Serves /metrics, /healthz and /readyz; the flag it returns makes /readyz answer 200.
async fn serve_health(addr: SocketAddr, metrics: &Metrics) -> Result<Arc<AtomicBool>, RunError> {
    let listener = bind("--metrics-addr", addr).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(health)).await {
            tracing::error!(%error, "the metrics server stopped");
        }
    });
    Ok(ready)
}

fn recorder(client: &Client) -> Recorder {
    let reporter = Reporter {
        controller: "chatroom-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    Recorder::new(client.clone(), reporter)
}

enum Leadership {
    /// This replica may reconcile: it holds the Lease, or runs without leader election.
    Leading(Option<Election>),
    /// SIGTERM came while standing by.
    Stopped,
}

/// Waits for the Lease when `--leader-elect` asks for it; a standby stops at once on SIGTERM.
async fn lead(
    args: &RunArgs,
    client: &Client,
    stopping: &CancellationToken,
) -> Result<Leadership, RunError> {
    if !args.leader_elect {
        return Ok(Leadership::Leading(None));
    }
    let namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let mut competing = Election::start(client.clone(), &namespace, args.lease_duration).await?;
    tokio::select! {
        won = competing.won() => won?,
        () = stopping.cancelled() => {
            competing.release().await;
            return Ok(Leadership::Stopped);
        }
    }
    Ok(Leadership::Leading(Some(competing)))
}

/// Completes on SIGTERM or when the lease is lost: the controller then takes no new work.
fn stop_signal(
    stopping: &CancellationToken,
    election: Option<&Election>,
) -> Shared<BoxFuture<'static, ()>> {
    let lost = election.map(Election::lost);
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
    .boxed()
    .shared()
}

/// Runs the controller until `stop`, then gives in-flight reconciles `--shutdown-timeout`.
async fn control(
    args: &RunArgs,
    client: Client,
    context: Arc<Context>,
    stop: Shared<BoxFuture<'static, ()>>,
) {
    let rooms: Api<ChatRoom> = match &args.watch_namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    };
    tracing::info!(provider = ?args.provider, namespace = args.watch_namespace.as_deref().unwrap_or("(all)"), "controller started");
    let controller = Controller::new(rooms, watcher::Config::default().any_semantic());
    context.watch(controller.store());
    let controller = controller
        .with_config(ControllerConfig::default().concurrency(args.max_concurrent_reconciles))
        .graceful_shutdown_on(stop.clone())
        .run(reconcile_room, error_policy, context)
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
}
