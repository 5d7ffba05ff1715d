//! The `aws` provider: a ChatRoom becomes a DynamoDB table, an IAM role, a Lambda function and
//! an API Gateway WebSocket API.
//!
//! Each resource has a module with the same shape: a pure `desired` (spec → what AWS should
//! hold), `observe` (what AWS holds), a pure `diff` (the typed [`change::Change`]s between the
//! two) and the calls that carry the changes out. [`pipeline`] runs the resources in
//! dependency order and reports what it reached. Converging twice changes nothing, and a crash
//! at any point is repaired by the next run: names are deterministic ([`naming`]) and
//! ownership is in tags ([`tags`]).

mod api;
pub mod arn_pattern;
mod authorizer;
mod calls;
#[cfg(test)]
mod canned;
mod change;
mod domain;
mod error;
mod function;
mod handler_zip;
mod integration;
mod log_group;
mod naming;
pub mod operator_policy;
mod permission;
mod pipeline;
pub mod rate_limit;
mod role;
mod role_policy;
mod routes;
mod stage;
mod table;
mod tags;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use tokio::sync::OnceCell;

#[cfg(feature = "test-hooks")]
pub use calls::RecordedRequest;
pub use calls::{Call, CallEvent, CallLog, Outcome as CallOutcome};
pub use change::Removal;
pub use error::{AwsError, Misconfiguration, Step};
pub use handler_zip::HandlerZip;
pub use naming::ResourceNames;
pub use rate_limit::{RateLimit, RateLimits};

use crate::crd::{ChatRoom, ChatRoomSpec, DeletionPolicy};
use crate::report::{Failure, Report};

/// The roles a room may bring unless the operator is told otherwise: those named like its own,
/// which the operator's policy lets it pass to Lambda.
pub const DEFAULT_ALLOWED_ROLE_ARNS: &str = "arn:*:iam::*:role/chatroom-*";

/// The most requests a Ready room's reconcile makes, by `--aws-rate-limit` service: reads only,
/// and only those its spec turns on. Every room: API Gateway GetApi, GetIntegrations, GetRoutes,
/// GetStages; DynamoDB DescribeTable, ListTagsOfResource, DescribeTimeToLive; IAM GetRole,
/// GetRolePolicy (not for a role the spec brings); Lambda GetFunction, GetPolicy; Logs
/// DescribeLogGroups, ListTagsForResource (the function's log group). `auth`: GetAuthorizer;
/// `domain`: GetDomainName, GetApiMappings; `accessLog`: the access log group's two reads;
/// point-in-time recovery: DescribeContinuousBackups; `history` and `channels`: their tables'
/// three each. So from 4
/// to 7 API Gateway reads and from 2 to 4 Logs reads. tests/fleet_aws.rs holds the operator to
/// these.
pub fn steady_state_requests(spec: &ChatRoomSpec) -> [(&'static str, u32); 6] {
    let on = |feature: bool, reads: u32| if feature { reads } else { 0 };
    [
        (
            "apigateway",
            4 + on(spec.auth.is_some(), 1) + on(spec.domain.is_some(), 2),
        ),
        (
            "dynamodb",
            3 + on(spec.connection_table.point_in_time_recovery, 1)
                + on(spec.history_settings().is_some(), 3)
                + on(spec.channels.is_some(), 3),
        ),
        ("iam", on(spec.function.role_arn.is_none(), 2)),
        ("lambda", 2),
        ("logs", 2 + on(spec.access_log.is_some(), 2)),
        ("sts", 0),
    ]
}

/// Tags as AWS takes them: key → value, sorted for stable requests.
pub type Tags = BTreeMap<String, String>;

/// The operator's own settings for every room.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The function's code; `delete` needs none.
    pub handler_zip: Option<HandlerZip>,
    pub handler_zip_arm64: Option<HandlerZip>,
    /// Tagged on every resource, so operators of two clusters never take each other's.
    pub cluster_name: String,
    /// Permissions boundary ARN for the roles the operator creates; by default the policy
    /// [`naming::BOUNDARY_POLICY`] in the operator's own account.
    pub permissions_boundary: Option<String>,
    /// Roles a room may bring in `spec.function.roleArn` (ARN patterns); others are refused.
    pub allowed_role_arns: Vec<String>,
    /// Attempts at creating a function while Lambda cannot assume its new role yet.
    pub role_propagation_attempts: usize,
    /// Requests per second per AWS service, shared by every room.
    pub rate_limits: RateLimits,
    /// Where rooms' backend keys come from.
    pub secrets: crate::secrets::SecretSource,
}

