//! The AWS provider against moto (scripts/test.sh starts it and sets MOTO_ENDPOINT), and an
//! independent look at what exists there.
#![allow(dead_code)]

use chatroom_operator::crd::{ChatRoom, ChatRoomSpec, ChatRoomStatus};
use chatroom_operator::providers::aws::{AwsProvider, HandlerZip, ResourceNames, Settings};
use chatroom_operator::report::Report;
use chatroom_operator::status::status_from;

pub const CLUSTER: &str = "test-cluster";

/// Auth with a JWT issuer, the token in the query string.
pub fn jwt() -> chatroom_operator::crd::AuthSpec {
    chatroom_operator::crd::AuthSpec {
        jwt: chatroom_operator::crd::JwtSpec {
            issuer: "https://login.example.com/".into(),
            audiences: vec!["chat".into()],
            jwks_uri: "https://login.example.com/.well-known/jwks.json".into(),
            identity_source: "querystring.token".into(),
            name_claim: None,
        },
    }
}

/// The API's `$connect` route, as API Gateway answers it.
pub async fn connect_route(
    apigw: &aws_sdk_apigatewayv2::Client,
    api: &str,
) -> aws_sdk_apigatewayv2::types::Route {
    let routes = apigw.get_routes().api_id(api).send().await.unwrap();
    routes
        .items()
        .iter()
        .find(|r| r.route_key() == Some("$connect"))
        .expect("$connect exists")
        .clone()
}

pub use chatroom_testkit::moto_sdk_config as sdk;

pub async fn provider_with_zip(zip: &[u8]) -> AwsProvider {
    provider_as(&operator_key(CLUSTER), zip).await
}

/// The access key the IAM gate holds to the operator's policies for `cluster`, exactly as
/// `chatroom-operator iam-policy --cluster-name` prints them.
pub fn operator_key(cluster: &str) -> String {
    chatroom_testkit::iam_gate::register_operator(cluster, operator_policies(cluster))
}

/// Registers `key` with the operator's policies for [`CLUSTER`] as they were before `action` was
/// granted (a test showing what the grant fixed): the one grant of it is taken out, and the
/// denials that follow count as the test's own in the gate's summary.
pub fn register_operator_without(key: &str, action: &str) {
    let mut policies = operator_policies(CLUSTER);
    let mut removed = 0;
    for (_, document) in &mut policies {
        let statements = document["Statement"].as_array_mut().unwrap();
        let before = statements.len();
        statements.retain(|s| s["Action"] != action);
        removed += before - statements.len();
        for statement in statements.iter_mut() {
            if let Some(actions) = statement["Action"].as_array_mut() {
                let before = actions.len();
                actions.retain(|a| a != action);
                removed += before - actions.len();
            }
        }
    }
    assert_eq!(removed, 1, "the operator's policies grant {action} once");
    chatroom_testkit::iam_gate::register_principal(
        key,
        &format!(
            "arn:aws:sts::123456789012:assumed-role/chatroom-operator/without-{}",
            action.replace(':', "-")
        ),
        policies
            .into_iter()
            .map(|(name, document)| {
                chatroom_testkit::iam_gate::policy(&format!("{name} without {action}"), document)
            })
            .collect(),
        true,
    );
}

/// Registers `key` as this suite's operator (cluster [`CLUSTER`], its shipped policies) in an
/// account of its own for API Gateway's quotas, which the gate then holds it to; with
/// `expect_denials` the requests it throttles count as the test's own.
pub fn register_operator_with_quotas(key: &str, expect_denials: bool) {
    chatroom_testkit::iam_gate::register_principal_with_quotas(
        key,
        &format!("arn:aws:sts::123456789012:assumed-role/chatroom-operator/{key}"),
        operator_policies(CLUSTER)
            .into_iter()
            .map(|(name, document)| chatroom_testkit::iam_gate::policy(&name, document))
            .collect(),
        expect_denials,
    );
}

/// The operator's managed policies for `cluster` in `aws`, by name.
pub fn operator_policies(cluster: &str) -> Vec<(String, serde_json::Value)> {
    chatroom_operator::providers::aws::operator_policy::operator_policies("aws", cluster)
        .unwrap()
        .into_iter()
        .map(|p| (p.name.to_owned(), p.document))
        .collect()
}

