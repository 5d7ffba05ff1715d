//! One WebSocket connection after its handshake: a reader that runs the routes for each
//! frame, a writer that drains the connection's bounded outbound queue, and `$disconnect`
//! after every close, whoever closed.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use chrono::{DateTime, Utc};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

use super::events::{self, ConnectionContext};
use super::outbound::{self, Queued};
use super::registry::{CloseRequest, ConnectionHandle};
use super::{Gateway, Room};

/// How long a close handshake may take before the TCP connection is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Frames written before one flush, so a broadcast burst costs one syscall, not hundreds.
const WRITE_BATCH: usize = 64;

#[derive(Clone)]
pub struct Session {
    pub gateway: Gateway,
    pub room: Arc<Room>,
    pub connection_id: String,
    pub connected_at: DateTime<Utc>,
    pub source_ip: String,
    pub user_agent: Option<String>,
}

impl Session {
    pub fn context<'a>(&'a self, domain_name: &'a str) -> ConnectionContext<'a> {
        ConnectionContext {
            room: &self.room,
            connection_id: &self.connection_id,
            connected_at: self.connected_at,
            source_ip: &self.source_ip,
            user_agent: self.user_agent.as_deref(),
            domain_name,
        }
    }

    pub async fn run(self, socket: WebSocket) {
        let tasks = self.gateway.shared.connection_tasks.clone();
        tasks.track_future(self.serve(socket)).await;
    }

    async fn serve(self, socket: WebSocket) {
        let limits = self.gateway.limits().clone();
        let (outbound, queued) = outbound::channel(limits.outbound_queue_frames);
        let (handle, close_requested) = ConnectionHandle::new(
            self.connection_id.clone(),
            self.room.key.clone(),
            self.connected_at,
            self.source_ip.clone(),
            self.user_agent.clone(),
            outbound,
        );
        let handle = Arc::new(handle);
        self.gateway.connections().insert(handle.clone());
        if self.gateway.is_shutting_down() {
            handle.request_close(CloseRequest::GOING_AWAY);
        }

        let (sink, stream) = socket.split();
        let stop_writing = CancellationToken::new();
        let writer = tokio::spawn(write_frames(
            sink,
            queued,
            close_requested.clone(),
            stop_writing.clone(),
        ));
        let (code, reason) = self.read_frames(stream, &handle, close_requested).await;
        self.gateway.connections().remove(&self.connection_id);
        stop_writing.cancel();
        if let Err(error) = writer.await {
            tracing::error!(connection_id = %self.connection_id, %error, "writer task failed");
        }
        Box::pin(self.disconnected(code, reason)).await;
    }