impl Settings {
    pub fn new(handler_zip: Option<HandlerZip>, cluster_name: &str) -> Self {
        Self {
            handler_zip,
            handler_zip_arm64: None,
            cluster_name: cluster_name.to_owned(),
            permissions_boundary: None,
            allowed_role_arns: vec![DEFAULT_ALLOWED_ROLE_ARNS.to_owned()],
            rate_limits: RateLimits::default(),
            // 0.5 s doubling to 8 s: about 40 s in all, longer than IAM usually takes.
            role_propagation_attempts: 8,
            secrets: crate::secrets::SecretSource::Unavailable,
        }
    }
}

#[derive(Clone, Debug)]
struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    iam: aws_sdk_iam::Client,
    lambda: aws_sdk_lambda::Client,
    apigateway: aws_sdk_apigatewayv2::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    sts: aws_sdk_sts::Client,
    /// Asked of STS once per region and kept: it cannot change while the process runs.
    caller: Arc<OnceCell<Caller>>,
}

/// Whose credentials the operator runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Caller {
    /// `aws`, `aws-cn`, `aws-us-gov`, …: from the caller's own ARN, never guessed from a region.
    partition: String,
    account: String,
}

impl Caller {
    /// `arn:aws-cn:sts::123456789012:assumed-role/…` → partition `aws-cn`.
    fn from_identity(arn: &str, account: &str) -> Option<Self> {
        let partition = arn.strip_prefix("arn:")?.split(':').next()?;
        (!partition.is_empty() && !account.is_empty()).then(|| Self {
            partition: partition.to_owned(),
            account: account.to_owned(),
        })
    }
}

/// Everything a step needs to know about the room it works on.
struct RoomContext<'a> {
    clients: Clients,
    caller: Caller,
    names: ResourceNames,
    spec: &'a ChatRoomSpec,
    tags: Tags,
    region: String,
    settings: &'a Settings,
    /// The API id the room's status recorded, so that the API is found without a listing.
    known_api_id: Option<&'a str>,
    /// The history table the room's status recorded: a room that stops keeping history
    /// deletes it, and one that never kept any spends no request looking for it.
    known_history_table: bool,
    /// The same for the channel table.
    known_channel_table: bool,
    /// The custom domain the room's status recorded: dropped or renamed, it is deleted.
    known_domain: Option<&'a str>,
    /// `namespace/name`, for messages.
    display: String,
    /// The key from `spec.backend.secretRef`, read for a converge (a deletion needs none).
    backend_key: Option<String>,
}

impl RoomContext<'_> {
    fn partition(&self) -> &str {
        &self.caller.partition
    }

    /// The boundary every role the operator creates carries.
    fn permissions_boundary(&self) -> String {
        self.settings
            .permissions_boundary
            .clone()
            .unwrap_or_else(|| {
                let Caller { partition, account } = &self.caller;
                format!(
                    "arn:{partition}:iam::{account}:policy/{}",
                    naming::BOUNDARY_POLICY
                )
            })
    }
}

pub struct AwsProvider {
    sdk: SdkConfig,
    settings: Settings,
    calls: CallLog,
    clients: Mutex<HashMap<String, Clients>>,
    /// One HTTP client per service, behind that service's rate limit, for every region.
    http: HttpClients,
}

/// Each service's HTTP client, behind the service's own token bucket.
struct HttpClients {
    apigateway: SharedHttpClient,
    dynamodb: SharedHttpClient,
    iam: SharedHttpClient,
    lambda: SharedHttpClient,
    logs: SharedHttpClient,
    sts: SharedHttpClient,
}

