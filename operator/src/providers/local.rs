//! The `local` provider: rooms served by the embedded gateway, running the `handlers` chat
//! logic in-process over an in-memory connection store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use chatroom_handlers::auth::{HttpsKeySource, NoHttpsClient, Verifier};
use chatroom_handlers::backend::{AddressPolicy, BackendLink, HttpBackend, NoBackendClient};
use chatroom_handlers::contract::routes;
use chatroom_handlers::{
    ApiGatewayWebsocketProxyRequest, Chat, ChatConfig, InvalidExpression, MAX_HISTORY_MESSAGES,
    MemoryHistory, MemoryStore, Recipient, RouteSelectionExpression, SendError, Sender,
};

use crate::crd::{ChatRoom, ChatRoomSpec};
use crate::gateway::{
    BoxError, ConnectionRegistry, Gateway, Integration, Invocation, Outgoing, Room, RoomKey,
    stage_throttle,
};
use crate::report::{Failure, Outputs, Report, Verdict};
use crate::secrets::SecretSource;
use chatroom_handlers::fnv::fnv1a;

type LocalChat = Chat<Arc<MemoryStore>, GatewaySender, Arc<MemoryHistory>>;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("spec.routeSelectionExpression: {0}")]
    RouteSelection(#[from] InvalidExpression),
    #[error("spec.auth.jwt.identitySource: {0:?} is not querystring.<name> or header.<name>")]
    IdentitySource(String),
    #[error("spec.auth.jwt: {0}")]
    NoHttpsClient(#[from] NoHttpsClient),
    #[error("spec.backend.url: {0}")]
    NoBackendClient(#[from] NoBackendClient),
}

/// Serves ChatRooms on one gateway.
#[derive(Clone)]
pub struct LocalProvider {
    gateway: Gateway,
    served: Arc<Mutex<HashMap<(String, String), ServedRoom>>>,
    /// One HTTPS client for every room's key sets, made when the first room with auth comes.
    key_source: Arc<OnceLock<HttpsKeySource>>,
    /// Where rooms' backend keys come from.
    secrets: SecretSource,
    /// Which addresses rooms' backends may be at.
    backend_addresses: AddressPolicy,
}

struct ServedRoom {
    key: RoomKey,
    spec: ChatRoomSpec,
    /// Kept across spec changes at the same URL, so connected clients stay in the room.
    store: Arc<MemoryStore>,
    /// Kept likewise: sized for the most any spec may ask (and bounded in bytes), so that a
    /// changed `spec.history` only changes how much of it is answered.
    history: Arc<MemoryHistory>,
    /// The backend's key as it was served: a rotated Secret re-serves an unchanged spec.
    backend_key: Option<Vec<u8>>,
}

impl LocalProvider {
    pub fn new(gateway: Gateway) -> Self {
        Self {
            gateway,
            served: Arc::default(),
            key_source: Arc::default(),
            secrets: SecretSource::Unavailable,
            backend_addresses: AddressPolicy::Any,
        }
    }

    /// Backends' keys come from `secrets`.
    #[must_use]
    pub fn with_secrets(mut self, secrets: SecretSource) -> Self {
        self.secrets = secrets;
        self
    }

    /// Backends may be only at addresses `policy` allows.
    #[must_use]
    pub fn with_backend_addresses(mut self, policy: AddressPolicy) -> Self {
        self.backend_addresses = policy;
        self
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Serves `room` as its spec says and reports where. Converging an unchanged room changes
    /// nothing; a new stage moves the room to its new URL.
    pub async fn converge(&self, room: &ChatRoom) -> Report {
        let backend_key = match self.secrets.backend_key(room).await {
            Ok(key) => key,
            Err(error) => return Report::failed(Failure::secret_unavailable(&error)),
        };
        match self.serve(room, backend_key) {
            Ok(key) => self.report(&key),
            // Validation refuses such a spec first; this is the provider's own second line.
            Err(error) => Report::failed(Failure::invalid_spec(error.to_string())),
        }
    }

    fn serve(&self, room: &ChatRoom, backend_key: Option<Vec<u8>>) -> Result<RoomKey, LocalError> {
        let (namespace, name) = room.identity();
        let spec = &room.spec;
        let key = RoomKey {
            namespace: namespace.clone(),
            name: name.clone(),
            stage: spec.stage.clone(),
        };
        let route_selection = RouteSelectionExpression::parse(&spec.route_selection_expression)?;

        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = served.remove(&(namespace.clone(), name.clone()));
        let fresh = || {
            (
                Arc::default(),
                Arc::new(MemoryHistory::new(MAX_HISTORY_MESSAGES)),
            )
        };
        let (store, history) = match previous {
            Some(same) if same.spec == *spec && same.backend_key == backend_key => {
                served.insert((namespace, name), same);
                return Ok(key);
            }
            Some(moved) if moved.key != key => {
                self.gateway.remove_room(&moved.key);
                fresh()
            }
            Some(reconfigured) => (reconfigured.store, reconfigured.history),
            None => fresh(),
        };

        let authorizer = match spec.auth.as_ref().map(|auth| &auth.jwt) {
            None => None,
            Some(jwt) => {
                let settings = jwt
                    .settings()
                    .ok_or_else(|| LocalError::IdentitySource(jwt.identity_source.clone()))?;
                Some(Arc::new(Verifier::new(settings, self.key_source()?)))
            }
        };
        let backend = self.backend_link(spec, backend_key.clone())?;
        let shared_key = Arc::new(key.clone());
        let (chat, routes) = self.chat(
            &shared_key,
            spec,
            route_selection.clone(),
            &store,
            &history,
            backend,
        );
        self.gateway.upsert_room(Room {
            key: shared_key,
            api_id: local_api_id(&namespace, &name),
            route_selection,
            routes,
            integration: Arc::new(ChatIntegration { chat }),
            throttle: spec
                .throttling
                .as_ref()
                .map(|t| stage_throttle(t.burst_limit, t.rate_limit)),
            broadcast_route: Some(spec.message_route.clone()),
            authorizer,
        });
        served.insert(
            (namespace, name),
            ServedRoom {
                key: key.clone(),
                spec: spec.clone(),
                store,
                history,
                backend_key,
            },
        );
        Ok(key)
    }

    fn backend_link(
        &self,
        spec: &ChatRoomSpec,
        key: Option<Vec<u8>>,
    ) -> Result<Option<BackendLink>, NoBackendClient> {
        let Some(backend) = &spec.backend else {
            return Ok(None);
        };
        let client =
            HttpBackend::new(&backend.url, key, backend.timeout(), self.backend_addresses)?;
        Ok(Some(BackendLink {
            forwarded: backend.forwarded(),
            backend: Arc::new(client),
        }))
    }

    fn key_source(&self) -> Result<HttpsKeySource, NoHttpsClient> {
        if let Some(source) = self.key_source.get() {
            return Ok(source.clone());
        }
        let made = HttpsKeySource::new()?;
        Ok(self.key_source.get_or_init(|| made).clone())
    }

    /// The room's chat over its store and history, and the routes it answers besides the
    /// predefined ones.
    fn chat(
        &self,
        key: &Arc<RoomKey>,
        spec: &ChatRoomSpec,
        route_selection: RouteSelectionExpression,
        store: &Arc<MemoryStore>,
        history: &Arc<MemoryHistory>,
        backend: Option<BackendLink>,
    ) -> (Arc<LocalChat>, Vec<String>) {
        let sender = GatewaySender {
            registry: self.gateway.connections().clone(),
            room: key.clone(),
        };
        let config = ChatConfig {
            message_route: spec.message_route.clone(),
            route_selection,
            names_from_authorizer: spec.auth.is_some(),
            channels: spec.channel_settings(),
            ..ChatConfig::default()
        };
        let mut routes = vec![spec.message_route.clone(), routes::WHO.to_owned()];
        if config.channels.is_some() {
            routes.extend([routes::SUBSCRIBE, routes::UNSUBSCRIBE].map(str::to_owned));
        }
        let kept = spec.history_settings().map(|settings| {
            routes.push(routes::HISTORY.to_owned());
            (history.clone(), settings)
        });
        if let Some(link) = &backend {
            routes.extend(link.forwarded.routes.iter().cloned());
        }
        let chat = Chat::with_history(store.clone(), sender, config, kept).with_backend(backend);
        (Arc::new(chat), routes)
    }

    /// Stops serving the room and closes its connections. Deleting a room that is not served
    /// is not an error.
    pub fn delete(&self, room: &ChatRoom) {
        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gone) = served.remove(&room.identity()) {
            self.gateway.remove_room(&gone.key);
        }
    }

    fn report(&self, key: &RoomKey) -> Report {
        let websocket_url = self.gateway.websocket_url(key);
        Report {
            outputs: Outputs {
                websocket_url: Some(websocket_url.clone()),
                callback_url: Some(self.gateway.callback_url(key)),
                api_id: Some(local_api_id(&key.namespace, &key.name)),
                stage: Some(key.stage.clone()),
                ..Outputs::default()
            },
            parts: Vec::new(),
            verdict: Verdict::Ready {
                reason: "Serving",
                message: format!("Serving on the local gateway at {websocket_url}"),
            },
            applied: Vec::new(),
        }
    }
}

/// Ten lowercase characters, like an API Gateway API id, stable for a namespace/name.
pub fn local_api_id(namespace: &str, name: &str) -> String {
    let mut hash = fnv1a(&format!("{namespace}/{name}"));
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..10)
        .map(|_| {
            let digit = DIGITS[(hash % 36) as usize];
            hash /= 36;
            char::from(digit)
        })
        .collect()
}

/// The chat as the room's integration, as its Lambda function is on AWS.
struct ChatIntegration {
    chat: Arc<LocalChat>,
}

impl Integration for ChatIntegration {
    fn invoke(&self, event: ApiGatewayWebsocketProxyRequest) -> Invocation {
        let chat = self.chat.clone();
        Box::pin(async move {
            chat.handle(&event)
                .await
                .map_err(|e| Box::new(e) as BoxError)
        })
    }
}

/// Posts straight into the gateway's connections, as `PostToConnection` does on AWS.
struct GatewaySender {
    registry: Arc<ConnectionRegistry>,
    room: Arc<RoomKey>,
}

impl Sender for GatewaySender {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), SendError> {
        self.registry
            .post(&self.room, connection_id, Outgoing::data(payload))
            .map_err(|_| SendError::Gone)
    }

    /// Queueing in memory never waits, so a broadcast queues for everyone in one pass.
    fn post_now(
        &self,
        recipients: &[Recipient],
        payload: &Bytes,
    ) -> Option<Vec<Result<(), SendError>>> {
        let frame = Outgoing::data(payload.clone());
        let ids = recipients.iter().map(|r| r.id.as_str());
        let posted = self.registry.post_all(&self.room, ids, &frame);
        Some(
            posted
                .into_iter()
                .map(|result| result.map_err(|_| SendError::Gone))
                .collect(),
        )
    }
}
