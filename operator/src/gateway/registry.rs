use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use super::budget::{Charge, MemoryBudget};
use super::outbound::{Outbound, Outgoing, TrySendError};
use super::room::RoomKey;

/// Why the gateway ends a connection, as the close frame it sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseRequest {
    pub code: u16,
    pub reason: &'static str,
    /// Whether the frames already queued go out first (within the close grace): a backend's
    /// posts that were answered 200 before its DELETE, or messages before a shutdown. A
    /// client closed for not reading gets none of its backlog.
    pub flush_first: bool,
}

impl CloseRequest {
    pub const NORMAL: Self = Self {
        code: 1000,
        reason: "Connection deleted",
        flush_first: true,
    };
    pub const GOING_AWAY: Self = Self {
        code: 1001,
        reason: "Going away",
        flush_first: true,
    };
    pub const IDLE: Self = Self {
        code: 1001,
        reason: "Idle timeout",
        flush_first: true,
    };
    pub const MAX_DURATION: Self = Self {
        code: 1001,
        reason: "Maximum connection duration reached",
        flush_first: true,
    };
    pub const TOO_SLOW: Self = Self {
        code: 1008,
        reason: "Outbound queue full: client is not reading",
        flush_first: false,
    };
    /// The gateway's memory budget is spent and a newcomer waits: the connection holding the
    /// most unread bytes goes first (docs/architecture.md, "Fair when full").
    pub const SHED: Self = Self {
        code: 1008,
        reason: "Memory budget reached: the client holding the most unread bytes is closed",
        flush_first: false,
    };
    pub const TOO_BIG: Self = Self {
        code: 1009,
        reason: "Message too big",
        flush_first: true,
    };
    pub const UNSUPPORTED: Self = Self {
        code: 1003,
        reason: "Binary frames are not supported",
        flush_first: true,
    };

    /// RFC 6455 7.4.1: the frame broke the protocol (reserved bits or opcodes, an unmasked or
    /// oversized control frame, a continuation out of place).
    pub const PROTOCOL_ERROR: Self = Self {
        code: 1002,
        reason: "Protocol error",
        flush_first: false,
    };
    /// RFC 6455 7.4.1: a text message that is not UTF-8.
    pub const INVALID_TEXT: Self = Self {
        code: 1007,
        reason: "Invalid UTF-8 in a text message",
        flush_first: false,
    };

    pub fn frame(&self) -> CloseFrame {
        CloseFrame {
            code: CloseCode::from(self.code),
            reason: self.reason.into(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum PostError {
    /// Unknown id, a connection of another room, or one already closing.
    Gone,
}

/// The gateway's side of one open connection: what the management API and senders reach.
pub struct ConnectionHandle {
    pub id: String,
    pub room: Arc<RoomKey>,
    pub connected_at: DateTime<Utc>,
    pub source_ip: String,
    /// Shared with the connection's session: a long one is kept once.
    pub user_agent: Option<Arc<str>>,
    last_active_ms: AtomicI64,
    outbound: Outbound,
    close: watch::Sender<Option<CloseRequest>>,
    /// Set with the first close request: every post checks it, and a watch's lock is more
    /// than a post should pay.
    closing: AtomicBool,
}

impl ConnectionHandle {
    pub fn new(
        id: String,
        room: Arc<RoomKey>,
        connected_at: DateTime<Utc>,
        source_ip: String,
        user_agent: Option<Arc<str>>,
        outbound: Outbound,
    ) -> (Self, watch::Receiver<Option<CloseRequest>>) {
        let (close, close_requested) = watch::channel(None);
        let handle = Self {
            id,
            room,
            last_active_ms: AtomicI64::new(connected_at.timestamp_millis()),
            connected_at,
            source_ip,
            user_agent,
            outbound,
            close,
            closing: AtomicBool::new(false),
        };
        (handle, close_requested)
    }

    /// Queues a frame for the client without waiting. A full queue means the client stopped
    /// reading: it is closed, and the frame is not sent.
    pub fn send(&self, frame: Outgoing) -> Result<(), PostError> {
        if self.is_closing() {
            return Err(PostError::Gone);
        }
        self.queued(self.outbound.try_send(frame))
    }

    /// [`send`](Self::send) of a frame whose payload other connections' queues share, counted
    /// in the budget once by `charge`.
    pub fn send_shared(&self, frame: Outgoing, charge: &Arc<Charge>) -> Result<(), PostError> {
        if self.is_closing() {
            return Err(PostError::Gone);
        }
        self.queued(self.outbound.try_send_shared(frame, charge))
    }

    /// The bytes waiting for the client to read them.
    pub fn unread_bytes(&self) -> usize {
        self.outbound.queued_bytes()
    }

    fn queued(&self, sent: Result<(), TrySendError>) -> Result<(), PostError> {
        match sent {
            Ok(()) => Ok(()),
            Err(TrySendError::Full) => {
                tracing::warn!(connection_id = %self.id, "closing a client that is not reading");
                self.request_close(CloseRequest::TOO_SLOW);
                Err(PostError::Gone)
            }
            Err(TrySendError::Closed) => Err(PostError::Gone),
        }
    }

    /// Asks the connection to close; the first request decides the close code.
    pub fn request_close(&self, request: CloseRequest) {
        self.closing.store(true, Ordering::Release);
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(request);
                true
            } else {
                false
            }
        });
    }

    /// A close was requested: to the management API the connection is already gone.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub fn touch(&self, at: DateTime<Utc>) {
        self.last_active_ms
            .store(at.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn last_active(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last_active_ms.load(Ordering::Relaxed))
            .unwrap_or(self.connected_at)
    }
}

/// Connection ids are the gateway's own random strings, and only the gateway inserts them, so
/// a fast unkeyed hash is safe here (no caller can choose keys that collide); a broadcast
/// looks up every recipient.
type Ids = HashMap<String, Arc<ConnectionHandle>, foldhash::fast::RandomState>;

/// A connection holding less unread than one frame is keeping up well enough not to be shed.
pub const SHED_ABOVE_BYTES: usize = 32 * 1024;

/// Every open connection of the gateway, by id.
pub struct ConnectionRegistry {
    connections: RwLock<Ids>,
    /// Where a broadcast's one buffer is counted.
    budget: Arc<MemoryBudget>,
}

impl ConnectionRegistry {
    pub fn new(budget: Arc<MemoryBudget>) -> Self {
        Self {
            connections: RwLock::default(),
            budget,
        }
    }

