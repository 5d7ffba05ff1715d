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

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
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

use super::budget::{MemoryBudget, Reserve};

/// How long connections still in an HTTP request may take to finish after shutdown begins.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// The most a request head may take: a browser's WebSocket handshake is about 1 KB.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long accepting pauses after an error such as running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listener's router and bounds.
#[derive(Clone)]
pub struct HttpServer {
    pub router: Router,
    pub header_timeout: Duration,
    pub budget: Arc<MemoryBudget>,
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
                None => connections.spawn(refuse_over_budget(stream)),
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

    async fn connection(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        _reserve: Reserve,
        stop: CancellationToken,
    ) {
        let _ = stream.set_nodelay(true);
        let router = self.router;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
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
            () = stop.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "HTTP connection ended");
        }
    }
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
