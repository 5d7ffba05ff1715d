use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};

mod backend;

use crate::backend::BackendLink;
use crate::broadcast::{Fanout, broadcast};
use crate::channels::{ChannelRequest, ChannelSettings, Subscription, channel_name_problem};
use crate::contract::{MAX_POST_BYTES, MAX_PRESENCE_AUDIENCE, authorizer_context, routes};
use crate::display_name::display_name;
use crate::frames::{ChatFrame, Inbound, PresenceEvent};
use crate::history::{HistoryEntry, HistorySettings, HistoryStore, MemoryHistory, history_frame};
use crate::route_selection::RouteSelectionExpression;
use crate::sender::{SendError, Sender};
use crate::store::{Connection, ConnectionStore, Recipient, StoreError, anonymous_label};

#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// The custom route that broadcasts, e.g. `onMessage`.
    pub message_route: String,
    /// Only used to tell a client what a message should look like.
    pub route_selection: RouteSelectionExpression,
    /// Most posts in flight at once during a broadcast.
    pub broadcast_concurrency: usize,
    /// The room checks tokens at `$connect`: names come from its authorizer's context, and
    /// `?name=` is ignored.
    pub names_from_authorizer: bool,
    /// Set, the room serves `subscribe` and `unsubscribe`, and messages may name a channel.
    pub channels: Option<ChannelSettings>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            message_route: "onMessage".to_owned(),
            route_selection: RouteSelectionExpression::default(),
            broadcast_concurrency: 64,
            names_from_authorizer: false,
            channels: None,
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

/// The chat room's behaviour for every route, over any store and sender, with a history
/// when the room keeps one.
pub struct Chat<S, T, H = MemoryHistory> {
    store: S,
    sender: T,
    config: ChatConfig,
    history: Option<(H, HistorySettings)>,
    /// The room's own backend (`spec.backend`), if it has one.
    backend: Option<BackendLink>,
}

impl<S: ConnectionStore, T: Sender> Chat<S, T> {
    /// A room without history.
    pub fn new(store: S, sender: T, config: ChatConfig) -> Self {
        Self {
            store,
            sender,
            config,
            history: None,
            backend: None,
        }
    }
}

impl<S: ConnectionStore, T: Sender, H: HistoryStore> Chat<S, T, H> {
    /// A room that keeps its messages in a history store as its settings say, or (`None`)
    /// keeps none.
    pub fn with_history(
        store: S,
        sender: T,
        config: ChatConfig,
        history: Option<(H, HistorySettings)>,
    ) -> Self {
        Self {
            store,
            sender,
            config,
            history,
            backend: None,
        }
    }

    /// The same room, forwarding to `backend` what it asks for.
    #[must_use]
    pub fn with_backend(mut self, backend: Option<BackendLink>) -> Self {
        self.backend = backend;
        self
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
        self.dispatch(event, None).await
    }

    /// [`Chat::handle`], with the event as it arrived (`received`, the JSON API Gateway sent),
    /// which is what a backend receives: a parsed event writes some fields differently (header
    /// names in lower case, for one).
    pub async fn handle_received(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        received: &serde_json::Value,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        self.dispatch(event, Some(received)).await
    }

