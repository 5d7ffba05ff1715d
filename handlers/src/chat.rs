use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::broadcast::{Fanout, broadcast};
use crate::contract::MAX_POST_BYTES;
use crate::frames::{ChatFrame, Inbound};
use crate::route_selection::RouteSelectionExpression;
use crate::sender::{SendError, Sender};
use crate::store::{Connection, ConnectionStore, Recipient, StoreError};

/// Longest display name a client may pick with `?name=`, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 32;

#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// The custom route that broadcasts, e.g. `onMessage`.
    pub message_route: String,
    /// Only used to tell a client what a message should look like.
    pub route_selection: RouteSelectionExpression,
    /// Most posts in flight at once during a broadcast.
    pub broadcast_concurrency: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            message_route: "onMessage".to_owned(),
            route_selection: RouteSelectionExpression::default(),
            broadcast_concurrency: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("event has no requestContext.connectionId")]
    MissingConnectionId,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The chat room's behaviour for every route, over any store and sender.
pub struct Chat<S, T> {
    store: S,
    sender: T,
    config: ChatConfig,
}

impl<S: ConnectionStore, T: Sender> Chat<S, T> {
    pub fn new(store: S, sender: T, config: ChatConfig) -> Self {
        Self {
            store,
            sender,
            config,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn sender(&self) -> &T {
        &self.sender
    }

    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// Dispatches on `requestContext.routeKey`, as the room's one Lambda function does.
    pub async fn handle(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let context = &event.request_context;
        let connection_id = context
            .connection_id
            .as_deref()
            .ok_or(ChatError::MissingConnectionId)?;
        match context.route_key.as_deref() {
            Some("$connect") => self.connect(connection_id, event).await,
            Some("$disconnect") => {
                self.store.remove(connection_id).await?;
                Ok(response(200, None))
            }
            Some(route) if route == self.config.message_route => {
                self.message(connection_id, event).await
            }
            // `$default`, and any route this function was not written for.
            _ => {
                let hint = format!(
                    "Unrecognised action. Send a JSON text frame like {}",
                    self.example_body()
                );
                self.reply(connection_id, &ChatFrame::Error { message: hint })
                    .await;
                Ok(response(200, None))
            }
        }
    }

    async fn connect(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let display_name = match display_name(event.query_string_parameters.first("name")) {
            Ok(name) => name,
            Err(reason) => return Ok(response(400, Some(reason))),
        };
        let connection = Connection {
            id: connection_id.to_owned(),
            display_name,
            connected_at_ms: event.request_context.connected_at,
        };
        self.store.put(connection).await?;
        Ok(response(200, None))
    }

    async fn message(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let inbound = event.body.as_deref().map(serde_json::from_str::<Inbound>);
        let Some(Ok(Inbound { message })) = inbound else {
            let hint = format!(
                "The {} route needs a JSON text frame like {}: \"message\" must be a string",
                self.config.message_route,
                self.example_body()
            );
            self.reply(
                connection_id,
                &ChatFrame::Error {
                    message: hint.clone(),
                },
            )
            .await;
            return Ok(response(400, Some(hint)));
        };

        let recipients = self.store.list().await?;
        let from = recipients
            .iter()
            .find(|c| c.id == connection_id)
            .map_or(connection_id, Recipient::sender_label)
            .to_owned();
        let received = received_at(event.request_context.request_time_epoch);
        let frame = ChatFrame::Message {
            from,
            message,
            sent_at: received.to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        let payload = Bytes::from(frame.to_json());
        if payload.len() > MAX_POST_BYTES {
            // No recipient could take it: API Gateway refuses larger posts with 413.
            let message = format!(
                "Your message is {} bytes once sent on; a message may be at most {MAX_POST_BYTES} bytes. Send a shorter one.",
                payload.len()
            );
            self.reply(connection_id, &ChatFrame::Error { message })
                .await;
            return Ok(response(413, None));
        }
        let fanout = Fanout::at(
            received.timestamp_millis(),
            self.config.broadcast_concurrency,
        );
        let report = broadcast(&self.store, &self.sender, &recipients, payload, fanout).await;
        tracing::info!(
            delivered = report.delivered,
            gone = report.gone.len(),
            connecting = report.connecting.len(),
            failed = report.failed.len(),
            "broadcast finished"
        );
        Ok(response(200, None))
    }

    /// Answers only the caller; a reply to a connection that is already gone is dropped.
    async fn reply(&self, connection_id: &str, frame: &ChatFrame) {
        match self
            .sender
            .post(connection_id, Bytes::from(frame.to_json()))
            .await
        {
            Ok(()) | Err(SendError::Gone) => {}
            Err(error) => tracing::warn!(%connection_id, %error, "could not reply"),
        }
    }

    fn example_body(&self) -> serde_json::Value {
        self.config
            .route_selection
            .example_body(&self.config.message_route, "<text>")
    }
}

fn display_name(raw: Option<&str>) -> Result<Option<String>, String> {
    let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > DISPLAY_NAME_MAX_CHARS {
        return Err(format!(
            "query parameter \"name\" must be at most {DISPLAY_NAME_MAX_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("query parameter \"name\" must not contain control characters".to_owned());
    }
    Ok(Some(name.to_owned()))
}

/// The gateway's receive time of the message, so every recipient sees the same instant.
fn received_at(request_time_epoch_ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(request_time_epoch_ms)
        .filter(|_| request_time_epoch_ms > 0)
        .unwrap_or_else(Utc::now)
}

fn response(status_code: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status_code;
    response.body = body.map(Body::Text);
    response
}