    pub fn insert(&self, handle: Arc<ConnectionHandle>) {
        self.write().insert(handle.id.clone(), handle);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<ConnectionHandle>> {
        self.write().remove(id)
    }

    /// The open connection `id` of `room`. Ids of other rooms are as unknown here as on AWS,
    /// where each API has its own `@connections`; a closing connection is already gone.
    pub fn get(&self, room: &RoomKey, id: &str) -> Option<Arc<ConnectionHandle>> {
        self.read()
            .get(id)
            .filter(|handle| *handle.room == *room && !handle.is_closing())
            .cloned()
    }

    pub fn post(&self, room: &RoomKey, id: &str, frame: Outgoing) -> Result<(), PostError> {
        self.get(room, id).ok_or(PostError::Gone)?.send(frame)
    }

    /// [`post`](Self::post) of one frame to each of `ids`, under one look at the registry: a
    /// broadcast to a thousand connections takes the lock once, not a thousand times. The
    /// frame's payload is one buffer, counted in the budget once while any queue holds it.
    pub fn post_all<'a>(
        &self,
        room: &Arc<RoomKey>,
        ids: impl Iterator<Item = &'a str>,
        frame: &Outgoing,
    ) -> Vec<Result<(), PostError>> {
        let charge = Arc::new(self.budget.charge(frame.payload_len()));
        let connections = self.read();
        ids.map(|id| {
            connections
                .get(id)
                .filter(|handle| Arc::ptr_eq(&handle.room, room) || handle.room == *room)
                .ok_or(PostError::Gone)
                .and_then(|handle| handle.send_shared(frame.clone(), &charge))
        })
        .collect()
    }

    /// Closes the open connection holding the most unread bytes, when it holds at least
    /// [`SHED_ABOVE_BYTES`]; true when one was closed. Scans every connection: it runs only
    /// when the budget is spent and someone new is waiting.
    pub fn shed_largest_backlog(&self) -> bool {
        let largest = self
            .read()
            .values()
            .filter(|handle| !handle.is_closing())
            .map(|handle| (handle.unread_bytes(), handle.clone()))
            .max_by_key(|(unread, _)| *unread);
        match largest {
            Some((unread, handle)) if unread >= SHED_ABOVE_BYTES => {
                tracing::warn!(connection_id = %handle.id, unread, "shedding the client with the most unread bytes to admit a newcomer");
                handle.request_close(CloseRequest::SHED);
                true
            }
            _ => false,
        }
    }

    pub fn close_all(&self, request: &CloseRequest) {
        for handle in self.read().values() {
            handle.request_close(request.clone());
        }
    }

    pub fn close_room(&self, room: &RoomKey, request: &CloseRequest) {
        for handle in self.read().values().filter(|h| *h.room == *room) {
            handle.request_close(request.clone());
        }
    }

    /// The ids of `room`'s open connections: what a backend learns from its `$connect`
    /// events, for the gateway's own tests and tools.
    pub fn ids_in(&self, room: &RoomKey) -> Vec<String> {
        let mut ids: Vec<String> = self
            .read()
            .values()
            .filter(|handle| *handle.room == *room && !handle.is_closing())
            .map(|handle| handle.id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ids> {
        // Critical sections are single map operations; a panic cannot leave the map half-done.
        self.connections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ids> {
        self.connections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
