use std::future::Future;

use crate::channels::Subscription;

/// One open WebSocket connection as the chat remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The id API Gateway (or the local gateway) assigned; opaque and URL-safe.
    pub id: String,
    /// The `name` query parameter given at `$connect`, if any.
    pub display_name: Option<String>,
    /// Milliseconds since the Unix epoch, from `requestContext.connectedAt`.
    pub connected_at_ms: i64,
}

/// Every connection of a room, as one listing of its store found them: shared, so that a
/// store that keeps the listing (the in-process one, between joins and leaves) hands it out
/// without copying a thousand ids per message.
pub type Recipients = std::sync::Arc<[Recipient]>;

/// What a broadcast needs of a connection, and all that listing the store returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub id: String,
    pub display_name: Option<String>,
}

impl Recipient {
    /// A recipient known by its id alone: a page of a broadcast, or one who left unlisted.
    pub fn unnamed(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            display_name: None,
        }
    }

    /// How this connection signs its messages and shows in presence: its display name, else
    /// `guest-` and six hex digits derived from its id. Never the id itself: whoever holds an
    /// id can post to, inspect and disconnect that connection through `@connections`.
    pub fn sender_label(&self) -> String {
        match &self.display_name {
            Some(name) => name.clone(),
            None => anonymous_label(&self.id),
        }
    }
}

/// A stable label for a nameless connection (FNV-1a of its id, 24 bits).
pub fn anonymous_label(connection_id: &str) -> String {
    let hash = crate::fnv::fnv1a(connection_id);
    format!("guest-{:06x}", hash & 0x00ff_ffff)
}

#[derive(Debug, thiserror::Error)]
#[error("connection store could not {operation}: {source}")]
pub struct StoreError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            operation,
            source: source.into(),
        }
    }
}

/// Where a room keeps its open connections: DynamoDB on AWS, memory in the local gateway.
pub trait ConnectionStore: Send + Sync {
    fn put(&self, connection: Connection) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the connection and returns what it was, so that the room can say who left.
    /// Removing an id that is not stored is not an error (`None`): `$disconnect` and a 410
    /// from a broadcast can race to remove the same connection.
    fn remove(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Recipient>, StoreError>> + Send;

    /// Removes the connection only if it was made before `cutoff_ms` (epoch milliseconds);
    /// `true` when it was removed. A connection still inside its connect window stays.
    fn remove_if_connected_before(
        &self,
        connection_id: &str,
        cutoff_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The stored connection `connection_id`, if any: who sent a message to a room's backend.
    /// The default reads the whole listing; stores with a key lookup override it.
    fn get(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Recipient>, StoreError>> + Send {
        async move {
            let all = self.list().await?;
            Ok(all.iter().find(|r| r.id == connection_id).cloned())
        }
    }

    /// Every stored connection; implementations page through all of their storage.
    fn list(&self) -> impl Future<Output = Result<Recipients, StoreError>> + Send;

    /// Every connection, unless there are more than `most` (`None`): for what only a small
    /// room does, such as telling everyone of each arrival, without reading a large one whole.
    fn list_at_most(
        &self,
        most: usize,
    ) -> impl Future<Output = Result<Option<Recipients>, StoreError>> + Send {
        async move {
            let all = self.list().await?;
            Ok((all.len() <= most).then_some(all))
        }
    }

    /// Subscribes a stored connection to `channel`, unless it already holds `most` channels.
    /// Removing the connection removes its subscriptions.
    fn subscribe(
        &self,
        _connection_id: &str,
        _channel: &str,
        _most: usize,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send {
        async { Err(StoreError::new("subscribe", NO_CHANNELS)) }
    }

    /// `true` when the connection was subscribed.
    fn unsubscribe(
        &self,
        _connection_id: &str,
        _channel: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async { Err(StoreError::new("unsubscribe", NO_CHANNELS)) }
    }

    /// Every subscriber of `channel`.
    fn list_channel(
        &self,
        _channel: &str,
    ) -> impl Future<Output = Result<Recipients, StoreError>> + Send {
        async { Err(StoreError::new("list a channel", NO_CHANNELS)) }
    }
}

/// What a store that keeps no channels answers; the room sends no channel request to one.
const NO_CHANNELS: &str = "this store keeps no channels";

/// A store shared between a room's successive configurations keeps its connections across them.
impl<S: ConnectionStore> ConnectionStore for std::sync::Arc<S> {
    fn put(&self, connection: Connection) -> impl Future<Output = Result<(), StoreError>> + Send {
        S::put(self, connection)
    }

    fn remove(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Recipient>, StoreError>> + Send {
        S::remove(self, connection_id)
    }

    fn remove_if_connected_before(
        &self,
        connection_id: &str,
        cutoff_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        S::remove_if_connected_before(self, connection_id, cutoff_ms)
    }

    fn get(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Recipient>, StoreError>> + Send {
        S::get(self, connection_id)
    }

    fn list(&self) -> impl Future<Output = Result<Recipients, StoreError>> + Send {
        S::list(self)
    }

    fn list_at_most(
        &self,
        most: usize,
    ) -> impl Future<Output = Result<Option<Recipients>, StoreError>> + Send {
        S::list_at_most(self, most)
    }

    fn subscribe(
        &self,
        connection_id: &str,
        channel: &str,
        most: usize,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send {
        S::subscribe(self, connection_id, channel, most)
    }

    fn unsubscribe(
        &self,
        connection_id: &str,
        channel: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        S::unsubscribe(self, connection_id, channel)
    }

    fn list_channel(
        &self,
        channel: &str,
    ) -> impl Future<Output = Result<Recipients, StoreError>> + Send {
        S::list_channel(self, channel)
    }
}
