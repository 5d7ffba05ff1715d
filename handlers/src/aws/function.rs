use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayProxyResponse,
    ApiGatewayWebsocketProxyRequest,
};

use super::authorizer::{AuthorizerError, AuthorizerResponse, authorize};
use super::connections_api::ConnectionsApi;
use super::dynamodb_history::DynamoDbHistory;
use super::dynamodb_store::{DEFAULT_LISTING_CACHE_BYTES, DynamoDbStore};
use super::fanout::{Workers, worker_posts_per_second};
use super::management_sender::{ManagementApiSender, management_endpoint};
use crate::auth::{HttpsKeySource, JwtSettings, JwtSettingsError, NoHttpsClient, Verifier};
use crate::backend::{
    AddressPolicy, BackendConfig, BackendConfigError, BackendLink, HttpBackend, NoBackendClient,
};
use crate::channels::{ChannelSettings, MAX_CHANNELS_PER_CONNECTION};
use crate::chat::{Chat, ChatConfig, ChatError};
use crate::contract::{DEFAULT_FANOUT_POSTS_PER_SECOND, env};
use crate::history::{HistorySettings, MAX_HISTORY_MESSAGES};
use crate::route_selection::{InvalidExpression, RouteSelectionExpression};

/// The function's settings, from the environment the operator gives it.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    pub table_name: String,
    pub chat: ChatConfig,
    pub callback_url: Option<String>,
    pub history: Option<HistoryConfig>,
    /// Set for a room with `spec.auth.jwt`: the function is also its `$connect` authorizer.
    pub auth: Option<JwtSettings>,
    /// Set for a room with `spec.channels`: where subscriptions are kept.
    pub channel_table: Option<String>,
    /// The most bytes of listings a warm function keeps between messages: a quarter of the
    /// memory Lambda gives it (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB).
    pub listing_cache_bytes: usize,
    /// The room's posting budget, across every invocation posting a broadcast.
    pub fanout_posts_per_second: u32,
    /// What one invocation posting a page of a broadcast is given to post a second, by the
    /// function's memory: the budget is split among as few invocations as this allows.
    pub worker_posts_per_second: u32,
    /// Set for a room with `spec.backend`.
    pub backend: Option<BackendConfig>,
    /// The function's own name (`AWS_LAMBDA_FUNCTION_NAME`, which Lambda sets): large
    /// broadcasts are handed to invocations of it. Unset, every broadcast is posted here.
    pub function_name: Option<String>,
}

