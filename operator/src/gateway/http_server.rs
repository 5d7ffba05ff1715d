//! The gateway's HTTP/1.1 server: one per listener (clients, management), with what
//! `axum::serve` does not bound.
//!
//! # Guarantees
//! - A client has `header_timeout` to send a whole request head, on a new connection and
//!   between keep-alive requests; a head over 16 KiB is refused. A connection that never
//!   finishes its request line is closed, so such connections cannot pile up.
//! - Each TCP connection takes a reserve of the memory budget before anything is read; past
//!   the budget it gets `503` and is closed, without costing a request's buffers.
//! - After `stop`, nothing new is accepted; connections still in an HTTP request get
//!   [`HTTP_SHUTDOWN_GRACE`] and are then dropped, whatever they are waiting for.
//! - An accept error (out of file descriptors) pauses accepting briefly instead of spinning
//!   or stopping the server.
//!
//! # Caveats
//! - Connections upgraded to WebSockets leave this server: the gateway closes those itself.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::budget::{CONNECTION_RESERVE_BYTES, MemoryBudget, Reserve};

/// How long connections still in an HTTP request may take to finish after shutdown begins.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// The most a request head may take: a browser's WebSocket handshake is about 1 KB.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// What each socket's kernel send buffer may hold, as `SO_SNDBUF` takes it: Linux doubles it
/// for its own bookkeeping, so a socket holds at most [`SOCKET_SEND_BUFFER_BYTES`].
const SEND_BUFFER_BYTES: usize = 32 * 1024;
/// The most the kernel holds for one client that does not read: counted while the
/// connection's writer waits on it (writer.rs).
pub const SOCKET_SEND_BUFFER_BYTES: usize = 2 * SEND_BUFFER_BYTES;
/// How long accepting pauses after an error such as running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long a connection that finds the budget spent waits for what was shed to come back
/// before it is answered 503: a closing client's queue goes within its close grace (2 s).
pub const ADMISSION_WAIT: Duration = Duration::from_millis(2_500);
const ADMISSION_POLL: Duration = Duration::from_millis(25);

/// Closes the open connection holding the most unread bytes, when one holds enough to be
/// worth it; true when it did.
pub type Shed = Arc<dyn Fn() -> bool + Send + Sync>;

/// A listener's router and bounds.
#[derive(Clone)]
pub struct HttpServer {
    pub router: Router,
    pub header_timeout: Duration,
    pub budget: Arc<MemoryBudget>,
    /// What the server may shed to admit a newcomer when the budget is spent.
    pub shed: Shed,
    pub heads: Arc<PendingHeads>,
}

/// Connections that have not yet sent a whole request head, oldest first. They may hold at
/// most an eighth of the budget: past it, the oldest is dropped to make room for the newest,
/// so connections that never speak cannot keep anyone out (a real client's head arrives in
/// milliseconds; the ones dropped have waited longest).
pub struct PendingHeads {
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
    next: AtomicU64,
    share: usize,
}

impl PendingHeads {
    pub fn new(budget: &MemoryBudget) -> Arc<Self> {
        Arc::new(Self {
            waiting: Mutex::default(),
            next: AtomicU64::new(0),
            share: (budget.limit() / 8 / CONNECTION_RESERVE_BYTES).max(1),
        })
    }

    /// Enters a new connection, dropping the oldest when the share is full.
    fn enter(&self) -> (u64, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut waiting = self.lock();
        while waiting.len() >= self.share {
            let Some((_, oldest)) = waiting.pop_first() else {
                break;
            };
            oldest.cancel();
        }
        waiting.insert(id, token.clone());
        (id, token)
    }

    /// Drops the oldest waiting connection; true when there was one.
    fn drop_oldest(&self) -> bool {
        let oldest = self.lock().pop_first();
        oldest.map(|(_, token)| token.cancel()).is_some()
    }

    fn leave(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpServer {
    /// Accepts connections until `stop`, then lets those still in a request finish within
    /// [`HTTP_SHUTDOWN_GRACE`].
    pub async fn serve(self, listener: TcpListener, stop: CancellationToken) {
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                Some(_) = connections.join_next() => continue,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; pausing");
                    sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            match self.budget.reserve() {
                Some(reserve) => {
                    connections.spawn(self.clone().connection(stream, peer, reserve, stop.clone()))
                }
                None => connections.spawn(self.clone().admit_when_room(stream, peer, stop.clone())),
            };
        }
        drop(listener);
        if timeout(HTTP_SHUTDOWN_GRACE, drain(&mut connections))
            .await
            .is_err()
        {
            tracing::info!(
                left = connections.len(),
                "dropping connections that did not finish a request"
            );
            connections.abort_all();
        }
    }

    /// The budget is spent: shed what the policy allows (the oldest connection still
    /// without a request head, else the open connection holding the most unread bytes) and
    /// wait a little for it to come back; 503 if it does not.
    async fn admit_when_room(self, stream: TcpStream, peer: SocketAddr, stop: CancellationToken) {
        match reserve_shedding(&self.budget, &self.heads, &self.shed).await {
            Some(reserve) => self.connection(stream, peer, reserve, stop).await,
            None => refuse_over_budget(stream).await,
        }
    }

    async fn connection(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        _reserve: Reserve,
        stop: CancellationToken,
    ) {
        let (head, dropped) = self.heads.enter();
        let heads = self.heads.clone();
        let spoke = Arc::new(AtomicBool::new(false));
        let first_head = spoke.clone();
        let _ = stream.set_nodelay(true);
        // Without a cap Linux grows a socket's send buffer to 4 MB for a client that does
        // not read (net.ipv4.tcp_wmem); the kernel holds that outside any budget.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);
        let router = self.router;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            if !first_head.swap(true, Ordering::Relaxed) {
                heads.leave(head);
            }
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = router.clone().oneshot(request.map(axum::body::Body::new));
            async move { Ok::<_, Infallible>(response.await.unwrap_or_else(|e| match e {})) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        let result = tokio::select! {
            result = &mut connection => result,
            () = dropped.cancelled(), if !spoke.load(Ordering::Relaxed) => {
                tracing::debug!(%peer, "dropped a connection that sent no request head, to make room");
                Ok(())
            }
            () = stop.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        self.heads.leave(head);
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "HTTP connection ended");
        }
    }
}

/// A reserve, shedding what the policy allows when the budget is spent (the oldest
/// connection still without a request head, else the open connection holding the most unread
/// bytes) and waiting up to [`ADMISSION_WAIT`] for it to come back; `None` when nothing could
/// be shed or it did not come back in time.
pub async fn reserve_shedding(
    budget: &Arc<MemoryBudget>,
    heads: &PendingHeads,
    shed: &Shed,
) -> Option<Reserve> {
    if let Some(reserve) = budget.reserve() {
        return Some(reserve);
    }
    if !(heads.drop_oldest() || shed()) {
        return None;
    }
    let deadline = tokio::time::Instant::now() + ADMISSION_WAIT;
    while tokio::time::Instant::now() < deadline {
        sleep(ADMISSION_POLL).await;
        if let Some(reserve) = budget.reserve() {
            return Some(reserve);
        }
    }
    None
}

async fn drain(connections: &mut JoinSet<()>) {
    while connections.join_next().await.is_some() {}
}

/// The whole answer to a connection past the memory budget: nothing of it is read.
async fn refuse_over_budget(mut stream: TcpStream) {
    const BODY: &str = "The gateway is at its memory budget; try again later\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
