//! The embedded, API-Gateway-compatible WebSocket gateway: the `local` provider's engine.
//!
//! Clients and back ends reach it on two listeners, as on AWS they reach two endpoints:
//! - the **clients' listener** serves each room at `ws://HOST:PORT/{namespace}/{name}/{stage}`
//!   (and its chat page, and the list of rooms when asked for), with API Gateway's route
//!   selection, `$connect` / `$disconnect` / `$default` semantics, event shape, quotas and
//!   throttling;
//! - the **management listener** serves `@connections` at
//!   `…/{namespace}/{name}/{stage}/@connections/{connectionId}`, checking SigV4 when keys are
//!   configured. It is never reachable through the clients' port.
//!
//! What a route invokes is an [`Integration`]; the gateway knows nothing of chat.

mod budget;
mod connection;
mod events;
mod handshake;
mod http_server;
mod ids;
mod limits;
mod management;
mod outbound;
mod public_url;
mod registry;
mod room;
mod sigv4;
mod throttle;
mod upgrade;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use budget::{CONNECTION_RESERVE_BYTES, MemoryBudget};
use http_server::HttpServer;
pub use limits::{InvalidLimit, Limits, MAX_DURATION};
pub use outbound::Outgoing;
pub use public_url::{InvalidPublicUrl, PublicUrl};
pub use registry::{CloseRequest, ConnectionRegistry};
pub use room::{BoxError, Integration, Invocation, Room, RoomKey};
pub use sigv4::ManagementKeys;
pub use throttle::{Throttle, stage_throttle};

/// How long shutdown waits for connections to finish their close handshake and `$disconnect`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Who may call the management API.
#[derive(Clone, Debug)]
pub enum ManagementAuth {
    /// Any request, signed or not, as local AWS emulators take any credentials: for a
    /// management listener only this machine can reach.
    Anyone,
    /// Only requests signed (SigV4) with these keys.
    SigV4(ManagementKeys),
}

/// Everything a gateway is made with.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Where clients reach the gateway; room URLs hang off it.
    pub public_url: PublicUrl,
    /// Where back ends reach the management API; callback URLs hang off it.
    pub management_url: PublicUrl,
    pub limits: Limits,
    pub management_auth: ManagementAuth,
    /// Whether `GET /` on the clients' listener lists every room.
    pub room_index: bool,
}

impl GatewayConfig {
    /// A gateway on this machine: the room list on, any management caller accepted.
    pub fn local(public_url: PublicUrl, management_url: PublicUrl, limits: Limits) -> Self {
        Self {
            public_url,
            management_url,
            limits,
            management_auth: ManagementAuth::Anyone,
            room_index: true,
        }
    }
}

#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

