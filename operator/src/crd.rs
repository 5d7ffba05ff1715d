//! The `ChatRoom` API (`chatroom.dev/v1alpha1`).
//!
//! Every rule a field must follow is declared here, in the schema the API server enforces;
//! [`crate::validate`] enforces the same rules for files that never meet an API server, and its
//! tests check both agree.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const STAGE_PATTERN: &str = r"^[A-Za-z0-9_-]{1,128}$";
/// Stricter than AWS (any string not starting with `$`): a route key a chat client types.
pub const MESSAGE_ROUTE_PATTERN: &str = r"^[A-Za-z0-9_.:-]{1,128}$";
pub const ROUTE_SELECTION_PATTERN: &str = r"^\$request\.body\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$";
pub const ROLE_ARN_PATTERN: &str =
    r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$";
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// AWS allows 50 tags per resource; the operator keeps the rest for its ownership tags.
pub const MAX_USER_TAGS: usize = 40;
/// Tag keys the operator writes itself, and AWS's own prefix.
pub const RESERVED_TAG_PREFIXES: [&str; 2] = ["aws:", "chatroom.dev/"];
/// AWS's tag limits, in characters.
pub const MAX_TAG_KEY_CHARS: usize = 128;
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// The characters AWS accepts in tag keys and values: letters, digits, spaces and `_.:/=+-@`.
/// <https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html>
pub const TAG_PATTERN: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$";
/// Route keys every room has besides its message route (the handlers' contract).
/// `subscribe` and `unsubscribe` are reserved in every room, so that turning channels on never
/// takes a route a room already uses.
pub const RESERVED_ROUTES: [&str; 4] = [
    chatroom_handlers::contract::routes::WHO,
    chatroom_handlers::contract::routes::HISTORY,
    chatroom_handlers::contract::routes::SUBSCRIBE,
    chatroom_handlers::contract::routes::UNSUBSCRIBE,
];
/// Whole hours or days; [`HistorySpec::retention`] keeps it within 1 h and 30 d.
pub const RETENTION_PATTERN: &str = r"^[1-9][0-9]{0,5}[hd]$";
pub const MIN_RETENTION_HOURS: u64 = 1;
/// `querystring.<name>` or `header.<name>`, as the handlers' `IdentitySource` reads it.
pub const IDENTITY_SOURCE_PATTERN: &str = r"^(querystring|header)\.[A-Za-z0-9_-]{1,128}$";
/// A DNS name in lower case with at least two labels, as API Gateway's custom domains take.
pub const DOMAIN_NAME_PATTERN: &str =
    r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$";
pub const CERTIFICATE_ARN_PATTERN: &str =
    r"^arn:aws[a-z-]*:acm:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:certificate/[A-Za-z0-9-]{1,128}$";
/// An API mapping key: empty (the domain's root) or one path segment of what a WebSocket API's
/// mapping may hold: "letters, numbers, and the following characters: $-_.+!*'()", at most 300.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-mappings.html#websocket-api-mappings-restrictions>
pub const BASE_PATH_PATTERN: &str = r"^[A-Za-z0-9$_.+!*'()-]{0,300}$";
pub const MAX_RETENTION_HOURS: u64 = 30 * 24;
/// A Secret's name (a DNS subdomain) and one of its keys, as Kubernetes takes them.
pub const SECRET_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// A serverless, real-time WebSocket chat room.
// `printcolumn(...)` repeats by design; clippy reads the repeated `type_ = "string"` as a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "chatroom.dev",
    version = "v1alpha1",
    kind = "ChatRoom",
    plural = "chatrooms",
    shortname = "room",
    namespaced,
    status = "ChatRoomStatus",
    doc = "A serverless, real-time WebSocket chat room: an API Gateway WebSocket API, a Lambda function and a DynamoDB table of connections",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.websocketUrl"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "What the room should be; every field has a default.",
    extend("x-kubernetes-validations" = [{
        "rule": "!has(self.backend) || !has(self.backend.routes) || !has(self.messageRoute) || !(self.messageRoute in self.backend.routes)",
        "fieldPath": ".backend.routes",
        "message": "must not hold spec.messageRoute: that route broadcasts"
    }])
)]
pub struct ChatRoomSpec {
    /// Stage name: the last path segment of the WebSocket URL.
    #[serde(default = "default_stage")]
    #[schemars(regex(pattern = STAGE_PATTERN))]
    pub stage: String,

