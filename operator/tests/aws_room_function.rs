//! A room's own function at work on AWS's terms: the `bootstrap` the operator deployed, run
//! under the Lambda Runtime API with the environment the operator gave it and the credentials
//! of the role it made. Every request the function makes (DynamoDB, `@connections`) goes
//! through the IAM gate, which holds it to that role's inline policy within its permissions
//! boundary, both read from moto as the operator left them.

mod aws_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_support::{converge, function_environment, names, provider_with_zip, room, sdk};
use chatroom_operator::crd::{ChannelsSpec, ChatRoom, HistorySpec};
use chatroom_testkit::iam_gate::{policy, records_of, register_principal_within};
use chatroom_testkit::lambda_runtime::{Function, Outcome};
use chatroom_testkit::lambda_service::LambdaService;
use chatroom_testkit::{moto_endpoint, repo_root};
use serde_json::Value;

const CONNECTION: &str = "L0SM9cOFvHcCIhw=";
const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/chatroom-room-boundary";

/// The function as scripts/build-lambda.sh built it, for the operator to deploy.
fn bootstrap_zip() -> Vec<u8> {
    let path = repo_root().join("target/lambda/bootstrap/bootstrap.zip");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build it with scripts/build-lambda.sh",
            path.display()
        )
    })
}

/// The `bootstrap` inside `zip`, unpacked where it can run.
fn unpack(zip: &Path, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("room-function-{test}-{}", std::process::id()));
    let status = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(zip)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "could not unpack {}", zip.display());
    let binary = dir.join("bootstrap");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    binary
}

/// The boundary every room role carries, as docs/operations.md has the account's owner make it
/// (and keep current: a moto that outlived an edit of the document gets the new version).
async fn ensure_boundary(iam: &aws_sdk_iam::Client) {
    let document =
        std::fs::read_to_string(repo_root().join("docs/permissions-boundary.json")).unwrap();
    if let Ok(found) = iam.get_policy().policy_arn(BOUNDARY).send().await {
        let version = found.policy().unwrap().default_version_id().unwrap();
        let current = iam
            .get_policy_version()
            .policy_arn(BOUNDARY)
            .version_id(version)
            .send()
            .await
            .unwrap();
        let current = decoded(current.policy_version().unwrap().document().unwrap());
        if current != serde_json::from_str::<Value>(&document).unwrap() {
            iam.create_policy_version()
                .policy_arn(BOUNDARY)
                .policy_document(&document)
                .set_as_default(true)
                .send()
                .await
                .unwrap();
        }
        return;
    }
    let made = iam
        .create_policy()
        .policy_name("chatroom-room-boundary")
        .policy_document(document)
        .send()
        .await;
    if let Err(error) = made {
        let exists = error
            .as_service_error()
            .is_some_and(|e| e.is_entity_already_exists_exception());
        assert!(exists, "{error:?}");
    }
}

fn decoded(document: &str) -> Value {
    chatroom_testkit::iam_gate::document(document).expect("a JSON policy document")
}

/// Registers `key` as a session of `role` (as Lambda assumes a function's role, named for the
/// function), with the role's inline policies and its permissions boundary as moto holds them.
async fn register_role_session(
    iam: &aws_sdk_iam::Client,
    role: &str,
    function: &str,
    key: &str,
    expect_denials: bool,
) {
    let found = iam.get_role().role_name(role).send().await.unwrap();
    let boundary_arn = found
        .role()
        .and_then(|r| r.permissions_boundary())
        .and_then(|b| b.permissions_boundary_arn())
        .expect("the room's role has a permissions boundary")
        .to_owned();
    let boundary = iam
        .get_policy()
        .policy_arn(&boundary_arn)
        .send()
        .await
        .unwrap();
    let version = boundary.policy().unwrap().default_version_id().unwrap();
    let boundary = iam
        .get_policy_version()
        .policy_arn(&boundary_arn)
        .version_id(version)
        .send()
        .await
        .unwrap();
    let boundary = decoded(boundary.policy_version().unwrap().document().unwrap());
    let mut inline = Vec::new();
    let names = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    for name in names.policy_names() {
        let found = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .unwrap();
        inline.push(policy(name, decoded(found.policy_document())));
    }
    assert!(!inline.is_empty(), "the room's role has its inline policy");
    register_principal_within(
        key,
        &format!("arn:aws:sts::123456789012:assumed-role/{role}/{function}"),
        inline,
        vec![policy(&boundary_arn, boundary)],
        expect_denials,
    );
}

