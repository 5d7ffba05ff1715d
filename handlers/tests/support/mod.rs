//! Test doubles for the chat's two ports.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chatroom_handlers::{
    ApiGatewayWebsocketProxyRequest, Chat, ChatConfig, ChatFrame, Connection, ConnectionStore,
    MemoryStore, Recipient, Recipients, SendError, Sender, StoreError,
};

/// "Now" for broadcasts in tests: every connection [`store_with`] makes is long settled.
pub const NOW_MS: i64 = 1_800_000_000_000;

/// A store holding a nameless connection for each id, and its listing sorted by id.
pub async fn store_with<I: AsRef<str>>(ids: &[I]) -> (MemoryStore, Vec<Recipient>) {
    let store = MemoryStore::new();
    for id in ids {
        let connection = Connection {
            id: id.as_ref().to_owned(),
            display_name: None,
            connected_at_ms: 1,
        };
        store.put(connection).await.unwrap();
    }
    let mut all = store.list().await.unwrap().to_vec();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    (store, all)
}

/// Records every post; answers Gone or fails for chosen ids; can hold each post a while.
#[derive(Default)]
pub struct RecordingSender {
    pub gone: HashSet<String>,
    pub failing: HashSet<String>,
    pub delay: Option<Duration>,
    posts: Mutex<Vec<(String, Bytes)>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl RecordingSender {
    pub fn answering_gone_for(ids: &[&str]) -> Self {
        Self {
            gone: ids.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    pub fn failing_for(ids: &[&str]) -> Self {
        Self {
            failing: ids.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    pub fn holding_each_post(delay: Duration) -> Self {
        Self {
            delay: Some(delay),
            ..Self::default()
        }
    }

    /// Forgets the posts so far, e.g. the presence frames of a test's set-up.
    pub fn clear(&self) {
        self.posts.lock().unwrap().clear();
    }

    pub fn raw_posts(&self) -> Vec<(String, Bytes)> {
        self.posts.lock().unwrap().clone()
    }

    pub fn posts(&self) -> Vec<(String, ChatFrame)> {
        self.raw_posts()
            .into_iter()
            .map(|(id, body)| (id, serde_json::from_slice(&body).expect("a chat frame")))
            .collect()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl Sender for RecordingSender {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), SendError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.gone.contains(connection_id) {
            return Err(SendError::Gone);
        }
        if self.failing.contains(connection_id) {
            return Err(SendError::Failed("500 Internal Server Error".into()));
        }
        self.posts
            .lock()
            .unwrap()
            .push((connection_id.to_owned(), payload));
        Ok(())
    }
}

/// A store whose every call fails, as a DynamoDB table would while throttled past retries.
pub struct FailingStore;

impl ConnectionStore for FailingStore {
    async fn put(&self, _: Connection) -> Result<(), StoreError> {
        Err(StoreError::new("put", "throttled"))
    }
    async fn remove(&self, _: &str) -> Result<Option<Recipient>, StoreError> {
        Err(StoreError::new("remove", "throttled"))
    }
    async fn remove_if_connected_before(&self, _: &str, _: i64) -> Result<bool, StoreError> {
        Err(StoreError::new("remove", "throttled"))
    }
    async fn list(&self) -> Result<Recipients, StoreError> {
        Err(StoreError::new("list", "throttled"))
    }
}

pub fn chat_with<S: ConnectionStore>(
    store: S,
    sender: RecordingSender,
) -> Chat<S, RecordingSender> {
    Chat::new(store, sender, ChatConfig::default())
}

/// An API Gateway WebSocket event as API Gateway sends it to the room's function.
pub fn event(
    route: &str,
    connection_id: &str,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some(route.into());
    event.request_context.connection_id = Some(connection_id.into());
    event.request_context.connected_at = 1_795_000_000_000;
    // 2026-11-25T08:00:00.123Z
    event.request_context.request_time_epoch = 1_795_593_600_123;
    event.body = body.map(str::to_owned);
    event
}

pub trait WithName {
    fn with_name(self, name: &str) -> Self;
}

impl WithName for ApiGatewayWebsocketProxyRequest {
    fn with_name(mut self, name: &str) -> Self {
        let query = [("name".to_owned(), vec![name.to_owned()])]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>();
        self.query_string_parameters = query.into();
        self
    }
}
