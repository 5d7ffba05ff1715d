//! The real `bootstrap` binary under a minimal Lambda Runtime API, with recorded API Gateway
//! WebSocket events for all four routes, against moto (DynamoDB) and a local management API.

mod aws_support;

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_support::{ManagementApi, create_table};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chatroom_testkit::moto_endpoint;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

const CONNECTION: &str = "L0SM9cOFvHcCIhw=";

/// What a function posts back: its response or error for an invocation, or an init error.
#[derive(Debug)]
enum Outcome {
    Response(String, Value),
    Error(String, Value),
}

/// `GET …/invocation/next` hands out queued events; responses and errors are reported back.
#[derive(Default)]
struct RuntimeApi {
    queue: Mutex<VecDeque<(String, Value)>>,
    queued: Notify,
    outcomes: Mutex<Option<mpsc::UnboundedSender<Outcome>>>,
}

async fn next_invocation(State(api): State<Arc<RuntimeApi>>) -> impl IntoResponse {
    loop {
        let next = api.queue.lock().unwrap().pop_front();
        if let Some((request_id, event)) = next {
            let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", request_id.parse().unwrap());
            headers.insert(
                "lambda-runtime-deadline-ms",
                deadline.to_string().parse().unwrap(),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:chat"
                    .parse()
                    .unwrap(),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".parse().unwrap(),
            );
            return (headers, event.to_string());
        }
        api.queued.notified().await;
    }
}

async fn report(
    State(api): State<Arc<RuntimeApi>>,
    Path((request_id, kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let outcome = if kind == "response" {
        Outcome::Response(request_id, body)
    } else {
        Outcome::Error(request_id, body)
    };
    if let Some(sender) = api.outcomes.lock().unwrap().as_ref() {
        let _ = sender.send(outcome);
    }
    StatusCode::ACCEPTED
}

struct Function {
    child: Child,
    api: Arc<RuntimeApi>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    invocations: usize,
}

impl Function {
    async fn start(table: &str, callback_url: &str) -> Self {
        let env = [
            ("TABLE_NAME", table.to_owned()),
            ("CALLBACK_URL", callback_url.to_owned()),
            ("AWS_ENDPOINT_URL", moto_endpoint()),
        ];
        Self::start_with(&env).await
    }

    /// The function with the Lambda environment and `env` (which must hold `TABLE_NAME`).
    async fn start_with(env: &[(&str, String)]) -> Self {
        let api = Arc::new(RuntimeApi::default());
        let (sender, outcomes) = mpsc::unbounded_channel();
        *api.outcomes.lock().unwrap() = Some(sender);
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(report))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env_clear()
            .envs(lambda_environment(&addr.to_string()))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self {
            child,
            api,
            outcomes,
            invocations: 0,
        }
    }

    /// Invokes the function with a recorded event and waits for its answer.
    async fn invoke(&mut self, event_file: &str) -> Outcome {
        self.invoke_with(event_file, |_| {}).await
    }

    /// Invokes the function with a recorded event, changed by `change`.
    async fn invoke_with(&mut self, event_file: &str, change: impl FnOnce(&mut Value)) -> Outcome {
        let path = format!("{}/tests/events/{event_file}", env!("CARGO_MANIFEST_DIR"));
        let mut event: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        change(&mut event);
        self.invocations += 1;
        let request_id = format!("request-{}", self.invocations);
        self.api
            .queue
            .lock()
            .unwrap()
            .push_back((request_id.clone(), event));
        self.api.queued.notify_waiters();
        let outcome = tokio::time::timeout(Duration::from_secs(20), self.outcomes.recv())
            .await
            .unwrap_or_else(|_| panic!("no answer to {event_file}"))
            .unwrap();
        match &outcome {
            Outcome::Response(id, _) | Outcome::Error(id, _) => assert_eq!(*id, request_id),
        }
        outcome
    }

    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let output = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout)
    }
}

fn lambda_environment(runtime_api: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", "chat-default-lobby".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "test".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/chat-default-lobby".to_owned(),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}