/// A converged room with history, the environment the operator gave its function, and the
/// function's running `bootstrap` signing as `key`, a session of the room's role.
struct RoomFunction {
    function: Function,
    api: String,
    stage: String,
    environment: HashMap<String, String>,
    /// What the function runs, and with what, for copies of it.
    binary: PathBuf,
    env: Vec<(String, String)>,
    name: String,
}

impl RoomFunction {
    async fn start(test: &str, key: &str, expect_denials: bool, change: &[(&str, String)]) -> Self {
        Self::start_with(test, key, expect_denials, change, |_| {}).await
    }

    async fn start_with(
        test: &str,
        key: &str,
        expect_denials: bool,
        change: &[(&str, String)],
        configure: impl FnOnce(&mut ChatRoom),
    ) -> Self {
        let zip = bootstrap_zip();
        let provider = provider_with_zip(&zip).await;
        let mut room = room(test);
        room.spec.history = Some(HistorySpec {
            messages: 10,
            retention: "1h".into(),
        });
        configure(&mut room);
        converge(&provider, &mut room).await;
        let names = names(&room);

        let sdk = sdk().await;
        let iam = aws_sdk_iam::Client::new(&sdk);
        ensure_boundary(&iam).await;
        register_role_session(&iam, &names.role, &names.function, key, expect_denials).await;

        let environment = function_environment(&names.function).await;
        // https://{api}.execute-api.us-east-1.amazonaws.com/{stage}/@connections, as the
        // status reports it. On AWS the function finds it from each event's domainName and
        // stage; here CALLBACK_URL, its override, points it at the gate.
        let callback = room
            .status
            .as_ref()
            .and_then(|s| s.callback_url.clone())
            .expect("the status reports the callback URL");
        let (host, stage) = callback
            .strip_prefix("https://")
            .and_then(|rest| rest.strip_suffix("/@connections"))
            .and_then(|rest| rest.split_once('/'))
            .unwrap_or_else(|| panic!("callbackUrl {callback}"));
        let api = host
            .strip_suffix(".execute-api.us-east-1.amazonaws.com")
            .unwrap_or_else(|| panic!("callbackUrl {callback}"))
            .to_owned();
        let stage = stage.to_owned();

        let zip_path = std::env::temp_dir().join(format!("{test}-{}.zip", std::process::id()));
        std::fs::write(&zip_path, &zip).unwrap();
        let binary = unpack(&zip_path, test);
        let mut env: Vec<(&str, String)> = environment
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        env.extend([
            ("AWS_ENDPOINT_URL", moto_endpoint()),
            (
                "CALLBACK_URL",
                format!("{}/__execute-api/{api}/{stage}", moto_endpoint()),
            ),
            ("AWS_ACCESS_KEY_ID", key.to_owned()),
        ]);
        env.extend(change.iter().cloned());
        let function = Function::start(&binary, &names.function, &env).await;
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        Self {
            function,
            api,
            stage,
            environment,
            env,
            binary,
            name: names.function.clone(),
        }
    }

    /// `processes` copies of the function behind `service`, as Lambda runs the pages the
    /// function hands to itself.
    async fn copies_behind(&self, service: &mut LambdaService, processes: usize) {
        let env: Vec<(&str, String)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        service
            .run(
                processes,
                &self.binary,
                &self.name,
                &env,
                Duration::from_secs(20),
            )
            .await;
    }

