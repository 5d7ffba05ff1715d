//! The real `bootstrap` binary under a minimal Lambda Runtime API, with recorded API Gateway
//! WebSocket events for all four routes, against moto (DynamoDB) and a local management API.

mod aws_support;

use std::process::Command;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_support::{ManagementApi, create_table};
use axum::Router;
use axum::routing::get;
use chatroom_testkit::lambda_runtime::{Function, Outcome};
use chatroom_testkit::moto_endpoint;
use serde_json::Value;

const CONNECTION: &str = "L0SM9cOFvHcCIhw=";

/// The real `bootstrap` with `env` (which must hold `TABLE_NAME`).
async fn start_function(env: &[(&str, String)]) -> Function {
    Function::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_bootstrap")),
        "chat-default-lobby",
        env,
    )
    .await
}

/// The function against moto's DynamoDB, posting to `callback_url`.
async fn start_against_moto(table: &str, callback_url: &str) -> Function {
    start_function(&[
        ("TABLE_NAME", table.to_owned()),
        ("CALLBACK_URL", callback_url.to_owned()),
        ("AWS_ENDPOINT_URL", moto_endpoint()),
    ])
    .await
}

/// A recorded event from tests/events, changed by `change`.
fn event_with(event_file: &str, change: impl FnOnce(&mut Value)) -> Value {
    let path = format!("{}/tests/events/{event_file}", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    change(&mut event);
    event
}

fn event(event_file: &str) -> Value {
    event_with(event_file, |_| {})
}

fn status_code(outcome: &Outcome) -> i64 {
    outcome.status_code()
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
    let mut function = start_against_moto(&table, &format!("{endpoint}/@connections")).await;
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

    assert_eq!(
        status_code(&function.invoke(event("connect.json")).await),
        200
    );
    let stored = row(CONNECTION)
        .await
        .expect("$connect stored the connection");
    assert_eq!(stored["displayName"], AttributeValue::S("ada".into()));
    assert!(stored.contains_key("expiresAt"));

    assert_eq!(
        status_code(&function.invoke(event("message.json")).await),
        200
    );
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

    assert_eq!(
        status_code(&function.invoke(event("default.json")).await),
        200
    );
    let hint = management.posts.lock().unwrap()[1].clone();
    assert_eq!(hint.0, CONNECTION);
    assert!(hint.1.contains(r#"\"action\":\"onMessage\""#), "{}", hint.1);

    assert_eq!(
        status_code(&function.invoke(event("disconnect.json")).await),
        200
    );
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
    let mut function = start_against_moto("no-such-table", &endpoint).await;
    let Outcome::Error(_, body) = function.invoke(event("message.json")).await else {
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
    let mut function = start_function(&env).await;
    let with_token = |token: String| {
        move |event: &mut Value| event["queryStringParameters"]["token"] = Value::String(token)
    };

    let good = sign("ec-c", &claims("user-7", "Grace"));
    let Outcome::Response(_, answer) = function
        .invoke(event_with("authorizer.json", with_token(good)))
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
        function.invoke(event("authorizer.json")).await,
        function
            .invoke(event_with("authorizer.json", with_token(stranger)))
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

/// A backend on loopback that checks each request as docs/backend.md shows, keeps what it
/// heard, acknowledges `notify` and fails `fail`.
async fn serve_backend(key: &'static str) -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use chatroom_handlers::backend::signature::{RequestCheck, SIGNATURE_HEADER, TIMESTAMP_HEADER};
    let heard: Arc<Mutex<Vec<Value>>> = Arc::default();
    let check = Arc::new(RequestCheck::new(key));
    let kept = heard.clone();
    let app = Router::new().route(
        "/chat",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (check, kept) = (check.clone(), kept.clone());
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                if let Err(refused) = check.accept(
                    header(TIMESTAMP_HEADER),
                    header(SIGNATURE_HEADER),
                    &body,
                    now,
                ) {
                    return (StatusCode::UNAUTHORIZED, refused.to_string());
                }
                let event: Value = serde_json::from_slice(&body).unwrap();
                let route = event["requestContext"]["routeKey"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                kept.lock().unwrap().push(event);
                match route.as_str() {
                    "notify" => (StatusCode::OK, r#"{"type":"ack"}"#.to_owned()),
                    "fail" => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                    _ => (StatusCode::NO_CONTENT, String::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/chat"), heard)
}

/// The event as the function was given it, and as the backend must receive it: every field API
/// Gateway sent, unchanged, and the sender's name added to the authorizer's context.
fn assert_forwarded_as_received(received: &Value, forwarded: &Value, name: &str) {
    let mut expected = received.clone();
    expected["requestContext"]["authorizer"] = serde_json::json!({ "name": name });
    for (key, value) in expected.as_object().unwrap() {
        if key == "requestContext" {
            for (field, value) in value.as_object().unwrap() {
                assert_eq!(
                    &forwarded["requestContext"][field], value,
                    "requestContext.{field}"
                );
            }
        } else {
            assert_eq!(&forwarded[key], value, "{key}");
        }
    }
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_backend_hears_the_events_as_the_function_got_them_and_answers_the_sender() {
    let sdk = chatroom_testkit::moto_sdk_config().await;
    let (_, table) = create_table(&sdk, "backend").await;
    let (endpoint, management) = ManagementApi::default().start().await;
    let (backend_url, heard) = serve_backend("function-key").await;
    let mut function = start_function(&[
        ("TABLE_NAME", table.clone()),
        ("CALLBACK_URL", format!("{endpoint}/@connections")),
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("BACKEND_URL", backend_url),
        ("BACKEND_ROUTES", "notify,fail".to_owned()),
        ("BACKEND_EVENTS", "connect,disconnect".to_owned()),
        ("BACKEND_SECRET", "function-key".to_owned()),
        ("BACKEND_TIMEOUT_SECONDS", "2".to_owned()),
    ])
    .await;

    let connect = event("connect.json");
    assert_eq!(status_code(&function.invoke(connect.clone()).await), 200);
    let notify = event_with("message.json", |e| {
        e["requestContext"]["routeKey"] = "notify".into();
        e["body"] = r#"{"action":"notify","order":42}"#.into();
    });
    assert_eq!(status_code(&function.invoke(notify.clone()).await), 200);
    let fail = event_with("message.json", |e| {
        e["requestContext"]["routeKey"] = "fail".into();
        e["body"] = r#"{"action":"fail"}"#.into();
    });
    assert_eq!(status_code(&function.invoke(fail).await), 502);
    let disconnect = event("disconnect.json");
    assert_eq!(status_code(&function.invoke(disconnect.clone()).await), 200);

    let heard = heard.lock().unwrap().clone();
    let routes: Vec<&str> = heard
        .iter()
        .map(|e| e["requestContext"]["routeKey"].as_str().unwrap())
        .collect();
    assert_eq!(routes, ["$connect", "notify", "fail", "$disconnect"]);
    assert_forwarded_as_received(&connect, &heard[0], "ada");
    assert_forwarded_as_received(&notify, &heard[1], "ada");
    assert_forwarded_as_received(&disconnect, &heard[3], "ada");

    let posts = management.posts.lock().unwrap().clone();
    assert_eq!(
        posts[0],
        (CONNECTION.to_owned(), r#"{"type":"ack"}"#.to_owned())
    );
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(
        posts[1].1.contains("HTTP 500"),
        "one error frame: {posts:?}"
    );
    function.stop();
}