    /// The custom route whose messages are broadcast to every connection (or, naming a
    /// `channel`, to its subscribers); not `who`, `history`, `subscribe` or `unsubscribe`.
    #[serde(default = "default_message_route")]
    #[schemars(
        regex(pattern = MESSAGE_ROUTE_PATTERN),
        extend("x-kubernetes-validations" = reserved_route_rules())
    )]
    pub message_route: String,

    /// Where API Gateway finds the route key in a message: `$request.body.<dotted path>`.
    #[serde(default = "default_route_selection_expression")]
    #[schemars(regex(pattern = ROUTE_SELECTION_PATTERN))]
    pub route_selection_expression: String,

    #[serde(default)]
    pub connection_table: ConnectionTableSpec,

    #[serde(default)]
    pub function: FunctionSpec,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<ThrottlingSpec>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistorySpec>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<ChannelsSpec>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutSpec>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendSpec>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainSpec>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogSpec>,

    /// AWS region; the operator's default region when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,

    /// Extra tags for every AWS resource of this room.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(
        transform = bounded_tag_values,
        extend(
            "maxProperties" = MAX_USER_TAGS,
            "x-kubernetes-validations" = tag_rules()
        )
    )]
    pub tags: BTreeMap<String, String>,
}

impl Default for ChatRoomSpec {
    fn default() -> Self {
        Self {
            stage: default_stage(),
            message_route: default_message_route(),
            route_selection_expression: default_route_selection_expression(),
            connection_table: ConnectionTableSpec::default(),
            function: FunctionSpec::default(),
            throttling: None,
            history: None,
            channels: None,
            fanout: None,
            auth: None,
            backend: None,
            domain: None,
            access_log: None,
            region: None,
            tags: BTreeMap::new(),
        }
    }
}

/// The DynamoDB table of connection ids.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.billingMode == 'PROVISIONED' ? (has(self.readCapacity) && has(self.writeCapacity)) : (!has(self.readCapacity) && !has(self.writeCapacity))",
    "message": "readCapacity and writeCapacity are required when billingMode is PROVISIONED, and not allowed otherwise"
}]))]
pub struct ConnectionTableSpec {
    /// What happens to the table when the ChatRoom is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// `PAY_PER_REQUEST` (on-demand, the default) or `PROVISIONED` with the two capacities.
    #[serde(default)]
    pub billing_mode: BillingMode,
    /// Reads per second the table is provisioned for; only with `PROVISIONED`, then required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub read_capacity: Option<i64>,
    /// Writes per second the table is provisioned for; only with `PROVISIONED`, then required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub write_capacity: Option<i64>,
    /// Continuous backups that restore the table to any second of the last 35 days.
    #[serde(default)]
    pub point_in_time_recovery: bool,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingMode {
    #[default]
    PayPerRequest,
    Provisioned,
}

/// The room's Lambda function.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    /// Memory for the function in MB (128–10240); Lambda gives CPU in proportion.
    #[serde(default = "default_memory_mb", rename = "memoryMB")]
    #[schemars(range(min = 128, max = 10240))]
    pub memory_mb: i32,
    /// At most 29 s: API Gateway's integration timeout.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 29))]
    pub timeout_seconds: i32,
    /// Bring your own execution role instead of the operator's least-privilege one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN_PATTERN))]
    pub role_arn: Option<String>,
    /// The processor the function runs on: `x86_64` (the default) or `arm64`.
    #[serde(default)]
    pub architecture: Architecture,
    /// Days the function's log group (`/aws/lambda/{function}`) keeps its logs; one of the
    /// values CloudWatch Logs accepts.
    #[serde(default = "default_log_retention_days")]
    #[schemars(extend("enum" = LOG_RETENTION_DAYS))]
    pub log_retention_days: i32,
}

impl Default for FunctionSpec {
    fn default() -> Self {
        Self {
            memory_mb: default_memory_mb(),
            timeout_seconds: default_timeout_seconds(),
            role_arn: None,
            architecture: Architecture::default(),
            log_retention_days: default_log_retention_days(),
        }
    }
}