    /// A recorded API Gateway event for `route`, as this room's API sends it.
    fn event(&self, file: &str, route: Option<&str>) -> Value {
        let path = repo_root().join("handlers/tests/events").join(file);
        let mut event: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let context = &mut event["requestContext"];
        context["apiId"] = self.api.clone().into();
        context["stage"] = self.stage.clone().into();
        context["domainName"] = format!("{}.execute-api.us-east-1.amazonaws.com", self.api).into();
        if let Some(route) = route {
            context["routeKey"] = route.into();
            event["body"] = serde_json::json!({ "action": route }).to_string().into();
        }
        event
    }

    /// `file`'s event from connection `id`, on `route` with `body` when given.
    fn event_from(&self, file: &str, id: &str, route: Option<&str>, body: Option<Value>) -> Value {
        let mut event = self.event(file, route);
        event["requestContext"]["connectionId"] = id.into();
        event["queryStringParameters"] = serde_json::json!({ "name": id });
        if let Some(body) = body {
            event["body"] = body.to_string().into();
        }
        event
    }

    /// Invokes the function with `event`; returns its status code and the connections it
    /// posted to meanwhile, as the gate authorized the posts.
    async fn posts_for(&mut self, key: &str, event: Value) -> (i64, Vec<String>) {
        let before = decisions(key).len();
        let outcome = self.function.invoke(event).await;
        let prefix = format!("{}/{}/POST/@connections/", self.api, self.stage);
        let mut posted: Vec<String> = decisions(key)[before..]
            .iter()
            .filter(|(action, _, _)| action == "execute-api:ManageConnections")
            .filter_map(|(_, resource, _)| Some(resource.split_once(&prefix)?.1.to_owned()))
            .collect();
        posted.sort();
        (outcome.status_code(), posted)
    }
}

