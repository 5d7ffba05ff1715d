//! One WebSocket connection after its handshake: a reader that runs the routes for each
//! frame, a writer that drains the connection's bounded outbound queue, and `$disconnect`
//! after every close, whoever closed.
use std::collections::HashMap;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::SplitStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tungstenite::Message;
use tungstenite::error::{Error as WsError, ProtocolError};

use super::budget::Reserve;
use super::events::{self, ConnectionContext};
use super::handshake::Socket;
use super::outbound::{self, Outgoing, QueueLimits};
use super::registry::{CloseRequest, ConnectionHandle};
use super::throttle;
use super::writer::{CLOSE_GRACE, Writer};
use super::{Gateway, Room};

#[derive(Clone)]
pub struct Session {
    pub gateway: Gateway,
    pub room: Arc<Room>,
    pub connection_id: String,
    pub connected_at: DateTime<Utc>,
    pub source_ip: String,
    pub user_agent: Option<Arc<str>>,
    /// What the room's authorizer said about the connection, for every event's
    /// `requestContext.authorizer`.
    pub authorizer: Option<HashMap<String, serde_json::Value>>,
    /// This connection's own bucket for the routes that answer only it.
    pub queries: Arc<throttle::Throttle>,
}

/// A connection reachable through the registry, waiting for its socket.
pub struct Opened {
    handle: Arc<ConnectionHandle>,
    queued: outbound::Queued,
    close_requested: watch::Receiver<Option<CloseRequest>>,
}

/// Why the reader stopped: the code and reason `$disconnect` reports.
type Ended = (u16, String);

impl Session {
    pub fn context<'a>(&'a self, domain_name: &'a str) -> ConnectionContext<'a> {
        ConnectionContext {
            room: &self.room,
            connection_id: &self.connection_id,
            connected_at: self.connected_at,
            source_ip: &self.source_ip,
            user_agent: self.user_agent.as_deref(),
            domain_name,
            authorizer: self.authorizer.as_ref(),
        }
    }

    /// Makes the connection reachable: from here on posts to it are queued, as on AWS once
    /// `$connect` has succeeded, even before the client has read the 101.
    pub fn open(&self) -> Opened {
        let limits = self.gateway.limits();
        let queue_limits = QueueLimits {
            frames: limits.outbound_queue_frames,
            bytes: limits.outbound_queue_bytes,
        };
        let (outbound, queued) = outbound::channel(queue_limits, self.gateway.budget().clone());
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
        Opened {
            handle,
            queued,
            close_requested,
        }
    }

    /// Serves the opened connection until it ends; `reserve` is its share of the memory
    /// budget.
    pub async fn run(self, socket: Box<Socket>, opened: Opened, reserve: Reserve) {
        let tasks = self.gateway.shared.connection_tasks.clone();
        tasks
            .track_future(self.serve(socket, opened, reserve))
            .await;
    }

    /// The client left before the upgrade completed: the connection goes, and `$disconnect`
    /// still follows, so the integration can forget it.
    pub async fn abandon(self, opened: Opened) {
        self.gateway.connections().remove(&self.connection_id);
        drop(opened);
        // Boxed, as in `serve`: its event is large, and the connection's task would keep room for
        // it all its life.
        Box::pin(self.disconnected(1006, "Upgrade failed".to_owned())).await;
    }

