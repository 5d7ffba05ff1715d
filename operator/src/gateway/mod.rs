//! The embedded, API-Gateway-compatible WebSocket gateway: the `local` provider's engine.
//!
//! Each room is served at `ws://HOST:PORT/{namespace}/{name}/{stage}` with its management API
//! at `…/{stage}/@connections/{connectionId}`, with API Gateway's route selection, `$connect` /
//! `$disconnect` / `$default` semantics, event shape and limits. What a route invokes is an
//! [`Integration`]; the gateway knows nothing of chat.

mod connection;
mod events;
mod ids;
mod limits;
mod management;
mod outbound;
mod public_url;
mod registry;
mod room;
mod upgrade;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

pub use limits::Limits;
pub use public_url::{InvalidPublicUrl, PublicUrl};
pub use registry::{CloseRequest, ConnectionRegistry, data_frame};
pub use room::{BoxError, Integration, Invocation, Room, RoomKey};

/// How long shutdown waits for connections to finish their close handshake and `$disconnect`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

struct Shared {
    rooms: RwLock<HashMap<RoomKey, Arc<Room>>>,
    connections: Arc<ConnectionRegistry>,
    limits: Limits,
    /// Where clients reach the gateway; room URLs hang off it.
    public_url: PublicUrl,
    /// Every connection's lifecycle, so shutdown can wait for their `$disconnect`.
    connection_tasks: TaskTracker,
    shutting_down: AtomicBool,
}

impl Gateway {
    /// A gateway whose room URLs start with `public_url`.
    pub fn new(public_url: PublicUrl, limits: Limits) -> Self {
        Self {
            shared: Arc::new(Shared {
                rooms: RwLock::default(),
                connections: Arc::default(),
                limits,
                public_url,
                connection_tasks: TaskTracker::new(),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    pub fn connections(&self) -> &Arc<ConnectionRegistry> {
        &self.shared.connections
    }

    pub fn websocket_url(&self, key: &RoomKey) -> String {
        format!("{}/{key}", self.shared.public_url.websocket_base())
    }

    pub fn callback_url(&self, key: &RoomKey) -> String {
        format!("{}/{key}/@connections", self.shared.public_url.http_base())
    }

    /// The authority events carry as `requestContext.domainName`.
    fn domain_name(&self) -> &str {
        self.shared.public_url.authority()
    }

    /// Serves `room`, replacing a room at the same key; open connections keep the room they
    /// connected to until they close.
    pub fn upsert_room(&self, room: Room) {
        let mut rooms = self
            .shared
            .rooms
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        rooms.insert(room.key.clone(), Arc::new(room));
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

    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(upgrade::index))
            .route("/{namespace}/{name}/{stage}", get(upgrade::room_endpoint))
            .route(
                "/{namespace}/{name}/{stage}/@connections/{connection_id}",
                get(management::get_connection)
                    .post(management::post_to_connection)
                    .delete(management::delete_connection),
            )
            .with_state(self.clone())
    }

    /// Serves until `shutdown` completes, then closes every connection with 1001, waits (for a
    /// bounded time) for their `$disconnect`, and returns.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let gateway = self.clone();
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                gateway.close_everything().await;
            })
            .await
    }

    async fn close_everything(&self) {
        tracing::info!(
            open = self.shared.connections.len(),
            "closing every connection with 1001"
        );
        self.shared.shutting_down.store(true, Ordering::Release);
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