/// The retention periods CloudWatch Logs accepts, in days.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html>
pub const LOG_RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Architecture {
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

/// Stage-wide throttling of client messages; without it, the AWS account's limits apply. Both
/// limits are required: API Gateway reads a missing one as 0, which lets nothing through.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThrottlingSpec {
    /// Requests that may arrive at once (the token bucket's size); at least 1.
    #[schemars(range(min = 1))]
    pub burst_limit: i32,
    /// Requests per second in the long run; more than 0.
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub rate_limit: f64,
}

/// Channels: clients send `{"action":"subscribe","channel":"c"}` and a message naming
/// `"channel":"c"` reaches only that channel's subscribers. On AWS the room gets a second
/// DynamoDB table for subscriptions (`status.channelTableName`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelsSpec {
    /// The most channels one connection may be subscribed to at once, 1–100 (default 10).
    #[serde(default = "default_channels_per_connection")]
    #[schemars(range(min = 1, max = 100))]
    pub max_per_connection: i32,
}

impl Default for ChannelsSpec {
    fn default() -> Self {
        Self {
            max_per_connection: default_channels_per_connection(),
        }
    }
}

fn default_channels_per_connection() -> i32 {
    i32::try_from(chatroom_handlers::channels::DEFAULT_CHANNELS_PER_CONNECTION).unwrap_or(10)
}

impl ChatRoomSpec {
    /// The room's channel settings, or `None` for a room without channels. Validation refuses
    /// a bound outside 1–100; a spec that skipped it gets the nearest bound.
    pub fn channel_settings(&self) -> Option<chatroom_handlers::channels::ChannelSettings> {
        use chatroom_handlers::channels::MAX_CHANNELS_PER_CONNECTION;
        let most = usize::try_from(self.channels.as_ref()?.max_per_connection).unwrap_or(1);
        Some(chatroom_handlers::channels::ChannelSettings {
            max_per_connection: most.clamp(1, MAX_CHANNELS_PER_CONNECTION),
        })
    }
}

/// How fast one broadcast may go out. API Gateway allows each account and Region 10,000
/// requests a second (burst 5,000), every API's messages and `@connections` posts together; a
/// broadcast to N connections is N posts. Past 1,000 recipients the room's function hands the
/// broadcast, 1,000 to a page, to invocations of itself that post in parallel within this
/// budget, so a broadcast takes about N / postsPerSecond seconds.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FanoutSpec {
    /// Posts a second for one broadcast, 1–1,000,000 (default 5,000: half the account's
    /// default rate). More than the account's quota only earns 429s, which are retried.
    #[serde(default = "default_posts_per_second")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub posts_per_second: i32,
}

impl Default for FanoutSpec {
    fn default() -> Self {
        Self {
            posts_per_second: default_posts_per_second(),
        }
    }
}

fn default_posts_per_second() -> i32 {
    i32::try_from(chatroom_handlers::contract::DEFAULT_FANOUT_POSTS_PER_SECOND).unwrap_or(5_000)
}

/// Who may join: without it, anyone who knows the URL.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    pub jwt: JwtSpec,
}

/// Clients present a JWT at `$connect`; the room's authorizer checks its signature (RS256 or
/// ES256, by `kid` from the issuer's keys), issuer, audience and times before the connection
/// exists, and the sender's name comes from the token.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtSpec {
    /// The token's `iss` must equal this, e.g. `https://login.example.com/`.
    #[schemars(length(min = 1, max = 2048))]
    pub issuer: String,
    /// The token's `aud` must hold one of these.
    #[schemars(length(min = 1, max = 20), inner(length(min = 1, max = 256)))]
    pub audiences: Vec<String>,
    /// The issuer's JSON Web Key Set: `https://`, or `http://` to a loopback address only.
    #[schemars(
        length(min = 1, max = 2048),
        extend("x-kubernetes-validations" = https_or_loopback_rules())
    )]
    pub jwks_uri: String,
    /// Where clients put the token: `querystring.token` (the default: `wss://…?token=…`,
    /// which browsers can send) or `header.<name>` (e.g. `header.Authorization`, with or
    /// without `Bearer `).
    #[serde(default = "default_identity_source")]
    #[schemars(regex(pattern = IDENTITY_SOURCE_PATTERN))]
    pub identity_source: String,
    /// The claim that names the sender; unset, `name`, else `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub name_claim: Option<String>,
}

