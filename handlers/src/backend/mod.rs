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

use crate::contract::{MAX_POST_BYTES, authorizer_context, env};

/// How long the backend has to answer, connection included, unless the room says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a room may give it: inside API Gateway's 29 s integration timeout.
pub const MAX_TIMEOUT_SECONDS: u64 = 25;

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

/// A room's backend as the operator hands it to the function (`BACKEND_*`), written and read
/// here so that both sides agree.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub url: String,
    pub forwarded: Forwarded,
    /// The signing key; `None`, requests go unsigned (a loopback backend only).
    pub secret: Option<String>,
    pub timeout: Duration,
}

/// Never prints the key.
impl std::fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConfig")
            .field("url", &self.url)
            .field("forwarded", &self.forwarded)
            .field("signed", &self.secret.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("BACKEND_URL is set, so {name} must be {expected}; got {got:?}")]
pub struct BackendConfigError {
    pub name: &'static str,
    pub expected: &'static str,
    pub got: String,
}

impl BackendConfig {
    /// The backend in the function's environment, or `None` when the room has none
    /// (`BACKEND_URL` unset); empty values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, BackendConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let Some(url) = get(env::BACKEND_URL) else {
            return Ok(None);
        };
        let list = |name: &str| env::list_items(&get(name).unwrap_or_default());
        let mut forwarded = Forwarded {
            routes: list(env::BACKEND_ROUTES),
            ..Forwarded::default()
        };
        for event in list(env::BACKEND_EVENTS) {
            match event.as_str() {
                CONNECT => forwarded.connect = true,
                DISCONNECT => forwarded.disconnect = true,
                _ => {
                    return Err(BackendConfigError {
                        name: env::BACKEND_EVENTS,
                        expected: "connect, disconnect or both, comma-separated",
                        got: event,
                    });
                }
            }
        }
        let timeout = match get(env::BACKEND_TIMEOUT_SECONDS) {
            None => DEFAULT_TIMEOUT,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=MAX_TIMEOUT_SECONDS).contains(s))
                .map(Duration::from_secs)
                .ok_or(BackendConfigError {
                    name: env::BACKEND_TIMEOUT_SECONDS,
                    expected: "a whole number of seconds from 1 to 25",
                    got: raw,
                })?,
        };
        Ok(Some(Self {
            url,
            forwarded,
            secret: get(env::BACKEND_SECRET),
            timeout,
        }))
    }

    /// The environment the operator gives the function for this backend.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (env::BACKEND_URL, self.url.clone()),
            (
                env::BACKEND_TIMEOUT_SECONDS,
                self.timeout.as_secs().to_string(),
            ),
        ];
        if !self.forwarded.routes.is_empty() {
            vars.push((env::BACKEND_ROUTES, self.forwarded.routes.join(",")));
        }
        let events: Vec<&str> = [
            (self.forwarded.connect, CONNECT),
            (self.forwarded.disconnect, DISCONNECT),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if !events.is_empty() {
            vars.push((env::BACKEND_EVENTS, events.join(",")));
        }
        if let Some(secret) = &self.secret {
            vars.push((env::BACKEND_SECRET, secret.clone()));
        }
        vars
    }
}

const CONNECT: &str = "connect";
const DISCONNECT: &str = "disconnect";

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

    fn lookup(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let pairs = pairs.to_vec();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_backend_comes_with_its_routes_events_key_and_timeout() {
        assert_eq!(BackendConfig::from_lookup(lookup(&[])), Ok(None));
        let on = BackendConfig::from_lookup(lookup(&[
            ("BACKEND_URL", "https://backend.example.com/chat"),
            ("BACKEND_ROUTES", "notify, order"),
            ("BACKEND_EVENTS", "connect,disconnect"),
            ("BACKEND_SECRET", "k"),
            ("BACKEND_TIMEOUT_SECONDS", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(on.forwarded.routes, ["notify", "order"]);
        assert!(on.forwarded.connect && on.forwarded.disconnect);
        assert_eq!(on.timeout, Duration::from_secs(2));
        assert!(
            !format!("{on:?}").contains("\"k\""),
            "the key is never printed"
        );
        let error = BackendConfig::from_lookup(lookup(&[
            ("BACKEND_URL", "https://backend.example.com/chat"),
            ("BACKEND_EVENTS", "message"),
        ]))
        .unwrap_err();
        assert_eq!(error.name, "BACKEND_EVENTS");
        let error = BackendConfig::from_lookup(lookup(&[
            ("BACKEND_URL", "https://backend.example.com/chat"),
            ("BACKEND_TIMEOUT_SECONDS", "26"),
        ]))
        .unwrap_err();
        assert_eq!(error.name, "BACKEND_TIMEOUT_SECONDS");
    }

    #[test]
    fn what_the_operator_writes_the_function_reads_back() {
        let config = BackendConfig {
            url: "https://backend.example.com/chat".into(),
            forwarded: Forwarded {
                routes: vec!["notify".into(), "order".into()],
                connect: false,
                disconnect: true,
            },
            secret: Some("k3y".into()),
            timeout: Duration::from_secs(3),
        };
        let env = config.to_env();
        let read = BackendConfig::from_lookup(|name| {
            env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        });
        assert_eq!(read, Ok(Some(config)));
    }

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