/// The environment of an operator process of `cluster` against moto, behind the IAM gate.
pub fn operator_moto_env(cluster: &str) -> [(&'static str, String); 4] {
    chatroom_testkit::moto_env_as(&operator_key(cluster))
}

/// The operator with `zip`, signing with `access_key_id`: the IAM gate in front of moto holds
/// it to the policies it knows for that key.
pub async fn provider_as(access_key_id: &str, zip: &[u8]) -> AwsProvider {
    provider_paced_as(access_key_id, zip, &[]).await
}

/// [`provider_as`] with the operator's default rate limits for `paced` services and none for
/// the rest: moto has no quotas of its own (the gate emulates API Gateway's domain quotas
/// only for a key that asks, tools/iam-gate/quotas.mjs).
pub async fn provider_paced_as(access_key_id: &str, zip: &[u8], paced: &[&str]) -> AwsProvider {
    provider_configured(access_key_id, zip, paced, |_| {}).await
}

/// The test operator with its rooms' Secrets in `secrets`.
pub async fn provider_with_secrets(
    secrets: chatroom_operator::secrets::SecretSource,
) -> AwsProvider {
    let key = operator_key(CLUSTER);
    provider_configured(&key, b"bootstrap.zip v1", &[], |settings| {
        settings.secrets = secrets;
    })
    .await
}

async fn provider_configured(
    access_key_id: &str,
    zip: &[u8],
    paced: &[&str],
    configure: impl FnOnce(&mut Settings),
) -> AwsProvider {
    let mut settings = Settings::new(Some(HandlerZip::from_bytes(zip.to_vec())), CLUSTER);
    configure(&mut settings);
    settings.role_propagation_attempts = 1;
    let unlimited: Vec<_> = chatroom_operator::providers::aws::rate_limit::SERVICES
        .iter()
        .filter(|service| !paced.contains(service))
        .map(|service| format!("{service}=10000").parse().unwrap())
        .collect();
    settings.rate_limits = chatroom_operator::providers::aws::RateLimits::with(&unlimited);
    let endpoint = chatroom_testkit::moto_endpoint();
    let sdk = chatroom_testkit::sdk_config_as(access_key_id, Some(&endpoint)).await;
    AwsProvider::new(sdk, settings)
}

pub async fn provider() -> AwsProvider {
    provider_with_zip(b"bootstrap.zip v1").await
}

/// A room with a name unique to the calling test and process, so tests share moto safely.
pub fn room(test: &str) -> ChatRoom {
    let mut room = ChatRoom::new(
        &format!("{test}-{}", std::process::id()),
        ChatRoomSpec::default(),
    );
    room.metadata.namespace = Some("default".into());
    room.metadata.generation = Some(1);
    room
}

/// Converges `room`, which must succeed, and keeps the status it reports, as the controller
/// does.
pub async fn converge(provider: &AwsProvider, room: &mut ChatRoom) {
    let report = provider.converge(room).await;
    assert!(report.failure().is_none(), "{:?}", report.failure());
    room.status = Some(status_of(&report));
}

/// The status a first reconcile (generation 1) writes for `report`.
pub fn status_of(report: &Report) -> ChatRoomStatus {
    status_from(None, report, Some(1))
}

pub fn names(room: &ChatRoom) -> ResourceNames {
    names_in(CLUSTER, room)
}

/// The names the operator of `cluster` gives `room`'s resources.
pub fn names_in(cluster: &str, room: &ChatRoom) -> ResourceNames {
    ResourceNames::for_room(
        cluster,
        room.metadata.namespace.as_deref().unwrap(),
        room.metadata.name.as_deref().unwrap(),
    )
}

/// The environment moto holds for the room's function, as the operator configured it.
pub async fn function_environment(function: &str) -> std::collections::HashMap<String, String> {
    aws_sdk_lambda::Client::new(&sdk().await)
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .unwrap()
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default()
}

/// A table's key attributes (partition, then sort) and enabled TTL attribute, if it exists.
async fn keyed_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Option<(Vec<String>, Option<String>)> {
    let found = dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .ok()?;
    let keys = found
        .table()?
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_owned())
        .collect();
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .unwrap();
    let attribute = ttl
        .time_to_live_description()
        .filter(|d| {
            d.time_to_live_status() == Some(&aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled)
        })
        .and_then(|d| d.attribute_name().map(str::to_owned));
    Some((keys, attribute))
}

/// What exists in moto for one room, read with clients of its own.
#[derive(Debug, Default, PartialEq)]
pub struct Inventory {
    pub apis: Vec<String>,
    pub integrations: usize,
    pub routes: Vec<String>,
    pub stages: Vec<String>,
    pub function: bool,
    pub permission_source: Option<String>,
    pub role: bool,
    pub policy: Option<serde_json::Value>,
    pub table: bool,
    /// The history table: its key attributes (partition, then sort) and TTL attribute.
    pub history_table: Option<(Vec<String>, Option<String>)>,
    /// The channel table, the same way.
    pub channel_table: Option<(Vec<String>, Option<String>)>,
    /// The function's log group, by its retention in days (0 when it keeps logs for ever).
    pub log_group: Option<i32>,
    /// The stage's access log group, by its retention in days.
    pub access_log_group: Option<i32>,
}

impl Inventory {
    /// What exists for `room` as this suite's operator (cluster [`CLUSTER`]) names it.
    pub async fn of(room: &ChatRoom) -> Self {
        Self::in_cluster(CLUSTER, room).await
    }