impl JwtSpec {
    /// The settings the authorizer checks tokens with; `None` for an identity source that
    /// validation refuses.
    pub fn settings(&self) -> Option<chatroom_handlers::auth::JwtSettings> {
        use chatroom_handlers::auth::{IdentitySource, JwtSettings};
        Some(JwtSettings {
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            jwks_uri: self.jwks_uri.clone(),
            identity_source: IdentitySource::parse(&self.identity_source).ok()?,
            name_claim: self.name_claim.clone(),
        })
    }
}

fn default_identity_source() -> String {
    "querystring.token".to_owned()
}

/// The room's own backend: messages on `routes` and the `events` it asks for reach `url` as an
/// HTTP POST whose body is API Gateway's WebSocket event, signed with the Secret's key; what it
/// answers to a message goes back to the sender. It pushes to any client later through
/// `status.callbackUrl` (`@connections`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!self.url.startsWith('https://') || has(self.secretRef)",
    "fieldPath": ".secretRef",
    "message": "is required for an https backend: every request to it is signed"
}]))]
pub struct BackendSpec {
    /// `https://`, or `http://` to a loopback address (the local gateway and tests; a room on
    /// AWS needs `https://`).
    #[schemars(
        length(min = 1, max = 2048),
        extend("x-kubernetes-validations" = https_or_loopback_rules())
    )]
    pub url: String,
    /// Custom routes whose messages go to the backend: route keys like `messageRoute`, not it
    /// and not `who`, `history`, `subscribe` or `unsubscribe`; at most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(regex(pattern = MESSAGE_ROUTE_PATTERN), length(max = 128)),
        extend(
            "x-kubernetes-list-type" = "set",
            "x-kubernetes-validations" = reserved_backend_route_rules()
        )
    )]
    pub routes: Vec<String>,
    /// Arrivals and departures the backend hears of: `connect`, `disconnect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2), extend("x-kubernetes-list-type" = "set"))]
    pub events: Vec<BackendEvent>,
    /// The key every request is signed with, from a Secret in the room's namespace. Required
    /// for `https://`; a loopback `http://` backend may go unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// How long the backend has to answer, 1-25 s (default 5); on AWS also less than the
    /// function's own timeout.
    #[serde(default = "default_backend_timeout")]
    #[schemars(range(min = 1, max = 25))]
    pub timeout_seconds: i32,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendEvent {
    Connect,
    Disconnect,
}

/// One key of a Secret in the room's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub name: String,
    /// The key within the Secret whose value is the signing key.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

impl BackendSpec {
    /// What of the room goes to the backend.
    pub fn forwarded(&self) -> chatroom_handlers::backend::Forwarded {
        chatroom_handlers::backend::Forwarded {
            routes: self.routes.clone(),
            connect: self.events.contains(&BackendEvent::Connect),
            disconnect: self.events.contains(&BackendEvent::Disconnect),
        }
    }

    /// How long the backend has to answer. Validation refuses a value outside 1-25 s; a spec
    /// that skipped it gets the nearest bound.
    pub fn timeout(&self) -> std::time::Duration {
        use chatroom_handlers::backend::MAX_TIMEOUT_SECONDS;
        let seconds = u64::try_from(self.timeout_seconds).unwrap_or(1);
        std::time::Duration::from_secs(seconds.clamp(1, MAX_TIMEOUT_SECONDS))
    }
}

fn default_backend_timeout() -> i32 {
    i32::try_from(chatroom_handlers::backend::DEFAULT_TIMEOUT.as_secs()).unwrap_or(5)
}

/// A URL the room calls: as `https_or_loopback_problem()` reads it, loopback being localhost,
/// 127.x.y.z and [::1].
fn https_or_loopback_rules() -> serde_json::Value {
    // A raw CEL string (r'…'): in a plain one `\.` is no escape and the rule does not compile.
    serde_json::json!([{
        "rule": r"self.startsWith('https://') || self.matches(r'^http://(localhost|127(\.[0-9]{1,3}){3}|\[::1\])(:[0-9]{1,5})?(/.*)?$')",
        "message": "must be an https URL (plain http only to a loopback address)"
    }])
}