/// What the gate decided for `key`'s requests: `(action, resource, decision)`.
fn decisions(key: &str) -> Vec<(String, String, String)> {
    records_of(key)
        .iter()
        .flat_map(|record| {
            record["authorizations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|a| {
            let text = |field: &str| a[field].as_str().unwrap_or_default().to_owned();
            (text("action"), text("resource"), text("decision"))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs moto, the IAM gate and bootstrap.zip; run through scripts/test.sh"]
async fn a_rooms_function_does_its_work_with_its_roles_permissions_and_no_more() {
    let key = format!("AKIAROOMFUNCTION{}", std::process::id());
    let mut room = RoomFunction::start("own-role", &key, false, &[]).await;

    for (file, route) in [
        ("connect.json", None),
        ("message.json", None),
        ("message.json", Some("history")),
        ("message.json", Some("who")),
        ("disconnect.json", None),
    ] {
        let event = room.event(file, route);
        let outcome = room.function.invoke(event).await;
        assert_eq!(outcome.status_code(), 200, "{file} {route:?}: {outcome:?}");
    }
    let logs = room.function.stop();

    let decisions = decisions(&key);
    let refused: Vec<_> = decisions.iter().filter(|d| d.2 != "Allowed").collect();
    assert!(refused.is_empty(), "{refused:#?}\n{logs}");
    let table = room.environment["TABLE_NAME"].clone();
    let history = room.environment["HISTORY_TABLE"].clone();
    let arn = |table: &str| format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}");
    let post = format!(
        "arn:aws:execute-api:us-east-1:123456789012:{}/{}/POST/@connections/{CONNECTION}",
        room.api, room.stage
    );
    let mut asked: Vec<(String, String)> = decisions.into_iter().map(|d| (d.0, d.1)).collect();
    asked.sort();
    asked.dedup();
    let mut expected = vec![
        ("dynamodb:PutItem".to_owned(), arn(&table)),
        ("dynamodb:Scan".to_owned(), arn(&table)),
        ("dynamodb:DeleteItem".to_owned(), arn(&table)),
        // The room's version row: read by each message, bumped by each arrival and departure.
        ("dynamodb:GetItem".to_owned(), arn(&table)),
        ("dynamodb:UpdateItem".to_owned(), arn(&table)),
        ("dynamodb:PutItem".to_owned(), arn(&history)),
        ("dynamodb:Query".to_owned(), arn(&history)),
        ("execute-api:ManageConnections".to_owned(), post),
    ];
    expected.sort();
    assert_eq!(asked, expected, "{logs}");
}

#[tokio::test]
#[ignore = "needs moto, the IAM gate and bootstrap.zip; run through scripts/test.sh"]
async fn the_same_function_pointed_at_another_rooms_table_is_refused_by_iam() {
    let other = format!(
        "chatroom-test-cluster-default-someone-else-{}",
        std::process::id()
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk().await);
    chatroom_testkit::create_connection_table(&dynamodb, &other, &[]).await;
    let key = format!("AKIAROOMELSEWHERE{}", std::process::id());
    let mut room =
        RoomFunction::start("elsewhere", &key, true, &[("TABLE_NAME", other.clone())]).await;

    let outcome = room.function.invoke(room.event("connect.json", None)).await;
    let logs = room.function.stop();
    let refused = match &outcome {
        Outcome::Error(_, body) => body.to_string(),
        Outcome::Response(_, body) => {
            assert_ne!(body["statusCode"], 200, "{body}");
            logs.clone()
        }
    };
    assert!(refused.contains("AccessDenied"), "{refused}\n{logs}");
    let decisions = decisions(&key);
    assert!(
        decisions
            .iter()
            .any(|(action, resource, decision)| action == "dynamodb:PutItem"
                && resource.ends_with(&format!("table/{other}"))
                && decision == "ImplicitlyDenied"),
        "{decisions:#?}"
    );
    let stored = dynamodb
        .scan()
        .table_name(&other)
        .send()
        .await
        .unwrap()
        .count();
    assert_eq!(stored, 0, "nothing reached the other room's table");
}

#[tokio::test]
#[ignore = "needs moto, the IAM gate and bootstrap.zip; run through scripts/test.sh"]
async fn channels_reach_their_subscribers_only_with_the_roles_permissions() {
    let key = format!("AKIAROOMCHANNELS{}", std::process::id());
    let mut room = RoomFunction::start_with("channels", &key, false, &[], |room| {
        room.spec.channels = Some(ChannelsSpec {
            max_per_connection: 2,
        });
    })
    .await;
    let (ada, bob, cy) = ("ada-conn-id0=", "bob-conn-id0=", "cy-conn-id00=");
    for id in [ada, bob, cy] {
        let (status, _) = room
            .posts_for(&key, room.event_from("connect.json", id, None, None))
            .await;
        assert_eq!(status, 200);
    }
    let subscribe = |channel: &str| serde_json::json!({"action": "subscribe", "channel": channel});
    for id in [ada, bob] {
        let event = room.event_from(
            "message.json",
            id,
            Some("subscribe"),
            Some(subscribe("orders")),
        );
        assert_eq!(
            room.posts_for(&key, event).await,
            (200, vec![id.to_owned()])
        );
    }

    let to_orders = |text: &str| serde_json::json!({"action": "onMessage", "message": text, "channel": "orders"});
    let message = room.event_from("message.json", bob, None, Some(to_orders("shipped")));
    let (status, posted) = room.posts_for(&key, message).await;
    assert_eq!(
        (status, posted),
        (200, vec![ada.to_owned(), bob.to_owned()])
    );

    // A non-subscriber is refused with an error frame to itself alone, and hears nothing.
    let message = room.event_from("message.json", cy, None, Some(to_orders("let me in")));
    assert_eq!(
        room.posts_for(&key, message).await,
        (400, vec![cy.to_owned()])
    );

    // The bound: a third channel is refused; a bad name too.
    let event = room.event_from(
        "message.json",
        ada,
        Some("subscribe"),
        Some(subscribe("two")),
    );
    assert_eq!(room.posts_for(&key, event).await.0, 200);
    for channel in ["three", "no#hash"] {
        let event = room.event_from(
            "message.json",
            ada,
            Some("subscribe"),
            Some(subscribe(channel)),
        );
        assert_eq!(
            room.posts_for(&key, event).await,
            (400, vec![ada.to_owned()]),
            "{channel}"
        );
    }

    let leave = serde_json::json!({"action": "unsubscribe", "channel": "orders"});
    let event = room.event_from("message.json", ada, Some("unsubscribe"), Some(leave));
    assert_eq!(
        room.posts_for(&key, event).await,
        (200, vec![ada.to_owned()])
    );
    let message = room.event_from("message.json", bob, None, Some(to_orders("again")));
    assert_eq!(
        room.posts_for(&key, message).await,
        (200, vec![bob.to_owned()])
    );

    // Leaving the room deletes one's subscriptions: ada's "two" and bob's "orders" go.
    for id in [ada, bob] {
        let event = room.event_from("disconnect.json", id, None, None);
        assert_eq!(room.posts_for(&key, event).await.0, 200);
    }
    let logs = room.function.stop();
    let channel_table = room.environment["CHANNEL_TABLE"].clone();
    let rows = aws_sdk_dynamodb::Client::new(&sdk().await)
        .scan()
        .table_name(&channel_table)
        .send()
        .await
        .unwrap();
    let subscriptions = rows
        .items()
        .iter()
        .filter_map(|row| row["channelShard"].as_s().ok())
        .filter(|partition| !partition.ends_with("#version"))
        .count();
    assert_eq!(subscriptions, 0, "{logs}");

    let decisions = decisions(&key);
    let refused: Vec<_> = decisions.iter().filter(|d| d.2 != "Allowed").collect();
    assert!(refused.is_empty(), "{refused:#?}\n{logs}");
    let arn = |table: &str| format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}");
    let mut asked: Vec<(String, String)> = decisions
        .into_iter()
        .filter(|d| d.0.starts_with("dynamodb:"))
        .map(|d| (d.0, d.1))
        .collect();
    asked.sort();
    asked.dedup();
    let table = room.environment["TABLE_NAME"].clone();
    let mut expected = vec![
        ("dynamodb:PutItem".to_owned(), arn(&table)),
        ("dynamodb:Scan".to_owned(), arn(&table)),
        ("dynamodb:DeleteItem".to_owned(), arn(&table)),
        ("dynamodb:UpdateItem".to_owned(), arn(&table)),
        ("dynamodb:PutItem".to_owned(), arn(&channel_table)),
        ("dynamodb:DeleteItem".to_owned(), arn(&channel_table)),
        ("dynamodb:Query".to_owned(), arn(&channel_table)),
        ("dynamodb:GetItem".to_owned(), arn(&channel_table)),
        ("dynamodb:UpdateItem".to_owned(), arn(&channel_table)),
    ];
    expected.sort();
    assert_eq!(
        asked, expected,
        "no history read or written by channel messages\n{logs}"
    );
}

/// Writes `count` settled connections (`fan-00000`…) into the room's table, as the owner.
async fn crowd(table: &str, count: usize) -> Vec<String> {
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk().await);
    let ids: Vec<String> = (0..count).map(|i| format!("fan-{i:05}=")).collect();
    chatroom_testkit::write_settled_connections(&dynamodb, table, &ids).await;
    ids
}

/// The connections `key` posted to, each once per post.
fn posted_by(key: &str, api: &str, stage: &str) -> Vec<String> {
    let prefix = format!("{api}/{stage}/POST/@connections/");
    let mut posted: Vec<String> = decisions(key)
        .into_iter()
        .filter(|(action, _, decision)| {
            action == "execute-api:ManageConnections" && decision == "Allowed"
        })
        .filter_map(|(_, resource, _)| Some(resource.split_once(&prefix)?.1.to_owned()))
        .collect();
    posted.sort();
    posted
}

#[tokio::test]
#[ignore = "needs moto, the IAM gate and bootstrap.zip; run through scripts/test.sh"]
async fn a_large_broadcast_is_handed_to_copies_of_the_function_which_its_role_may_invoke() {
    let key = format!("AKIAROOMFANOUT{}", std::process::id());
    let mut service = LambdaService::listen().await;
    let port = service.endpoint().rsplit(':').next().unwrap().to_owned();
    let through_gate = format!("{}/__lambda-invoke/{port}", moto_endpoint());
    let change = [("AWS_ENDPOINT_URL_LAMBDA", through_gate)];
    let mut room = RoomFunction::start("fanout", &key, false, &change).await;
    room.copies_behind(&mut service, 2).await;
    let ids = crowd(&room.environment["TABLE_NAME"], 1_100).await;

    let event = room.event_from("message.json", &ids[0], None, None);
    assert_eq!(room.function.invoke(event).await.status_code(), 200);
    let ran = service.settled(Duration::from_secs(60)).await;
    let logs = service.stop().await + &room.function.stop();

    assert_eq!(ran.len(), 2, "two pages, each run once: {ran:#?}\n{logs}");
    let decisions = decisions(&key);
    let refused: Vec<_> = decisions.iter().filter(|d| d.2 != "Allowed").collect();
    assert!(refused.is_empty(), "{refused:#?}\n{logs}");
    let own = format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{}",
        room.name
    );
    let invokes: Vec<_> = decisions
        .iter()
        .filter(|d| d.0 == "lambda:InvokeFunction")
        .collect();
    assert_eq!(invokes.len(), 2, "{invokes:#?}");
    assert!(invokes.iter().all(|d| d.1 == own), "{invokes:#?}");
    assert_eq!(
        posted_by(&key, &room.api, &room.stage),
        ids,
        "each connection, once"
    );
}