/// Where and how much history the room keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    pub table_name: String,
    /// `namespace/name`: the partition the room's messages go to.
    pub room: String,
    pub settings: HistorySettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("TABLE_NAME is not set: the function needs the name of its room's DynamoDB table")]
    MissingTableName,
    #[error("ROUTE_SELECTION_EXPRESSION {0}")]
    RouteSelection(#[from] InvalidExpression),
    #[error("BROADCAST_CONCURRENCY must be a whole number from 1 to 1000, got {0:?}")]
    Concurrency(String),
    #[error(transparent)]
    Auth(#[from] JwtSettingsError),
    #[error(transparent)]
    NoHttpsClient(#[from] NoHttpsClient),
    #[error(
        "CHANNELS_PER_CONNECTION must be a whole number from 1 to {MAX_CHANNELS_PER_CONNECTION}, got {0:?}"
    )]
    ChannelsPerConnection(String),
    #[error("FANOUT_POSTS_PER_SECOND must be a whole number from 1 to 1000000, got {0:?}")]
    PostsPerSecond(String),
    #[error(transparent)]
    Backend(#[from] BackendConfigError),
    #[error("BACKEND_URL: {0}")]
    NoBackendClient(#[from] NoBackendClient),
    #[error("HISTORY_TABLE is set, so {name} must be {expected}; got {got:?}")]
    History {
        name: &'static str,
        expected: &'static str,
        got: Option<String>,
    },
}

impl FunctionConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `TABLE_NAME` (required), `MESSAGE_ROUTE`, `ROUTE_SELECTION_EXPRESSION`, `CALLBACK_URL`,
    /// `BROADCAST_CONCURRENCY`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let table_name = get(env::TABLE_NAME).ok_or(ConfigError::MissingTableName)?;
        let mut chat = ChatConfig::default();
        if let Some(route) = get(env::MESSAGE_ROUTE) {
            chat.message_route = route;
        }
        if let Some(expression) = get(env::ROUTE_SELECTION_EXPRESSION) {
            chat.route_selection = RouteSelectionExpression::parse(&expression)?;
        }
        if let Some(raw) = get(env::BROADCAST_CONCURRENCY) {
            chat.broadcast_concurrency = raw
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or(ConfigError::Concurrency(raw))?;
        }
        let history = match get(env::HISTORY_TABLE) {
            None => None,
            Some(table_name) => {
                let messages = get(env::HISTORY_MESSAGES);
                let messages = messages
                    .as_deref()
                    .and_then(|m| m.parse().ok())
                    .filter(|m| (1..=MAX_HISTORY_MESSAGES).contains(m))
                    .ok_or(ConfigError::History {
                        name: env::HISTORY_MESSAGES,
                        expected: "a whole number from 1 to 200",
                        got: messages,
                    })?;
                let retention = get(env::HISTORY_RETENTION_SECONDS);
                let seconds = retention
                    .as_deref()
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|s| *s > 0)
                    .ok_or(ConfigError::History {
                        name: env::HISTORY_RETENTION_SECONDS,
                        expected: "a whole number of seconds above 0",
                        got: retention,
                    })?;
                let room = get(env::ROOM).ok_or(ConfigError::History {
                    name: env::ROOM,
                    expected: "the room's namespace/name",
                    got: None,
                })?;
                Some(HistoryConfig {
                    table_name,
                    room,
                    settings: HistorySettings {
                        messages,
                        retention: Duration::from_secs(seconds),
                    },
                })
            }
        };
        let channel_table = get(env::CHANNEL_TABLE);
        if channel_table.is_some() {
            let mut settings = ChannelSettings::default();
            if let Some(raw) = get(env::CHANNELS_PER_CONNECTION) {
                settings.max_per_connection = raw
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_CHANNELS_PER_CONNECTION).contains(n))
                    .ok_or(ConfigError::ChannelsPerConnection(raw))?;
            }
            chat.channels = Some(settings);
        }
        let memory_mb =
            get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|mb| mb.parse::<u32>().ok());
        let listing_cache_bytes = memory_mb.map_or(DEFAULT_LISTING_CACHE_BYTES, |mb| {
            mb as usize * 1024 * 1024 / 4
        });
        let fanout_posts_per_second = match get(env::FANOUT_POSTS_PER_SECOND) {
            None => DEFAULT_FANOUT_POSTS_PER_SECOND,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or(ConfigError::PostsPerSecond(raw))?,
        };
        let backend = BackendConfig::from_lookup(&lookup)?;
        let auth = JwtSettings::from_lookup(&lookup)?;
        chat.names_from_authorizer = auth.is_some();
        Ok(Self {
            table_name,
            chat,
            callback_url: get(env::CALLBACK_URL),
            history,
            auth,
            channel_table,
            listing_cache_bytes,
            fanout_posts_per_second,
            worker_posts_per_second: worker_posts_per_second(memory_mb),
            backend,
            function_name: get("AWS_LAMBDA_FUNCTION_NAME"),
        })
    }
}

/// The room's Lambda function: one SDK configuration, one store, and a management-API sender
/// per endpoint (one in practice: a function serves one API stage).
pub struct Function {
    pub(super) sdk: aws_config::SdkConfig,
    pub(super) store: DynamoDbStore,
    history: Option<(DynamoDbHistory, HistorySettings)>,
    pub(super) config: FunctionConfig,
    sender: Mutex<Option<(String, ManagementApiSender)>>,
    /// One connection pool for every post of every warm invocation.
    pub(super) connections: ConnectionsApi,
    verifier: Option<Verifier<HttpsKeySource>>,
    /// Invocations of this same function, for large broadcasts.
    pub(super) workers: Option<Workers>,
    backend: Option<BackendLink>,
}