/// [`RESERVED_ROUTES`] as a CEL list: `['who', 'history', …]`.
fn reserved_routes_in_cel() -> String {
    let quoted: Vec<String> = RESERVED_ROUTES.iter().map(|r| format!("'{r}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A backend route may not take a route every room has.
fn reserved_backend_route_rules() -> serde_json::Value {
    serde_json::json!([{
        "rule": format!("self.all(r, !(r in {}))", reserved_routes_in_cel()),
        "message": format!("must not hold {}: every room has those routes", RESERVED_ROUTES.join(" or ")),
    }])
}

/// A custom domain for the room's WebSocket URL: a regional API Gateway domain name with an
/// API mapping to the room's stage. Point DNS (a CNAME or alias) at `status.domainTarget`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainSpec {
    /// The domain clients connect to, e.g. `chat.example.com` (lower case).
    #[schemars(regex(pattern = DOMAIN_NAME_PATTERN), length(max = 253))]
    pub name: String,
    /// A regional ACM certificate for the domain, in the room's region.
    #[schemars(regex(pattern = CERTIFICATE_ARN_PATTERN))]
    pub certificate_arn: String,
    /// The path under the domain that leads to this room (the API mapping key): one segment of
    /// at most 300 letters, digits and $ - _ . + ! * ' ( ); empty for the domain's root.
    #[serde(default)]
    #[schemars(regex(pattern = BASE_PATH_PATTERN))]
    pub base_path: String,
}

/// Stage access logs: one JSON line per connect, message and disconnect, in a log group the
/// operator makes (`/aws/apigateway/{api}/{stage}` style, deleted with the room). API Gateway
/// writes them only once the account has a CloudWatch Logs role in its API Gateway settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSpec {
    /// Days the access log group keeps its logs; one of the values CloudWatch Logs accepts.
    #[serde(default = "default_access_log_retention_days")]
    #[schemars(extend("enum" = LOG_RETENTION_DAYS))]
    pub retention_days: i32,
}

fn default_access_log_retention_days() -> i32 {
    7
}

/// The room's last messages, kept so that a newcomer (or a client reconnecting) can ask for
/// them with `{"action":"history"}`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistorySpec {
    /// How many of the last messages a `history` answer holds, 0–200; 0 keeps none.
    #[serde(default)]
    #[schemars(range(min = 0, max = 200))]
    pub messages: i32,
    /// How long a message is kept: whole hours or days from `1h` to `30d` (default `24h`).
    #[serde(default = "default_history_retention")]
    #[schemars(
        regex(pattern = RETENTION_PATTERN),
        extend("x-kubernetes-validations" = retention_rules())
    )]
    pub retention: String,
}

impl HistorySpec {
    /// The retention, when it is whole hours or days within 1 h and 30 d.
    pub fn retention(&self) -> Option<std::time::Duration> {
        let (number, unit) = self
            .retention
            .split_at(self.retention.len().checked_sub(1)?);
        // As RETENTION_PATTERN: 1-6 digits, no leading zero (and no sign, which parse takes).
        let digits = number.len() <= 6
            && number.bytes().all(|b| b.is_ascii_digit())
            && !number.starts_with('0');
        let hours =
            number.parse::<u64>().ok().filter(|_| digits)? * if unit == "d" { 24 } else { 1 };
        (unit == "h" || unit == "d")
            .then_some(hours)
            .filter(|h| (MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(h))
            .map(|h| std::time::Duration::from_secs(h * 3600))
    }

    /// History is on: it keeps at least one message.
    pub fn is_on(&self) -> bool {
        self.messages > 0
    }
}

impl ChatRoomSpec {
    /// How much history the room keeps, or `None` when it keeps none. Validation refuses a
    /// retention this cannot read; a spec that skipped validation keeps the default day.
    pub fn history_settings(&self) -> Option<chatroom_handlers::HistorySettings> {
        let history = self.history.as_ref().filter(|h| h.is_on())?;
        Some(chatroom_handlers::HistorySettings {
            messages: usize::try_from(history.messages)
                .unwrap_or(chatroom_handlers::MAX_HISTORY_MESSAGES),
            retention: history
                .retention()
                .unwrap_or(std::time::Duration::from_secs(24 * 3600)),
        })
    }
}

fn default_history_retention() -> String {
    "24h".to_owned()
}

/// What the operator last made of the room.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatRoomStatus {
    /// The `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and one per part: `TableReady`, `FunctionReady`, `ApiReady`; a `False` one
    /// names AWS's error code (or the operator's own) as its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where clients connect: `wss://…/{stage}` on AWS, `ws://…` locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket_url: Option<String>,
    /// The `@connections` management endpoint for back-end pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The API Gateway WebSocket API's id; a restarted operator finds the API by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_id: Option<String>,
    /// The deployed stage's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The DynamoDB table of the room's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// The DynamoDB table of the room's messages, while it keeps history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_table_name: Option<String>,
    /// The DynamoDB table of channel subscriptions, while the room has channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_table_name: Option<String>,
    /// The Lambda function that handles every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    /// The function's ARN, as API Gateway's integration invokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    /// The role the function runs as: the operator's own, or `spec.function.roleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The custom domain the operator made for `spec.domain`; a room that drops or renames it
    /// has this one deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    /// With `spec.domain`: the regional name to point the domain's DNS record (a CNAME or an
    /// alias) at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_target: Option<String>,
}