    async fn serve(self, socket: Box<Socket>, opened: Opened, _reserve: Reserve) {
        let Opened {
            handle,
            queued,
            close_requested,
        } = opened;
        if self.gateway.is_shutting_down() {
            handle.request_close(CloseRequest::GOING_AWAY);
        }
        let (sink, stream) = (*socket).split();
        let stop_writing = CancellationToken::new();
        let writer = tokio::spawn(
            Writer {
                sink,
                queued,
                max_frame_bytes: self.gateway.limits().max_frame_bytes,
                close_requested: close_requested.clone(),
                stop: stop_writing.clone(),
                budget: self.gateway.budget().clone(),
                socket_buffer_bytes: super::http_server::SOCKET_SEND_BUFFER_BYTES,
            }
            .run(),
        );
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
        mut stream: SplitStream<Socket>,
        handle: &ConnectionHandle,
        mut close_requested: watch::Receiver<Option<CloseRequest>>,
    ) -> Ended {
        let limits = self.gateway.limits();
        let idle = sleep(limits.idle_timeout);
        let lifetime = sleep(limits.max_connection_duration);
        // Armed (reset) only once a close is requested; the guard below ignores it until then.
        let close_deadline = sleep(CLOSE_GRACE);
        tokio::pin!(idle, lifetime, close_deadline);
        let mut closing: Option<CloseRequest> = None;
        let lost = |closing: &Option<CloseRequest>| -> Ended {
            closing
                .as_ref()
                .map_or((1006, "Connection lost".into()), |c| {
                    (c.code, c.reason.into())
                })
        };

        loop {
            tokio::select! {
                frame = stream.next() => {
                    let message = match frame {
                        None => return lost(&closing),
                        Some(Ok(message)) => message,
                        Some(Err(error)) => {
                            let Some(request) = close_for(&error) else {
                                tracing::debug!(connection_id = %self.connection_id, %error, "read failed");
                                return lost(&closing);
                            };
                            tracing::debug!(connection_id = %self.connection_id, %error, code = request.code, "closing a connection that broke the protocol");
                            handle.request_close(request.clone());
                            return (request.code, request.reason.into());
                        }
                    };
                    let now = Utc::now();
                    handle.touch(now);
                    idle.as_mut().reset(Instant::now() + limits.idle_timeout);
                    match message {
                        Message::Close(frame) => {
                            return match (closing, frame) {
                                (Some(ours), _) => (ours.code, ours.reason.into()),
                                (None, Some(theirs)) => (theirs.code.into(), theirs.reason.to_string()),
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
                        // The answer goes through the queue, so that a client that pings
                        // without reading fills its own queue and is closed, not the gateway.
                        Message::Ping(payload) => {
                            let _ = handle.send(Outgoing::Pong(payload));
                        }
                        Message::Pong(_) | Message::Frame(_) => {}
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
                () = &mut close_deadline, if closing.is_some() => return lost(&closing),
            }
        }
    }

    async fn on_text(&self, handle: &ConnectionHandle, text: &str) {
        let route = self.room.route_for(Some(text));
        let domain_name = self.gateway.domain_name().to_owned();
        let event = events::text_message(&self.context(&domain_name), &route, text);
        let request_id = event.request_context.request_id.clone().unwrap_or_default();
        // `who` or `history` as fast as a client can send costs the gateway a whole answer
        // each: one connection may not spend the account's rate on them.
        let query = self.room.broadcast_route.as_deref() != Some(route.as_str());
        if query && !self.queries.allows() {
            let _ = handle.send(self.error_frame("Too Many Requests", &request_id));
            return;
        }
        if !throttle::allowed(self.gateway.account_throttle(), self.room.throttle.as_ref()) {
            // As API Gateway: the message reaches no route, and only its sender hears why.
            let _ = handle.send(self.error_frame("Too Many Requests", &request_id));
            return;
        }
        // A failed or panicking integration answers the caller as API Gateway does, and only
        // the caller: everyone else keeps being served.
        if self.room.invoke(event).await.is_err() {
            let _ = handle.send(self.error_frame("Internal server error", &request_id));
        }
    }

    /// API Gateway's own error frame, sent to the one connection it concerns.
    fn error_frame(&self, message: &str, request_id: &str) -> Outgoing {
        let frame = serde_json::json!({
            "message": message,
            "connectionId": self.connection_id,
            "requestId": request_id,
        });
        Outgoing::text(frame.to_string())
    }

    pub async fn disconnected(self, code: u16, reason: String) {
        let domain_name = self.gateway.domain_name().to_owned();
        let event = events::disconnect(&self.context(&domain_name), code, &reason);
        // A failing `$disconnect` has no one to answer; the room logs it.
        let _ = self.room.invoke(event).await;
    }
}

/// The close a read error calls for, by RFC 6455 7.4.1 and API Gateway's quotas; `None` when
/// the connection is simply gone.
fn close_for(error: &WsError) -> Option<CloseRequest> {
    match error {
        WsError::Capacity(_) => Some(CloseRequest::TOO_BIG),
        WsError::Utf8(_) => Some(CloseRequest::INVALID_TEXT),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some(CloseRequest::PROTOCOL_ERROR),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use tungstenite::error::CapacityError;

    use super::*;

    #[test]
    fn read_errors_close_with_the_codes_rfc_6455_and_aws_use() {
        let code = |error: WsError| close_for(&error).map(|c| c.code);
        assert_eq!(
            code(WsError::Capacity(CapacityError::MessageTooLong {
                size: 2,
                max_size: 1
            })),
            Some(1009)
        );
        assert_eq!(code(WsError::Utf8(String::new())), Some(1007));
        assert_eq!(
            code(WsError::Protocol(ProtocolError::NonZeroReservedBits)),
            Some(1002)
        );
        assert_eq!(
            code(WsError::Protocol(ProtocolError::UnmaskedFrameFromClient)),
            Some(1002)
        );
        assert_eq!(
            code(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            None
        );
        assert_eq!(code(WsError::ConnectionClosed), None);
    }
}