impl HttpClients {
    fn new(sdk: &SdkConfig, limits: &RateLimits) -> Self {
        let bucket = |service: &str| rate_limit::bucket(limits.per_second(service));
        let client = |service: &str| rate_limit::client(sdk.http_client(), bucket(service), None);
        Self {
            apigateway: rate_limit::client(
                sdk.http_client(),
                bucket("apigateway"),
                Some(bucket(rate_limit::DOMAIN_MUTATIONS)),
            ),
            dynamodb: client("dynamodb"),
            iam: client("iam"),
            lambda: client("lambda"),
            logs: client("logs"),
            sts: client("sts"),
        }
    }
}

impl AwsProvider {
    pub fn new(sdk: SdkConfig, settings: Settings) -> Self {
        let http = HttpClients::new(&sdk, &settings.rate_limits);
        Self {
            sdk,
            settings,
            calls: CallLog::default(),
            clients: Mutex::default(),
            http,
        }
    }

    pub fn calls(&self) -> &CallLog {
        &self.calls
    }

    /// How long one steady-state reconcile of every room in `fleet` holds the scarcest rate
    /// limit: with the defaults and plain rooms, API Gateway's (4 reads each at 5 per second).
    pub fn steady_state_cost<'a>(
        &self,
        fleet: impl IntoIterator<Item = &'a ChatRoomSpec>,
    ) -> Duration {
        steady_state_cost(&self.settings.rate_limits, fleet)
    }

    fn clients(&self, region: &str) -> Clients {
        let mut cache = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let sdk = &self.sdk;
        let calls = &self.calls;
        let region = Region::new(region.to_owned());
        // Each service's client from the shared configuration, in the room's region, with the
        // call log in front of it.
        let http = &self.http;
        macro_rules! client {
            ($service:ident, $http:ident) => {
                $service::Client::from_conf(
                    $service::config::Builder::from(sdk)
                        .region(region.clone())
                        .interceptor(calls.clone())
                        .http_client(http.$http.clone())
                        .stalled_stream_protection(rate_limit::stalled_stream_protection())
                        .timeout_config(rate_limit::timeouts(sdk.timeout_config()))
                        .build(),
                )
            };
        }
        cache
            .entry(region.to_string())
            .or_insert_with(|| Clients {
                dynamodb: client!(aws_sdk_dynamodb, dynamodb),
                iam: client!(aws_sdk_iam, iam),
                lambda: client!(aws_sdk_lambda, lambda),
                apigateway: client!(aws_sdk_apigatewayv2, apigateway),
                logs: client!(aws_sdk_cloudwatchlogs, logs),
                sts: client!(aws_sdk_sts, sts),
                caller: Arc::default(),
            })
            .clone()
    }

    /// What every step needs to work on `room`: its region's clients, the caller's account and
    /// partition, names and tags.
    async fn context<'a>(&'a self, room: &'a ChatRoom) -> Result<RoomContext<'a>, AwsError> {
        let region = room
            .spec
            .region
            .clone()
            .or_else(|| self.sdk.region().map(ToString::to_string))
            .ok_or(AwsError::Configuration {
                step: Step::Identity,
                problem: Misconfiguration::NoRegion,
            })?;
        let clients = self.clients(&region);
        let caller = clients
            .caller
            .get_or_try_init(|| caller(&clients.sts))
            .await?
            .clone();
        let (namespace, name) = room.identity();
        let cluster = &self.settings.cluster_name;
        Ok(RoomContext {
            clients,
            caller,
            names: ResourceNames::for_room(cluster, &namespace, &name),
            spec: &room.spec,
            tags: tags::room_tags(room, cluster),
            region,
            settings: &self.settings,
            known_api_id: room.status.as_ref().and_then(|s| s.api_id.as_deref()),
            known_history_table: room
                .status
                .as_ref()
                .is_some_and(|s| s.history_table_name.is_some()),
            known_channel_table: room
                .status
                .as_ref()
                .is_some_and(|s| s.channel_table_name.is_some()),
            known_domain: room.status.as_ref().and_then(|s| s.domain_name.as_deref()),
            display: format!("{namespace}/{name}"),
            backend_key: None,
        })
    }

    /// The key the room's function signs its backend requests with. A room on AWS needs an
    /// `https://` backend (a loopback address there is the function itself) and a key of text
    /// (Lambda's environment holds text; base64 would change what the backend checks).
    async fn backend_key(&self, room: &ChatRoom) -> Result<Option<String>, Failure> {
        let Some(backend) = &room.spec.backend else {
            return Ok(None);
        };
        if !backend.url.starts_with("https://") {
            return Err(Failure::invalid_spec(format!(
                "spec.backend.url: a room on AWS needs an https:// backend, got {:?}: its function runs in AWS, where a loopback address is the function itself",
                backend.url
            )));
        }
        let key = self
            .settings
            .secrets
            .backend_key(room)
            .await
            .map_err(|error| Failure::secret_unavailable(&error))?;
        key.map(String::from_utf8).transpose().map_err(|_| {
            Failure::invalid_spec(
                "spec.backend.secretRef: a room on AWS needs a key of UTF-8 text".into(),
            )
        })
    }

    /// Converges every resource of `room`, in dependency order, and reports how far it got.
    pub async fn converge(&self, room: &ChatRoom) -> Report {
        let backend_key = match self.backend_key(room).await {
            Ok(key) => key,
            Err(failure) => return Report::failed(failure),
        };
        match self.context(room).await {
            Ok(mut context) => {
                context.backend_key = backend_key;
                pipeline::run(&context).await
            }
            Err(error) => pipeline::stopped_before_start(&error),
        }
    }

    /// Tears the room down, in the reverse of the order it was built; "not found" counts as
    /// done, so a half-built room deletes cleanly, and another owner's resource with the room's
    /// name is left alone. The table stays when `deletionPolicy` is `Retain`; a role the spec
    /// brought stays too.
    pub async fn delete(&self, room: &ChatRoom) -> Result<Vec<(Step, Removal)>, AwsError> {
        let context = self.context(room).await?;
        let mut removals = Vec::new();
        let domains = context
            .known_domain
            .into_iter()
            .chain(room.spec.domain.as_ref().map(|d| d.name.as_str()));
        let mut deleted_domains: Vec<&str> = Vec::new();
        for name in domains {
            if !deleted_domains.contains(&name) {
                removals.push((Step::Domain, domain::delete(&context, name).await?));
                deleted_domains.push(name);
            }
        }
        removals.push((
            Step::Api,
            api::delete(&context, context.known_api_id).await?,
        ));
        // Deleting the function removes its resource policy (the permission) with it.
        removals.push((Step::Function, function::delete(&context).await?));
        removals.push((Step::LogGroup, log_group::delete(&context).await?));
        removals.push((
            Step::AccessLog,
            log_group::delete_access_log(&context).await?,
        ));
        if room.spec.function.role_arn.is_none() {
            removals.push((Step::Role, role::delete(&context).await?));
        }
        if room.spec.connection_table.deletion_policy == DeletionPolicy::Delete {
            removals.push((Step::Table, table::delete(&context).await?));
            removals.push((Step::HistoryTable, table::delete_history(&context).await?));
            removals.push((Step::ChannelTable, table::delete_channels(&context).await?));
        }
        for (step, removal) in &removals {
            tracing::info!(room = %context.display, %step, ?removal, "delete");
        }
        Ok(removals)
    }
}

