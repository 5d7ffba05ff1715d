//! A room's own backend (`spec.backend`): messages on the routes it lists, and the arrivals and
//! departures it asks for, reach it as an HTTP POST whose body is the API Gateway WebSocket
//! event the room received; what it answers to a message goes back to the sender. Both
//! providers forward through this module, so a backend cannot tell them apart.

pub mod signature;

#[cfg(feature = "backend")]
mod http;
#[cfg(feature = "backend")]
pub use http::{AddressPolicy, HttpBackend, NoBackendClient};

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::contract::{MAX_POST_BYTES, authorizer_context};

/// How long the backend has to answer, connection included, unless the room says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a backend's answer may hold: it goes back to the sender as one post, and API
/// Gateway takes at most 128 KB in one.
pub const MAX_ANSWER_BYTES: usize = MAX_POST_BYTES;

/// What of a room goes to its backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// Custom routes whose messages go to the backend instead of the chat.
    pub routes: Vec<String>,
    /// Tell the backend of each `$connect` the room accepted.
    pub connect: bool,
    /// Tell the backend of each `$disconnect`.
    pub disconnect: bool,
}

impl Forwarded {
    pub fn takes_route(&self, route: &str) -> bool {
        self.routes.iter().any(|r| r == route)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("could not reach it: {0}")]
    Unreachable(String),
    #[error("it did not answer within {0:?}")]
    Timeout(Duration),
    #[error("it answered HTTP {0}")]
    Status(u16),
    #[error("its answer is larger than {MAX_ANSWER_BYTES} bytes")]
    AnswerTooLarge,
}

impl BackendError {
    /// What the sender is told: what went wrong, without the backend's address or the
    /// resolver's and TLS library's details, which go to the log.
    pub fn for_client(&self) -> String {
        match self {
            Self::Unreachable(_) => "it could not be reached".to_owned(),
            other => other.to_string(),
        }
    }
}

/// Where forwarded events go: an HTTP endpoint in production ([`HttpBackend`]).
pub trait Backend: Send + Sync {
    /// Posts one event (JSON) once, and returns the body of the backend's 2xx answer (empty
    /// for none). Never retried: the backend may have acted on a request whose answer was
    /// lost, and a chat message acted on twice is worse than one the sender resends.
    fn deliver(&self, event: Bytes) -> BoxFuture<'_, Result<Bytes, BackendError>>;
}

/// A room's backend and what goes to it.
#[derive(Clone)]
pub struct BackendLink {
    pub forwarded: Forwarded,
    pub backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for BackendLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendLink")
            .field("forwarded", &self.forwarded)
            .finish_non_exhaustive()
    }
}

/// The event as the backend receives it: the room's event — as it arrived (`received`) when the
/// shell has it, else as parsed — with the connection's name in
/// `requestContext.authorizer.name` when no authorizer put one there, so that a backend always
/// knows who spoke (API Gateway gives an event no name of its own after `$connect`).
pub fn forwarded_event(
    event: &ApiGatewayWebsocketProxyRequest,
    received: Option<&serde_json::Value>,
    name: &str,
) -> Result<Bytes, serde_json::Error> {
    let mut event = match received {
        Some(received) => received.clone(),
        None => serde_json::to_value(event)?,
    };
    if let Some(context) = event
        .get_mut("requestContext")
        .and_then(serde_json::Value::as_object_mut)
    {
        let authorizer = context
            .entry("authorizer")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !authorizer.is_object() {
            *authorizer = serde_json::Value::Object(serde_json::Map::new());
        }
        if let Some(fields) = authorizer.as_object_mut() {
            fields
                .entry(authorizer_context::NAME)
                .or_insert_with(|| serde_json::Value::String(name.to_owned()));
        }
    }
    serde_json::to_vec(&event).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_told_what_failed_but_not_where_the_backend_is() {
        let unreachable = BackendError::Unreachable(
            "client error (Connect): orders.internal resolves only to addresses …".into(),
        );
        assert_eq!(unreachable.for_client(), "it could not be reached");
        assert_eq!(
            BackendError::Status(500).for_client(),
            "it answered HTTP 500"
        );
        assert_eq!(
            BackendError::Timeout(Duration::from_secs(5)).for_client(),
            "it did not answer within 5s"
        );
    }

    #[test]
    fn the_forwarded_event_names_the_connection_unless_its_authorizer_did() {
        let mut event = ApiGatewayWebsocketProxyRequest::default();
        event.request_context.connection_id = Some("abc=".into());
        event.request_context.route_key = Some("notify".into());
        event.body = Some(r#"{"action":"notify"}"#.into());
        let forwarded: serde_json::Value =
            serde_json::from_slice(&forwarded_event(&event, None, "ada").unwrap()).unwrap();
        assert_eq!(forwarded["requestContext"]["authorizer"]["name"], "ada");
        assert_eq!(forwarded["requestContext"]["connectionId"], "abc=");
        assert_eq!(forwarded["requestContext"]["routeKey"], "notify");
        assert_eq!(forwarded["body"], r#"{"action":"notify"}"#);

        event
            .request_context
            .authorizer
            .fields
            .insert("name".into(), "from-token".into());
        let forwarded: serde_json::Value =
            serde_json::from_slice(&forwarded_event(&event, None, "ada").unwrap()).unwrap();
        assert_eq!(
            forwarded["requestContext"]["authorizer"]["name"],
            "from-token"
        );
    }
}