fn status_code(outcome: &Outcome) -> i64 {
    match outcome {
        Outcome::Response(_, body) => body["statusCode"].as_i64().unwrap(),
        Outcome::Error(_, body) => panic!("the function failed: {body}"),
    }
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn all_four_routes_through_the_real_bootstrap() {
    let sdk = chatroom_testkit::moto_sdk_config().await;
    let (dynamodb, table) = create_table(&sdk, "bootstrap").await;
    // A connection whose client vanished without a $disconnect: its post answers 410.
    let stale = "StaleConnId0000=";
    dynamodb
        .put_item()
        .table_name(&table)
        .item("connectionId", AttributeValue::S(stale.into()))
        .send()
        .await
        .unwrap();
    let management = ManagementApi::default();
    management.gone.lock().unwrap().insert(stale.to_owned());
    let (endpoint, management) = management.start().await;
    let mut function = Function::start(&table, &format!("{endpoint}/@connections")).await;
    let row = |id: &'static str| {
        let dynamodb = dynamodb.clone();
        let table = table.clone();
        async move {
            dynamodb
                .get_item()
                .table_name(table)
                .key("connectionId", AttributeValue::S(id.into()))
                .send()
                .await
                .unwrap()
                .item
        }
    };

    assert_eq!(status_code(&function.invoke("connect.json").await), 200);
    let stored = row(CONNECTION)
        .await
        .expect("$connect stored the connection");
    assert_eq!(stored["displayName"], AttributeValue::S("ada".into()));
    assert!(stored.contains_key("expiresAt"));

    assert_eq!(status_code(&function.invoke("message.json").await), 200);
    let posts = management.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, CONNECTION);
    let frame: Value = serde_json::from_str(&posts[0].1).unwrap();
    assert_eq!(
        frame,
        serde_json::json!({
            "type": "message", "from": "ada", "message": "Hello everyone", "sentAt": "2026-11-25T08:00:01.123Z"
        })
    );
    assert!(
        row(stale).await.is_none(),
        "the stale connection that answered 410 was removed"
    );
    assert!(row(CONNECTION).await.is_some(), "the sender was kept");

    assert_eq!(status_code(&function.invoke("default.json").await), 200);
    let hint = management.posts.lock().unwrap()[1].clone();
    assert_eq!(hint.0, CONNECTION);
    assert!(hint.1.contains(r#"\"action\":\"onMessage\""#), "{}", hint.1);

    assert_eq!(status_code(&function.invoke("disconnect.json").await), 200);
    assert!(
        row(CONNECTION).await.is_none(),
        "$disconnect removed the connection"
    );

    let logs = function.stop();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let handled: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "handled")
        .collect();
    assert_eq!(
        handled.len(),
        4,
        "one JSON log line per invocation:\n{logs}"
    );
    assert_eq!(handled[1]["span"]["request_id"], "request-2");
    assert_eq!(handled[1]["span"]["route"], "onMessage");
    assert!(
        !logs.contains("Hello everyone"),
        "message bodies stay out of logs:\n{logs}"
    );
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_store_failure_is_reported_to_lambda_as_an_invocation_error() {
    let (endpoint, _management) = ManagementApi::default().start().await;
    let mut function = Function::start("no-such-table", &endpoint).await;
    let Outcome::Error(_, body) = function.invoke("message.json").await else {
        panic!("expected an invocation error")
    };
    assert!(body.to_string().contains("could not list"), "{body}");
    function.stop();
}

#[test]
fn without_table_name_the_function_refuses_to_start_and_says_why() {
    let output = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .envs(vec![
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_REGION", "us-east-1"),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(stderr.contains("TABLE_NAME is not set"), "{stderr}");
}

/// The issuer's key set on loopback, as `spec.auth.jwt.jwksUri` may name it in tests.
async fn serve_keys(kids: &[&str]) -> String {
    let body = chatroom_testkit::jwt::jwks(kids);
    let app = Router::new().route("/jwks.json", get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks.json")
}

#[tokio::test]
async fn as_the_authorizer_it_allows_exactly_this_connect_for_a_good_token_and_401s_the_rest() {
    use chatroom_testkit::jwt::{AUDIENCE, ISSUER, claims, sign};
    let jwks_uri = serve_keys(&["rsa-a", "ec-c"]).await;
    let env = [
        ("TABLE_NAME", "unused".to_owned()),
        // Nothing listens there: the authorizer must not need DynamoDB.
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_owned()),
        ("AUTH_ISSUER", ISSUER.to_owned()),
        ("AUTH_AUDIENCES", AUDIENCE.to_owned()),
        ("AUTH_JWKS_URI", jwks_uri),
    ];
    let mut function = Function::start_with(&env).await;
    let with_token = |token: String| {
        move |event: &mut Value| event["queryStringParameters"]["token"] = Value::String(token)
    };

    let good = sign("ec-c", &claims("user-7", "Grace"));
    let Outcome::Response(_, answer) = function
        .invoke_with("authorizer.json", with_token(good))
        .await
    else {
        panic!("a good token is allowed")
    };
    assert_eq!(
        answer,
        serde_json::json!({
            "principalId": "user-7",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/dev/$connect"
                }]
            },
            "context": { "name": "Grace", "sub": "user-7" }
        })
    );

    let stranger = sign("rsa-stranger", &claims("user-7", "Grace"));
    for outcome in [
        function.invoke("authorizer.json").await,
        function
            .invoke_with("authorizer.json", with_token(stranger))
            .await,
    ] {
        let Outcome::Error(_, error) = outcome else {
            panic!("refused")
        };
        assert_eq!(error["errorMessage"], "Unauthorized", "{error}");
    }
    let logs = function.stop();
    assert!(logs.contains("refused a connection"), "{logs}");
    assert!(!logs.contains("eyJ"), "tokens stay out of logs:\n{logs}");
}