/// The longest any one service's steady-state requests of the whole fleet take at its rate.
fn steady_state_cost<'a>(
    limits: &RateLimits,
    fleet: impl IntoIterator<Item = &'a ChatRoomSpec>,
) -> Duration {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for spec in fleet {
        for (service, requests) in steady_state_requests(spec) {
            *totals.entry(service).or_default() += u64::from(requests);
        }
    }
    totals
        .iter()
        .map(|(service, requests)| {
            // Counts of requests, far below 2^52: exact as f64.
            #[allow(clippy::cast_precision_loss)]
            let requests = *requests as f64;
            Duration::from_secs_f64(requests / limits.per_second(service).max(0.01))
        })
        .max()
        .unwrap_or_default()
}

/// The account and partition of the operator's own credentials.
async fn caller(sts: &aws_sdk_sts::Client) -> Result<Caller, AwsError> {
    let fail = error::On::new(Step::Identity, "GetCallerIdentity");
    let identity = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    let arn = identity.arn().unwrap_or_default();
    Caller::from_identity(arn, identity.account().unwrap_or_default())
        .ok_or_else(|| fail.unexpected(format!("cannot read a partition and account from {arn:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_comes_from_the_callers_arn() {
        let china = Caller::from_identity(
            "arn:aws-cn:sts::123456789012:assumed-role/chatroom-operator/pod",
            "123456789012",
        );
        assert_eq!(
            china,
            Some(Caller {
                partition: "aws-cn".into(),
                account: "123456789012".into()
            })
        );
        assert_eq!(Caller::from_identity("not-an-arn", "1"), None);
    }

    #[test]
    fn the_steady_state_costs_the_time_of_the_scarcest_rate() {
        let plain = ChatRoomSpec::default();
        let api_gateway = Duration::from_millis(800);
        assert_eq!(
            steady_state_cost(&RateLimits::default(), [&plain]),
            api_gateway
        );
        let slow_logs = RateLimits::with(&["logs=0.5".parse().unwrap()]);
        assert_eq!(
            steady_state_cost(&slow_logs, [&plain]),
            Duration::from_secs(4)
        );
        let fast_api = RateLimits::with(&["apigateway=100".parse().unwrap()]);
        assert_eq!(
            steady_state_cost(&fast_api, [&plain]),
            Duration::from_secs_f64(2.0 / 3.0),
            "then CloudWatch Logs' 2 reads at 3 per second"
        );
        assert_eq!(
            steady_state_cost(&RateLimits::default(), []),
            Duration::ZERO
        );
    }

    /// A room with auth, a domain and access logs reads 7 API Gateway and 4 Logs resources in
    /// steady state, not the 4 and 2 of a plain room; the fleet's budget counts each room's.
    #[test]
    fn each_room_counts_what_its_features_read() {
        use crate::crd::{AccessLogSpec, AuthSpec, DomainSpec, HistorySpec, JwtSpec};
        let full = ChatRoomSpec {
            auth: Some(AuthSpec {
                jwt: JwtSpec {
                    issuer: "https://login.example.com/".into(),
                    audiences: vec!["chat".into()],
                    jwks_uri: "https://login.example.com/jwks.json".into(),
                    identity_source: "querystring.token".into(),
                    name_claim: None,
                },
            }),
            domain: Some(DomainSpec {
                name: "chat.example.com".into(),
                certificate_arn: "arn:aws:acm:eu-west-1:123456789012:certificate/0a".into(),
                base_path: String::new(),
            }),
            access_log: Some(AccessLogSpec { retention_days: 7 }),
            history: Some(HistorySpec {
                messages: 50,
                retention: "24h".into(),
            }),
            ..ChatRoomSpec::default()
        };
        let reads: BTreeMap<_, _> = steady_state_requests(&full).into_iter().collect();
        assert_eq!(
            (reads["apigateway"], reads["logs"], reads["dynamodb"]),
            (7, 4, 6)
        );
        let plain = ChatRoomSpec::default();
        let fleet = [&plain, &full, &full];
        // 4 + 7 + 7 = 18 API Gateway reads at 5 per second.
        assert_eq!(
            steady_state_cost(&RateLimits::default(), fleet),
            Duration::from_millis(3600)
        );
    }

    mod canned_answers {
        use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput;
        use aws_smithy_mocks::{mock, mock_client};

        use super::*;

        #[tokio::test]
        async fn the_partition_is_the_callers_even_where_the_region_says_nothing() {
            let identity = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
                GetCallerIdentityOutput::builder()
                    .account("123456789012")
                    .arn("arn:aws-us-gov:sts::123456789012:assumed-role/chatroom-operator/pod")
                    .build()
            });
            let sts = mock_client!(aws_sdk_sts, [&identity]);

            let found = caller(&sts).await.unwrap();

            assert_eq!(found.partition, "aws-us-gov");
            assert_eq!(found.account, "123456789012");
        }
    }
}