#[tokio::test]
#[ignore = "needs moto, the IAM gate and bootstrap.zip; run through scripts/test.sh"]
async fn a_room_function_may_not_invoke_another_function_and_posts_the_pages_itself() {
    let key = format!("AKIAROOMNOFANOUT{}", std::process::id());
    let service = LambdaService::listen().await;
    let port = service.endpoint().rsplit(':').next().unwrap().to_owned();
    let change = [
        (
            "AWS_ENDPOINT_URL_LAMBDA",
            format!("{}/__lambda-invoke/{port}", moto_endpoint()),
        ),
        (
            "AWS_LAMBDA_FUNCTION_NAME",
            "chatroom-default-someone-else".to_owned(),
        ),
    ];
    let mut room = RoomFunction::start("no-fanout", &key, true, &change).await;
    let ids = crowd(&room.environment["TABLE_NAME"], 1_100).await;

    let event = room.event_from("message.json", &ids[0], None, None);
    assert_eq!(room.function.invoke(event).await.status_code(), 200);
    let logs = room.function.stop();

    let denied: Vec<_> = decisions(&key)
        .into_iter()
        .filter(|d| d.2 != "Allowed")
        .collect();
    assert!(
        !denied.is_empty()
            && denied.iter().all(|d| d.0 == "lambda:InvokeFunction"
                && d.1.ends_with(":function:chatroom-default-someone-else")),
        "{denied:#?}\n{logs}"
    );
    assert!(
        service.settled(Duration::from_secs(1)).await.is_empty(),
        "no copy ran"
    );
    assert_eq!(
        posted_by(&key, &room.api, &room.stage),
        ids,
        "posted here instead\n{logs}"
    );
}