struct Shared {
    rooms: RwLock<HashMap<RoomKey, Arc<Room>>>,
    connections: Arc<ConnectionRegistry>,
    config: GatewayConfig,
    budget: Arc<MemoryBudget>,
    /// The account-level throttle every message and `$connect` passes.
    account_throttle: Throttle,
    /// New connections per second across the gateway.
    new_connections: Throttle,
    /// Every connection's lifecycle, so shutdown can wait for their `$disconnect`.
    connection_tasks: TaskTracker,
    shutting_down: AtomicBool,
    /// Connections of either listener that have not sent a request head yet.
    pending_heads: Arc<http_server::PendingHeads>,
    /// Closes the connection holding the most unread bytes (fairness when full).
    shed: http_server::Shed,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Self {
        let limits = &config.limits;
        let rate = limits.new_connections_per_second;
        let budget = MemoryBudget::new(limits.memory_budget_bytes);
        let pending_heads = http_server::PendingHeads::new(&budget);
        let connections = Arc::new(ConnectionRegistry::new(budget.clone()));
        let shedding = connections.clone();
        Self {
            shared: Arc::new(Shared {
                rooms: RwLock::default(),
                shed: Arc::new(move || shedding.shed_largest_backlog()),
                connections,
                budget,
                account_throttle: Throttle::new(
                    limits.account_rate_limit,
                    limits.account_burst_limit,
                ),
                new_connections: Throttle::new(f64::from(rate), rate),
                config,
                connection_tasks: TaskTracker::new(),
                shutting_down: AtomicBool::new(false),
                pending_heads,
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.config.limits
    }

    pub fn connections(&self) -> &Arc<ConnectionRegistry> {
        &self.shared.connections
    }

    /// A connection's reserve, shedding what the policy allows when the budget is spent.
    pub async fn reserve_shedding(&self) -> Option<budget::Reserve> {
        let shared = &self.shared;
        http_server::reserve_shedding(&shared.budget, &shared.pending_heads, &shared.shed).await
    }

    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.shared.budget
    }

    fn account_throttle(&self) -> &Throttle {
        &self.shared.account_throttle
    }

    pub fn websocket_url(&self, key: &RoomKey) -> String {
        format!("{}/{key}", self.shared.config.public_url.websocket_base())
    }

    /// The room's `@connections` URL, on the management listener.
    pub fn callback_url(&self, key: &RoomKey) -> String {
        format!(
            "{}/{key}/@connections",
            self.shared.config.management_url.http_base()
        )
    }

    /// The authority events carry as `requestContext.domainName`.
    fn domain_name(&self) -> &str {
        self.shared.config.public_url.authority()
    }

    /// Serves `room`, replacing a room at the same key; open connections keep the room they
    /// connected to until they close.
    pub fn upsert_room(&self, room: Room) {
        let mut rooms = self
            .shared
            .rooms
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        rooms.insert(RoomKey::clone(&room.key), Arc::new(room));
    }

    /// Stops serving a room and closes its connections with 1001, as deleting a stage does.
    pub fn remove_room(&self, key: &RoomKey) -> bool {
        let removed = {
            let mut rooms = self
                .shared
                .rooms
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            rooms.remove(key).is_some()
        };
        self.shared
            .connections
            .close_room(key, &CloseRequest::GOING_AWAY);
        removed
    }

    pub fn room(&self, key: &RoomKey) -> Option<Arc<Room>> {
        let rooms = self
            .shared
            .rooms
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        rooms.get(key).cloned()
    }

    pub fn room_keys(&self) -> Vec<RoomKey> {
        let rooms = self
            .shared
            .rooms
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<RoomKey> = rooms.keys().cloned().collect();
        keys.sort();
        keys
    }

    fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::Acquire)
    }

    /// What the clients' listener serves: the rooms, their chat pages, and (when on) the list
    /// of rooms. No `@connections`.
    pub fn client_router(&self) -> Router {
        let router =
            Router::new().route("/{namespace}/{name}/{stage}", get(upgrade::room_endpoint));
        let router = if self.shared.config.room_index {
            router.route("/", get(upgrade::index))
        } else {
            router
        };
        router.with_state(self.clone())
    }

    /// What the management listener serves: `@connections`, behind its authentication.
    pub fn management_router(&self) -> Router {
        management::router(self.clone())
    }

    fn server(&self, router: Router) -> HttpServer {
        HttpServer {
            router,
            header_timeout: self.limits().header_timeout,
            budget: self.shared.budget.clone(),
            shed: self.shared.shed.clone(),
            heads: self.shared.pending_heads.clone(),
        }
    }

    /// Serves clients on `clients` and the management API on `management` until `shutdown`
    /// completes; then stops accepting, closes every connection with 1001, waits (for a
    /// bounded time) for their `$disconnect`, and returns.
    pub async fn serve(
        &self,
        clients: TcpListener,
        management: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let stop = CancellationToken::new();
        let servers = [
            tokio::spawn(
                self.server(self.client_router())
                    .serve(clients, stop.clone()),
            ),
            tokio::spawn(
                self.server(self.management_router())
                    .serve(management, stop.clone()),
            ),
        ];
        shutdown.await;
        // Upgrades still under way find the flag set and close at once.
        self.shared.shutting_down.store(true, Ordering::Release);
        stop.cancel();
        for server in servers {
            let _ = server.await;
        }
        self.close_everything().await;
    }

    async fn close_everything(&self) {
        tracing::info!(
            open = self.shared.connections.len(),
            "closing every connection with 1001"
        );
        self.shared.connections.close_all(&CloseRequest::GOING_AWAY);
        self.shared.connection_tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.shared.connection_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.shared.connections.len(),
                "some connections did not finish closing in time"
            );
        }
    }
}