    pub(crate) async fn dispatch(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        received: Option<&serde_json::Value>,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let context = &event.request_context;
        let connection_id = context
            .connection_id
            .as_deref()
            .ok_or(ChatError::MissingConnectionId)?;
        match context.route_key.as_deref() {
            Some(route) if self.forwards_route(route) => {
                self.forward(connection_id, event, received).await
            }
            Some("$connect") => self.connect(connection_id, event, received).await,
            Some("$disconnect") => self.disconnect(connection_id, event, received).await,
            Some(route) if route == self.config.message_route => {
                self.message(connection_id, event).await
            }
            Some(routes::WHO) => self.who(connection_id).await,
            Some(routes::HISTORY) if self.history.is_some() => {
                self.history(connection_id, event).await
            }
            Some(routes::SUBSCRIBE) if self.config.channels.is_some() => {
                self.subscribe(connection_id, event).await
            }
            Some(routes::UNSUBSCRIBE) if self.config.channels.is_some() => {
                self.unsubscribe(connection_id, event).await
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
        received: Option<&serde_json::Value>,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let display_name = if self.config.names_from_authorizer {
            // Fail closed: a `$connect` that reached the room without its authorizer (a route
            // changed by hand) is no one the room knows.
            match authorized_name(event) {
                Some(name) => Some(name.to_owned()),
                None => return Ok(response(403, Some("Forbidden".to_owned()))),
            }
        } else {
            match display_name(event.query_string_parameters.first("name")) {
                Ok(name) => name,
                Err(reason) => return Ok(response(400, Some(reason))),
            }
        };
        let joined = Recipient {
            id: connection_id.to_owned(),
            display_name: display_name.clone(),
        };
        let connection = Connection {
            id: connection_id.to_owned(),
            display_name,
            connected_at_ms: event.request_context.connected_at,
        };
        self.store.put(connection).await?;
        self.announce(PresenceEvent::Join, &joined, event).await?;
        self.tell_backend(event, received, &joined).await;
        Ok(response(200, None))
    }

    async fn disconnect(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
        received: Option<&serde_json::Value>,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        // Already removed (a broadcast found it gone): someone else said it left, or no one
        // saw it arrive.
        let left = match self.store.remove(connection_id).await? {
            Some(left) => {
                self.announce(PresenceEvent::Leave, &left, event).await?;
                left
            }
            None => Recipient::unnamed(connection_id),
        };
        self.tell_backend(event, received, &left).await;
        Ok(response(200, None))
    }

    /// Tells everyone but `whom` that it joined or left. On AWS a post to a connection still
    /// inside its own `$connect` answers 410; the broadcast keeps such a connection.
    async fn announce(
        &self,
        what: PresenceEvent,
        whom: &Recipient,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<(), ChatError> {
        // Whom to tell, unless the room is too large to tell (one more than the audience:
        // the one who came may be listed too).
        let Some(everyone) = self.store.list_at_most(MAX_PRESENCE_AUDIENCE + 1).await? else {
            return Ok(());
        };
        let others: Vec<Recipient> = everyone
            .iter()
            .filter(|r| r.id != whom.id)
            .cloned()
            .collect();
        if others.is_empty() || others.len() > MAX_PRESENCE_AUDIENCE {
            return Ok(());
        }
        let at = received_at(event.request_context.request_time_epoch);
        let frame = ChatFrame::Presence {
            event: what,
            name: whom.sender_label(),
            at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        let fanout = Fanout::at(at.timestamp_millis(), self.config.broadcast_concurrency);
        let payload = Bytes::from(frame.to_json());
        broadcast(&self.store, &self.sender, &others, payload, fanout).await;
        Ok(())
    }

    async fn who(&self, connection_id: &str) -> Result<ApiGatewayProxyResponse, ChatError> {
        let mut online: Vec<String> = self
            .store
            .list()
            .await?
            .iter()
            .map(Recipient::sender_label)
            .collect();
        online.sort();
        self.reply(connection_id, &who_frame(online)).await;
        Ok(response(200, None))
    }

    async fn history(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let Some((history, settings)) = &self.history else {
            return Ok(response(200, None));
        };
        let now = received_at(event.request_context.request_time_epoch).timestamp_millis();
        let newest = history.newest(settings.messages, now).await?;
        self.reply(connection_id, &history_frame(newest)).await;
        Ok(response(200, None))
    }

    async fn message(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let inbound = event.body.as_deref().map(serde_json::from_str::<Inbound>);
        let Some(Ok(Inbound { message, channel })) = inbound else {
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

        let recipients = match &channel {
            None => self.store.list().await?,
            Some(channel) => match self.channel_audience(connection_id, channel).await? {
                Ok(subscribers) => subscribers,
                Err(refusal) => {
                    self.reply(connection_id, &ChatFrame::Error { message: refusal })
                        .await;
                    return Ok(response(400, None));
                }
            },
        };
        let from = recipients
            .iter()
            .find(|c| c.id == connection_id)
            .map_or_else(|| anonymous_label(connection_id), Recipient::sender_label);
        let received = received_at(event.request_context.request_time_epoch);
        let frame = ChatFrame::Message {
            from,
            message,
            sent_at: received.to_rfc3339_opts(SecondsFormat::Millis, true),
            channel: channel.clone(),
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
        let kept = frame.to_json();
        let request_id = event
            .request_context
            .request_id
            .as_deref()
            .unwrap_or_default();
        // A message no history answer could hold is delivered but not kept (history.rs); nor
        // is a channel's, which `history` would show to anyone in the room.
        if let Some((history, settings)) = &self.history
            && channel.is_none()
            && crate::history::fits_in_an_answer(&kept)
        {
            let entry = HistoryEntry::new(
                received.timestamp_millis(),
                request_id,
                kept,
                settings.retention,
            );
            // The message still goes out: a room that cannot write its history keeps talking.
            if let Err(error) = history.append(entry).await {
                tracing::error!(%error, "could not keep the message in the history");
            }
        }
        let fanout = Fanout::at(
            received.timestamp_millis(),
            self.config.broadcast_concurrency,
        )
        .for_request(request_id);
        let report = broadcast(&self.store, &self.sender, &recipients, payload, fanout).await;
        tracing::info!(
            recipients = recipients.len(),
            handed_off = report.handed_off,
            delivered = report.delivered,
            gone = report.gone.len(),
            connecting = report.connecting.len(),
            failed = report.failed.len(),
            "broadcast finished"
        );
        Ok(response(200, None))
    }

    /// The subscribers of `channel`, if the room has channels, the name is one, and the
    /// sender is among them; otherwise what to tell the sender.
    async fn channel_audience(
        &self,
        connection_id: &str,
        channel: &str,
    ) -> Result<Result<crate::store::Recipients, String>, ChatError> {
        if self.config.channels.is_none() {
            return Ok(Err(
                "This room has no channels: send your message without \"channel\".".to_owned(),
            ));
        }
        if let Some(problem) = channel_name_problem(channel) {
            return Ok(Err(problem));
        }
        let subscribers = self.store.list_channel(channel).await?;
        if !subscribers.iter().any(|s| s.id == connection_id) {
            return Ok(Err(format!(
                "Subscribe to channel {channel} before you send to it: {}",
                self.channel_example(routes::SUBSCRIBE, channel)
            )));
        }
        Ok(Ok(subscribers))
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let Some(settings) = self.config.channels else {
            return Ok(response(200, None));
        };
        let channel = match self.channel_request(routes::SUBSCRIBE, event) {
            Ok(channel) => channel,
            Err(refusal) => return Ok(self.refuse(connection_id, refusal).await),
        };
        let most = settings.max_per_connection;
        let frame = match self.store.subscribe(connection_id, &channel, most).await? {
            Subscription::Subscribed | Subscription::AlreadySubscribed => {
                ChatFrame::Subscribed { channel }
            }
            Subscription::TooMany => {
                let refusal = format!(
                    "A connection of this room may be in at most {most} channels; unsubscribe from one before you subscribe to {channel}."
                );
                return Ok(self.refuse(connection_id, refusal).await);
            }
            // Its row went with a 410 to a broadcast: API Gateway no longer knows it either.
            Subscription::NotConnected => {
                let refusal = "This connection is no longer in the room; reconnect.".to_owned();
                return Ok(self.refuse(connection_id, refusal).await);
            }
        };
        self.reply(connection_id, &frame).await;
        Ok(response(200, None))
    }

    async fn unsubscribe(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let channel = match self.channel_request(routes::UNSUBSCRIBE, event) {
            Ok(channel) => channel,
            Err(refusal) => return Ok(self.refuse(connection_id, refusal).await),
        };
        // Leaving a channel one is not in is no error: the outcome is the same.
        self.store.unsubscribe(connection_id, &channel).await?;
        self.reply(connection_id, &ChatFrame::Unsubscribed { channel })
            .await;
        Ok(response(200, None))
    }

    /// The channel a `subscribe` or `unsubscribe` names, or what is wrong with the request.
    fn channel_request(
        &self,
        route: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<String, String> {
        let parsed = event
            .body
            .as_deref()
            .map(serde_json::from_str::<ChannelRequest>);
        let Some(Ok(ChannelRequest { channel })) = parsed else {
            return Err(format!(
                "The {route} route needs a JSON text frame like {}: \"channel\" must be a string",
                self.channel_example(route, "<channel>")
            ));
        };
        match channel_name_problem(&channel) {
            Some(problem) => Err(problem),
            None => Ok(channel),
        }
    }

    /// Tells the caller why its request was refused, and answers 400.
    async fn refuse(&self, connection_id: &str, message: String) -> ApiGatewayProxyResponse {
        self.reply(connection_id, &ChatFrame::Error { message })
            .await;
        response(400, None)
    }

    fn channel_example(&self, route: &str, channel: &str) -> serde_json::Value {
        let mut body = self.config.route_selection.example_body(route, "");
        if let Some(fields) = body.as_object_mut() {
            fields.remove("message");
            fields.insert("channel".to_owned(), channel.into());
        }
        crate::route_selection::sorted_keys(body)
    }

    /// Answers only the caller; a reply to a connection that is already gone is dropped.
    async fn reply(&self, connection_id: &str, frame: &ChatFrame) {
        self.post_to(connection_id, Bytes::from(frame.to_json()))
            .await;
    }

    /// Posts to one connection; a connection gone meanwhile is no error, and a failure is
    /// logged, never returned: an answer that cannot be delivered changes nothing else.
    async fn post_to(&self, connection_id: &str, data: Bytes) {
        match self.sender.post(connection_id, data).await {
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

/// The answer to `who`: the sorted names that fit in one post, and how many did not.
fn who_frame(mut online: Vec<String>) -> ChatFrame {
    let everyone = online.len();
    let quoted = |name: &String| serde_json::to_string(name).unwrap_or_default().len() + 1;
    // The frame with no names but `more` at its largest, plus each name with its quotes and
    // comma; names go from the end until it fits.
    let empty = ChatFrame::Who {
        online: Vec::new(),
        more: everyone,
    };
    let mut bytes = empty.to_json().len() + online.iter().map(quoted).sum::<usize>();
    while bytes > MAX_POST_BYTES {
        let Some(last) = online.pop() else { break };
        bytes -= quoted(&last);
    }
    let more = everyone - online.len();
    ChatFrame::Who { online, more }
}

/// The gateway's receive time of the message, so every recipient sees the same instant.
fn received_at(request_time_epoch_ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(request_time_epoch_ms)
        .filter(|_| request_time_epoch_ms > 0)
        .unwrap_or_else(Utc::now)
}

/// The name the room's authorizer gave the connection, in a room with auth.
fn authorized_name(event: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    event
        .request_context
        .authorizer
        .fields
        .get(authorizer_context::NAME)
        .and_then(serde_json::Value::as_str)
}

fn response(status_code: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status_code;
    response.body = body.map(Body::Text);
    response
}