impl Function {
    /// Fails only when no HTTPS client can be made (no system certificate authorities).
    pub fn new(sdk: &aws_config::SdkConfig, config: FunctionConfig) -> Result<Self, ConfigError> {
        let verifier = match &config.auth {
            Some(settings) => Some(Verifier::new(settings.clone(), HttpsKeySource::new()?)),
            None => None,
        };
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let mut store = DynamoDbStore::new(dynamodb.clone(), &config.table_name)
            .with_listing_cache_bytes(config.listing_cache_bytes);
        if let Some(channel_table) = &config.channel_table {
            store = store.with_channel_table(channel_table);
        }
        let history = config.history.as_ref().map(|h| {
            let store = DynamoDbHistory::new(dynamodb.clone(), &h.table_name, &h.room);
            (store, h.settings)
        });
        let backend = match &config.backend {
            None => None,
            Some(backend) => Some(BackendLink {
                forwarded: backend.forwarded.clone(),
                // Outside a VPC a function reaches only the internet; the operator refuses
                // plain-HTTP backends for rooms on AWS.
                backend: Arc::new(HttpBackend::new(
                    &backend.url,
                    backend.secret.clone().map(String::into_bytes),
                    backend.timeout,
                    AddressPolicy::Any,
                )?),
            }),
        };
        let workers = config
            .function_name
            .as_deref()
            .map(|name| Workers::new(sdk, name, config.worker_posts_per_second));
        Ok(Self {
            sdk: sdk.clone(),
            store,
            history,
            config,
            sender: Mutex::default(),
            connections: ConnectionsApi::new(sdk)?,
            verifier,
            workers,
            backend,
        })
    }

    /// The answer to API Gateway's authorizer request for a `$connect`. A room without auth
    /// has no authorizer, so such a request is refused.
    pub async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<AuthorizerResponse, AuthorizerError> {
        match &self.verifier {
            Some(verifier) => authorize(verifier, request).await,
            None => Err(AuthorizerError::Unauthorized),
        }
    }

    pub async fn handle(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        self.dispatch(event, None).await
    }

    /// [`Function::handle`] with the event's JSON as Lambda delivered it, which a room's
    /// backend receives unchanged.
    pub async fn handle_received(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        received: &serde_json::Value,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        self.dispatch(event, Some(received)).await
    }

    async fn dispatch(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        received: Option<&serde_json::Value>,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let (store, sender, config) = (
            self.store.clone(),
            self.sender_for(event),
            self.config.chat.clone(),
        );
        let chat = Chat::with_history(store, sender, config, self.history.clone())
            .with_backend(self.backend.clone());
        chat.dispatch(event, received).await
    }

