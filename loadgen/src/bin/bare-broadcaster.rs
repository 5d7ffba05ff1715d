//! `bare-broadcaster`: the ceiling the local gateway is measured against (docs/benchmarks.md).
//! A WebSocket server on loopback that does only what a broadcast must: parse each message,
//! wrap it as the chat's frame, serialise that once, and queue it for every connection. No
//! routing, no store, no events, no limits.
//!
//!   bare-broadcaster --listen 127.0.0.1:9000

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

#[derive(Parser)]
struct Options {
    /// Loopback address to serve on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
}

type Connections = Arc<RwLock<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let options = Options::parse();
    if !options.listen.ip().is_loopback() {
        eprintln!("error: bare-broadcaster serves loopback only");
        std::process::exit(2);
    }
    let listener = TcpListener::bind(options.listen).await?;
    let connections: Connections = Arc::default();
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(stream, id, connections.clone()));
    }
}

// The handshake callback's error type is tungstenite's own (an HTTP response), not ours.
#[allow(clippy::result_large_err)]
async fn serve(stream: TcpStream, id: u64, connections: Connections) {
    let _ = stream.set_nodelay(true);
    let mut name = String::new();
    let capture = |request: &Request, response: Response| {
        name = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("name=")))
            .unwrap_or_default()
            .to_owned();
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, capture).await else {
        return;
    };
    let (mut sink, mut frames) = socket.split();
    let (queue, mut queued) = mpsc::unbounded_channel::<Message>();
    connections
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(id, queue);
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(next) = queued.try_recv() {
                if sink.feed(next).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(frame)) = frames.next().await {
        let Message::Text(text) = frame else { continue };
        let Some(wrapped) = wrap(&name, &text) else {
            continue;
        };
        let message = Message::Text(Utf8Bytes::from(wrapped));
        let all = connections
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for queue in all.values() {
            let _ = queue.send(message.clone());
        }
    }
    connections
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&id);
    writer.abort();
}

/// The chat's message frame for `{"action":…,"message":…}`, serialised once.
fn wrap(from: &str, text: &str) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(text).ok()?;
    let message = body.get("message")?.as_str()?;
    let frame = serde_json::json!({
        "type": "message",
        "from": from,
        "message": message,
        "sentAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    Some(frame.to_string())
}