fn default_stage() -> String {
    "dev".to_owned()
}

fn default_message_route() -> String {
    "onMessage".to_owned()
}

fn default_route_selection_expression() -> String {
    "$request.body.action".to_owned()
}

fn default_memory_mb() -> i32 {
    128
}

fn default_timeout_seconds() -> i32 {
    10
}

fn default_log_retention_days() -> i32 {
    14
}

impl ChatRoom {
    /// `(namespace, name)`, with Kubernetes' `default` namespace when none is set.
    pub fn identity(&self) -> (String, String) {
        (
            self.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            self.metadata.name.clone().unwrap_or_default(),
        )
    }
}

/// `spec.messageRoute` may not take a route every room has.
fn reserved_route_rules() -> serde_json::Value {
    serde_json::json!([{
        "rule": format!("!(self in {})", reserved_routes_in_cel()),
        "message": format!("must not be {}: every room has those routes", RESERVED_ROUTES.join(" or ")),
    }])
}

/// `spec.history.retention` within 1 h and 30 d, once the pattern holds.
fn retention_rules() -> serde_json::Value {
    let rule = format!(
        "!self.matches('{RETENTION_PATTERN}') || (int(self.substring(0, size(self) - 1)) * (self.endsWith('d') ? 24 : 1) >= {MIN_RETENTION_HOURS} && int(self.substring(0, size(self) - 1)) * (self.endsWith('d') ? 24 : 1) <= {MAX_RETENTION_HOURS})"
    );
    serde_json::json!([{
        "rule": rule,
        "message": "must be from 1h to 30d",
    }])
}

/// Tag values bounded in the schema itself: the API server prices a CEL rule by the longest
/// string it may walk, and prices a string with no `maxLength` at the request's size (~3 MiB),
/// which put the tag rules ten times over the per-rule budget.
fn bounded_tag_values(schema: &mut schemars::Schema) {
    schema.insert(
        "additionalProperties".to_owned(),
        serde_json::json!({ "type": "string", "maxLength": MAX_TAG_VALUE_CHARS }),
    );
}

/// The CEL rule the API server checks `spec.tags` with: the constants above, as CEL.
fn tag_rules() -> serde_json::Value {
    let reserved: Vec<String> = RESERVED_TAG_PREFIXES
        .iter()
        .map(|prefix| format!("!k.startsWith('{prefix}')"))
        .collect();
    let rule = format!(
        "self.all(k, size(k) >= 1 && size(k) <= {MAX_TAG_KEY_CHARS} && {} && size(self[k]) <= {MAX_TAG_VALUE_CHARS})",
        reserved.join(" && ")
    );
    let message = format!(
        "tag keys are 1-{MAX_TAG_KEY_CHARS} characters and must not start with {}; values are at most {MAX_TAG_VALUE_CHARS} characters",
        RESERVED_TAG_PREFIXES.join(" or ")
    );
    // A raw CEL string, so that the regex's backslashes reach RE2 as they are.
    let characters =
        format!("self.all(k, k.matches(r'{TAG_PATTERN}') && self[k].matches(r'{TAG_PATTERN}'))");
    serde_json::json!([
        { "rule": rule, "message": message },
        {
            "rule": characters,
            "message": "tag keys and values may hold only letters, digits, spaces and _ . : / = + - @"
        }
    ])
}

/// The CRD as YAML, exactly as committed under `crds/`: keys sorted at every level, so that the
/// output does not depend on whether some dependency turned on serde_json's `preserve_order`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(ChatRoom::crd())
        .map_err(<serde_yaml::Error as serde::ser::Error>::custom)?;
    serde_yaml::to_string(&chatroom_handlers::sorted_keys(crd))
}