    /// Runs the routes for every frame until the connection ends; returns the close code and
    /// reason `$disconnect` reports.
    async fn read_frames(
        &self,
        mut stream: SplitStream<WebSocket>,
        handle: &ConnectionHandle,
        mut close_requested: watch::Receiver<Option<CloseRequest>>,
    ) -> (u16, String) {
        let limits = self.gateway.limits();
        let idle = sleep(limits.idle_timeout);
        let lifetime = sleep(limits.max_connection_duration);
        // Armed (reset) only once a close is requested; the guard below ignores it until then.
        let close_deadline = sleep(CLOSE_GRACE);
        tokio::pin!(idle, lifetime, close_deadline);
        let mut closing: Option<CloseRequest> = None;

        loop {
            tokio::select! {
                frame = stream.next() => {
                    let Some(frame) = frame else {
                        return closing.map_or((1006, "Connection lost".into()), |c| (c.code, c.reason.into()));
                    };
                    let message = match frame {
                        Ok(message) => message,
                        Err(error) if is_too_big(&error) => {
                            handle.request_close(CloseRequest::TOO_BIG);
                            return (CloseRequest::TOO_BIG.code, CloseRequest::TOO_BIG.reason.into());
                        }
                        Err(error) => {
                            tracing::debug!(connection_id = %self.connection_id, %error, "read failed");
                            return closing.map_or((1006, "Connection lost".into()), |c| (c.code, c.reason.into()));
                        }
                    };
                    let now = Utc::now();
                    handle.touch(now);
                    idle.as_mut().reset(Instant::now() + limits.idle_timeout);
                    match message {
                        Message::Close(frame) => {
                            return match (closing, frame) {
                                (Some(ours), _) => (ours.code, ours.reason.into()),
                                (None, Some(theirs)) => (theirs.code, theirs.reason.to_string()),
                                (None, None) => (1005, "No status received".into()),
                            };
                        }
                        // Data that arrives after a close was requested is dropped, as it is
                        // on AWS once a connection starts closing.
                        _ if closing.is_some() => {}
                        // Boxed: an idle connection's task then holds only this loop, not
                        // the larger state of an invocation (profiled: 8.8 KB → see
                        // docs/benchmarks.md).
                        Message::Text(text) => Box::pin(self.on_text(handle, text.as_str())).await,
                        // API Gateway takes no binary frames from clients: it closes with 1003.
                        Message::Binary(_) => handle.request_close(CloseRequest::UNSUPPORTED),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                () = &mut idle, if closing.is_none() => handle.request_close(CloseRequest::IDLE),
                () = &mut lifetime, if closing.is_none() => handle.request_close(CloseRequest::MAX_DURATION),
                changed = close_requested.changed(), if closing.is_none() => {
                    closing = close_requested.borrow().clone();
                    if changed.is_err() || closing.is_none() {
                        closing = Some(CloseRequest::GOING_AWAY);
                    }
                    close_deadline.as_mut().reset(Instant::now() + CLOSE_GRACE);
                }
                () = &mut close_deadline, if closing.is_some() => {
                    return closing.map_or((1006, "Connection lost".into()), |c| (c.code, c.reason.into()));
                }
            }
        }
    }

    async fn on_text(&self, handle: &ConnectionHandle, text: &str) {
        let route = self.room.route_for(Some(text));
        let domain_name = self.gateway.domain_name().to_owned();
        let event = events::text_message(&self.context(&domain_name), &route, text);
        self.invoke_for_message(handle, event).await;
    }

    /// A failed or panicking integration answers the caller as API Gateway does, and only the
    /// caller: everyone else keeps being served.
    async fn invoke_for_message(
        &self,
        handle: &ConnectionHandle,
        event: chatroom_handlers::ApiGatewayWebsocketProxyRequest,
    ) {
        let request_id = event.request_context.request_id.clone().unwrap_or_default();
        if self.room.invoke(event).await.is_err() {
            let frame = serde_json::json!({
                "message": "Internal server error",
                "connectionId": self.connection_id,
                "requestId": request_id,
            });
            // The caller may already be closing; then there is no one to tell.
            let _ = handle.send(Message::Text(frame.to_string().into()));
        }
    }

    pub async fn disconnected(self, code: u16, reason: String) {
        let domain_name = self.gateway.domain_name().to_owned();
        let event = events::disconnect(&self.context(&domain_name), code, &reason);
        // A failing `$disconnect` has no one to answer; the room logs it.
        let _ = self.room.invoke(event).await;
    }
}

/// Drains the outbound queue into the socket until the reader stops or a close is requested;
/// then sends the requested close frame, if any, and closes.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut queued: Queued,
    mut close_requested: watch::Receiver<Option<CloseRequest>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = close_requested.changed() => break,
            message = queued.recv() => {
                let Some(message) = message else { break };
                let written = async {
                    sink.feed(message).await?;
                    for _ in 1..WRITE_BATCH {
                        match queued.try_recv() {
                            Some(next) => sink.feed(next).await?,
                            None => break,
                        }
                    }
                    sink.flush().await
                };
                // A client that stops reading blocks the write; a close request or the reader
                // ending must still get through.
                tokio::select! {
                    result = written => if result.is_err() { break },
                    () = stop.cancelled() => break,
                    _ = close_requested.changed() => break,
                }
            }
        }
    }
    let request = close_requested.borrow().clone();
    if let Some(request) = request {
        let _ = timeout(
            CLOSE_GRACE,
            sink.send(Message::Close(Some(request.frame()))),
        )
        .await;
    }
    let _ = timeout(CLOSE_GRACE, sink.close()).await;
}

fn is_too_big(error: &axum::Error) -> bool {
    let source: &(dyn std::error::Error + 'static) = error;
    let mut cause = std::error::Error::source(source);
    while let Some(inner) = cause {
        if let Some(tungstenite::Error::Capacity(_)) = inner.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        cause = inner.source();
    }
    false
}