    fn sender_for(&self, event: &ApiGatewayWebsocketProxyRequest) -> ManagementApiSender {
        let context = &event.request_context;
        let endpoint = management_endpoint(
            self.config.callback_url.as_deref(),
            context.domain_name.as_deref().unwrap_or_default(),
            context.stage.as_deref().unwrap_or_default(),
        );
        let mut cached = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        match cached.as_ref() {
            Some((known, sender)) if *known == endpoint => sender.clone(),
            _ => {
                let budget = f64::from(self.config.fanout_posts_per_second);
                let mut sender =
                    ManagementApiSender::new(self.connections.clone(), &endpoint).paced(budget);
                if let Some(workers) = &self.workers {
                    sender = sender.with_workers(workers.clone());
                }
                *cached = Some((endpoint, sender.clone()));
                sender
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<FunctionConfig, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FunctionConfig::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn table_name_is_required_with_a_message_that_says_so() {
        let error = config(&[("MESSAGE_ROUTE", "say")]).unwrap_err();
        assert!(
            error.to_string().starts_with("TABLE_NAME is not set"),
            "{error}"
        );
        assert!(matches!(
            config(&[("TABLE_NAME", " ")]),
            Err(ConfigError::MissingTableName)
        ));
    }

    #[test]
    fn settings_come_from_the_environment() {
        let config = config(&[
            ("TABLE_NAME", "chat-lobby"),
            ("MESSAGE_ROUTE", "say"),
            ("ROUTE_SELECTION_EXPRESSION", "$request.body.meta.kind"),
            ("BROADCAST_CONCURRENCY", "16"),
            ("CALLBACK_URL", "http://127.0.0.1:1/x/@connections"),
        ])
        .unwrap();
        assert_eq!(config.table_name, "chat-lobby");
        assert_eq!(config.chat.message_route, "say");
        assert_eq!(config.chat.broadcast_concurrency, 16);
        assert_eq!(
            config.callback_url.as_deref(),
            Some("http://127.0.0.1:1/x/@connections")
        );
    }

    #[test]
    fn history_comes_with_its_table_size_retention_and_room() {
        let with_history = config(&[
            ("TABLE_NAME", "t"),
            ("HISTORY_TABLE", "t-history"),
            ("HISTORY_MESSAGES", "50"),
            ("HISTORY_RETENTION_SECONDS", "86400"),
            ("ROOM", "default/lobby"),
        ])
        .unwrap();
        assert_eq!(
            with_history.history,
            Some(HistoryConfig {
                table_name: "t-history".into(),
                room: "default/lobby".into(),
                settings: HistorySettings {
                    messages: 50,
                    retention: Duration::from_secs(86_400)
                },
            })
        );
        assert_eq!(config_without_history().history, None);
        let error = config(&[
            ("TABLE_NAME", "t"),
            ("HISTORY_TABLE", "t-history"),
            ("HISTORY_MESSAGES", "201"),
        ])
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("HISTORY_MESSAGES must be a whole number from 1 to 200"),
            "{error}"
        );
    }

    fn config_without_history() -> FunctionConfig {
        config(&[("TABLE_NAME", "t")]).unwrap()
    }

    #[test]
    fn the_listing_cache_is_a_quarter_of_the_functions_memory() {
        let off_lambda = config_without_history();
        assert_eq!(off_lambda.listing_cache_bytes, DEFAULT_LISTING_CACHE_BYTES);
        let on_lambda = config(&[
            ("TABLE_NAME", "t"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769"),
        ])
        .unwrap();
        assert_eq!(on_lambda.listing_cache_bytes, 1769 * 1024 * 1024 / 4);
    }

    #[test]
    fn channels_come_with_their_table_and_bound() {
        assert_eq!(config_without_history().chat.channels, None);
        let on = config(&[("TABLE_NAME", "t"), ("CHANNEL_TABLE", "t-channels")]).unwrap();
        assert_eq!(on.channel_table.as_deref(), Some("t-channels"));
        assert_eq!(on.chat.channels, Some(ChannelSettings::default()));
        let bounded = config(&[
            ("TABLE_NAME", "t"),
            ("CHANNEL_TABLE", "t-channels"),
            ("CHANNELS_PER_CONNECTION", "3"),
        ])
        .unwrap();
        assert_eq!(bounded.chat.channels.unwrap().max_per_connection, 3);
        let error = config(&[
            ("TABLE_NAME", "t"),
            ("CHANNEL_TABLE", "t-channels"),
            ("CHANNELS_PER_CONNECTION", "101"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("from 1 to 100"), "{error}");
    }

    #[test]
    fn a_backend_is_read_with_the_rest_and_its_errors_stop_the_start() {
        let on = config(&[
            ("TABLE_NAME", "t"),
            ("BACKEND_URL", "https://backend.example.com/chat"),
            ("BACKEND_ROUTES", "notify"),
        ])
        .unwrap();
        assert_eq!(on.backend.unwrap().forwarded.routes, ["notify"]);
        assert_eq!(config_without_history().backend, None);
        let error = config(&[
            ("TABLE_NAME", "t"),
            ("BACKEND_URL", "https://backend.example.com/chat"),
            ("BACKEND_EVENTS", "message"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("BACKEND_EVENTS"), "{error}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(
            config(&[("TABLE_NAME", "t"), ("BROADCAST_CONCURRENCY", "0")]),
            Err(ConfigError::Concurrency(_))
        ));
        assert!(matches!(
            config(&[
                ("TABLE_NAME", "t"),
                ("ROUTE_SELECTION_EXPRESSION", "action")
            ]),
            Err(ConfigError::RouteSelection(_))
        ));
    }

    #[test]
    fn the_endpoint_comes_from_the_event_unless_a_callback_url_is_set() {
        assert_eq!(
            management_endpoint(None, "abc.execute-api.eu-west-1.amazonaws.com", "dev"),
            "https://abc.execute-api.eu-west-1.amazonaws.com/dev"
        );
        assert_eq!(
            management_endpoint(
                Some("http://127.0.0.1:8080/default/lobby/dev/@connections"),
                "x",
                "dev"
            ),
            "http://127.0.0.1:8080/default/lobby/dev"
        );
        assert_eq!(
            management_endpoint(Some("https://chat.example.com/dev/"), "x", "dev"),
            "https://chat.example.com/dev"
        );
    }
}