    pub async fn in_cluster(cluster: &str, room: &ChatRoom) -> Self {
        let sdk = sdk().await;
        let names = names_in(cluster, room);
        let apigw = aws_sdk_apigatewayv2::Client::new(&sdk);
        let lambda = aws_sdk_lambda::Client::new(&sdk);
        let iam = aws_sdk_iam::Client::new(&sdk);
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let mut inventory = Inventory::default();

        let apis = apigw.get_apis().send().await.unwrap();
        for api in apis
            .items()
            .iter()
            .filter(|a| a.name() == Some(names.api.as_str()))
        {
            let id = api.api_id().unwrap().to_owned();
            inventory.integrations += apigw
                .get_integrations()
                .api_id(&id)
                .send()
                .await
                .unwrap()
                .items()
                .len();
            let mut routes: Vec<String> = apigw
                .get_routes()
                .api_id(&id)
                .send()
                .await
                .unwrap()
                .items()
                .iter()
                .filter_map(|r| r.route_key().map(str::to_owned))
                .collect();
            routes.sort();
            inventory.routes.extend(routes);
            inventory.stages.extend(
                apigw
                    .get_stages()
                    .api_id(&id)
                    .send()
                    .await
                    .unwrap()
                    .items()
                    .iter()
                    .filter_map(|s| s.stage_name().map(str::to_owned)),
            );
            inventory.apis.push(id);
        }
        inventory.function = lambda
            .get_function()
            .function_name(&names.function)
            .send()
            .await
            .is_ok();
        if let Ok(policy) = lambda
            .get_policy()
            .function_name(&names.function)
            .send()
            .await
        {
            let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
            inventory.permission_source =
                policy["Statement"][0]["Condition"]["ArnLike"]["AWS:SourceArn"]
                    .as_str()
                    .map(str::to_owned);
        }
        inventory.role = iam.get_role().role_name(&names.role).send().await.is_ok();
        if let Ok(found) = iam
            .get_role_policy()
            .role_name(&names.role)
            .policy_name("chatroom-room")
            .send()
            .await
        {
            inventory.policy = chatroom_testkit::iam_gate::document(found.policy_document());
        }
        inventory.table = dynamodb
            .describe_table()
            .table_name(&names.table)
            .send()
            .await
            .is_ok();
        inventory.history_table = keyed_table(&dynamodb, &names.history_table).await;
        inventory.channel_table = keyed_table(&dynamodb, &names.channel_table).await;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
        let retention = |name: String| {
            let logs = logs.clone();
            async move {
                let groups = logs.describe_log_groups().log_group_name_prefix(&name);
                let groups = groups.send().await.unwrap();
                groups
                    .log_groups()
                    .iter()
                    .find(|g| g.log_group_name() == Some(name.as_str()))
                    .map(|g| g.retention_in_days().unwrap_or(0))
            }
        };
        inventory.log_group = retention(names.log_group()).await;
        inventory.access_log_group = retention(names.access_log_group()).await;
        inventory
    }

    pub fn is_empty(&self) -> bool {
        self.apis.is_empty()
            && !self.function
            && !self.role
            && !self.table
            && self.history_table.is_none()
            && self.channel_table.is_none()
            && self.log_group.is_none()
            && self.access_log_group.is_none()
    }

    /// Exactly one of everything, and the routes the spec names; no history.
    pub fn assert_complete(&self, message_route: &str) {
        self.assert_complete_as(message_route, false);
    }

    /// Exactly one of everything, the routes the spec names, and whether the room keeps
    /// history (its table, with TTL, and its route).
    pub fn assert_complete_as(&self, message_route: &str, with_history: bool) {
        assert_eq!(self.apis.len(), 1, "{self:#?}");
        assert_eq!(self.integrations, 1, "{self:#?}");
        let mut routes = vec![
            "$connect".to_owned(),
            "$default".to_owned(),
            "$disconnect".to_owned(),
            message_route.to_owned(),
            "who".to_owned(),
        ];
        if with_history {
            routes.push("history".to_owned());
            let (keys, ttl) = self.history_table.clone().expect("a history table");
            assert_eq!(keys, ["room", "messageId"], "{self:#?}");
            assert_eq!(ttl.as_deref(), Some("expiresAt"), "{self:#?}");
        } else {
            assert_eq!(self.history_table, None, "{self:#?}");
        }
        assert_eq!(self.channel_table, None, "{self:#?}");
        routes.sort();
        assert_eq!(self.routes, routes, "{self:#?}");
        assert_eq!(self.stages, ["dev"], "{self:#?}");
        assert!(self.function && self.role && self.table, "{self:#?}");
        assert_eq!(self.log_group, Some(14), "the default retention: {self:#?}");
        let source = self
            .permission_source
            .as_deref()
            .expect("an invoke permission");
        assert_eq!(
            source,
            format!(
                "arn:aws:execute-api:us-east-1:123456789012:{}/*",
                self.apis[0]
            )
        );
        assert!(self.policy.is_some(), "{self:#?}");
    }
}
