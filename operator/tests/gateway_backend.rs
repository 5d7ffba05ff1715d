//! A room with its own backend on the local gateway, end to end: a real WebSocket client, a
//! small backend on loopback that checks every request as the docs show, and pushes through
//! `@connections` signed with the management keys by the AWS SDK, as on AWS.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chatroom_handlers::backend::signature::{
    RequestCheck, SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER,
};
use chatroom_operator::crd::{BackendEvent, BackendSpec, ChatRoom, ChatRoomSpec, SecretKeyRef};
use chatroom_operator::gateway::{GatewayConfig, ManagementAuth, ManagementKeys};
use chatroom_operator::providers::local::LocalProvider;
use chatroom_operator::secrets::SecretSource;
use serde_json::{Value, json};
use support::{TestGateway, assert_silent, connect, next_any_json, next_json, send_text};
use tokio::sync::mpsc;

const KEY_ID: &str = "AKIABACKENDTEST";
const SECRET: &str = "backend-test-management-secret";
const ROOM_KEY: &str = "room-signing-key";

/// One request the backend accepted.
struct Heard {
    headers: HeaderMap,
    body: Bytes,
    event: Value,
}

struct Backend {
    check: RequestCheck,
    heard: mpsc::UnboundedSender<Heard>,
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses what the documented check refuses; answers `notify` with an acknowledgement naming
/// the sender, hangs on `hang`, fails `fail`, and answers lifecycle events with nothing.
async fn backend(
    State(backend): State<Arc<Backend>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let checked = backend.check.accept(
        header(&headers, TIMESTAMP_HEADER),
        header(&headers, SIGNATURE_HEADER),
        &body,
        now(),
    );
    if let Err(refused) = checked {
        return (StatusCode::UNAUTHORIZED, refused.to_string());
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    let route = event["requestContext"]["routeKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let name = event["requestContext"]["authorizer"]["name"].clone();
    backend
        .heard
        .send(Heard {
            headers,
            body,
            event,
        })
        .unwrap();
    match route.as_str() {
        "notify" => (
            StatusCode::OK,
            json!({ "type": "ack", "to": name }).to_string(),
        ),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (StatusCode::OK, "too late".into())
        }
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "broken".into()),
        _ => (StatusCode::NO_CONTENT, String::new()),
    }
}

async fn next_heard(heard: &mut mpsc::UnboundedReceiver<Heard>) -> Heard {
    tokio::time::timeout(support::PATIENCE, heard.recv())
        .await
        .expect("the backend heard nothing in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_backend_hears_its_routes_and_events_answers_the_sender_and_pushes_to_one_client() {
    let (tx, mut heard) = mpsc::unbounded_channel();
    let state = Arc::new(Backend {
        check: RequestCheck::new(ROOM_KEY),
        heard: tx,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/chat", axum::routing::post(backend))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The key where `--secrets-dir` looks for it: DIR/{namespace}/{name}/{key}.
    let secrets = std::env::temp_dir().join(format!("chatroom-backend-{}", std::process::id()));
    std::fs::create_dir_all(secrets.join("default/chat-backend")).unwrap();
    std::fs::write(
        secrets.join("default/chat-backend/hmac"),
        format!("{ROOM_KEY}\n"),
    )
    .unwrap();

    let keys = ManagementKeys {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
    };
    let gateway = TestGateway::start_with(|config| GatewayConfig {
        management_auth: ManagementAuth::SigV4(keys),
        ..config
    })
    .await;
    let provider = LocalProvider::new(gateway.gateway.clone())
        .with_secrets(SecretSource::Dir(secrets.clone()));
    let mut room = ChatRoom::new(
        "lobby",
        ChatRoomSpec {
            backend: Some(BackendSpec {
                url: format!("http://{backend_addr}/chat"),
                routes: vec!["notify".into(), "hang".into(), "fail".into()],
                events: vec![BackendEvent::Connect, BackendEvent::Disconnect],
                secret_ref: Some(SecretKeyRef {
                    name: "chat-backend".into(),
                    key: "hmac".into(),
                }),
                timeout_seconds: 1,
            }),
            ..ChatRoomSpec::default()
        },
    );
    room.metadata.namespace = Some("default".into());
    let report = provider.converge(&room).await;
    assert!(report.failure().is_none(), "{:?}", report.failure());
    let url = report.outputs.websocket_url.unwrap();
    let callback = report.outputs.callback_url.unwrap();

    // bob is in the room first; then ada comes, and the backend hears of her with her name.
    let mut bob = connect(&format!("{url}?name=bob")).await;
    let bob_id = next_heard(&mut heard).await.event["requestContext"]["connectionId"].clone();
    let mut ada = connect(&format!("{url}?name=ada")).await;
    let arrival = next_heard(&mut heard).await.event;
    let context = &arrival["requestContext"];
    assert_eq!(context["eventType"], "CONNECT");
    assert_eq!(context["routeKey"], "$connect");
    assert_eq!(context["authorizer"]["name"], "ada");
    let ada_id = context["connectionId"].as_str().unwrap().to_owned();
    assert_ne!(json!(ada_id), bob_id);
    assert_eq!(next_any_json(&mut bob).await["event"], "join");

    // A message on the backend's route reaches it with who sent it; its answer reaches ada.
    send_text(&mut ada, r#"{"action":"notify","order":42}"#).await;
    let notify = next_heard(&mut heard).await;
    let context = &notify.event["requestContext"];
    assert_eq!(context["eventType"], "MESSAGE");
    assert_eq!(context["routeKey"], "notify");
    assert_eq!(context["connectionId"], ada_id.as_str());
    assert_eq!(context["authorizer"]["name"], "ada");
    assert!(context["connectedAt"].as_i64().unwrap() > 0);
    assert_eq!(notify.event["body"], r#"{"action":"notify","order":42}"#);
    assert_eq!(
        next_json(&mut ada).await,
        json!({ "type": "ack", "to": "ada" })
    );
    assert_silent(&mut bob).await;

    // The documented check refuses that very request replayed, and a forged one.
    let replayed = state.check.accept(
        header(&notify.headers, TIMESTAMP_HEADER),
        header(&notify.headers, SIGNATURE_HEADER),
        &notify.body,
        now(),
    );
    assert_eq!(replayed, Err(SignatureError::Replayed));
    let mut forged = notify.body.to_vec();
    forged.extend_from_slice(b" ");
    let forged = state.check.accept(
        header(&notify.headers, TIMESTAMP_HEADER),
        header(&notify.headers, SIGNATURE_HEADER),
        &forged,
        now(),
    );
    assert_eq!(forged, Err(SignatureError::Forged));
    let stale = state.check.accept(
        header(&notify.headers, TIMESTAMP_HEADER),
        header(&notify.headers, SIGNATURE_HEADER),
        &notify.body,
        now() + 600,
    );
    assert!(matches!(stale, Err(SignatureError::Stale(_))), "{stale:?}");

    // Later, the backend pushes to exactly ada through @connections, signed as on AWS.
    let management = aws_sdk_apigatewaymanagement::Client::from_conf(
        aws_sdk_apigatewaymanagement::Config::builder()
            .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
            .region(aws_sdk_apigatewaymanagement::config::Region::new(
                "us-east-1",
            ))
            .endpoint_url(callback.trim_end_matches("/@connections"))
            .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                KEY_ID, SECRET, None, None, "test",
            ))
            .build(),
    );
    management
        .post_to_connection()
        .connection_id(&ada_id)
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
            r#"{"type":"order","status":"shipped"}"#,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut ada).await,
        json!({ "type": "order", "status": "shipped" })
    );
    assert_silent(&mut bob).await;

    // A backend that hangs costs ada one error frame after the room's timeout, and the route
    // still works; one that answers 500 costs one error frame too.
    let started = std::time::Instant::now();
    send_text(&mut ada, r#"{"action":"hang"}"#).await;
    let error = next_json(&mut ada).await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1s"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        next_heard(&mut heard).await.event["requestContext"]["routeKey"],
        "hang"
    );
    assert_silent(&mut ada).await;
    send_text(&mut ada, r#"{"action":"fail"}"#).await;
    let error = next_json(&mut ada).await;
    assert!(
        error["message"].as_str().unwrap().contains("HTTP 500"),
        "{error}"
    );
    assert_eq!(
        next_heard(&mut heard).await.event["requestContext"]["routeKey"],
        "fail"
    );
    assert_silent(&mut ada).await;
    send_text(&mut ada, r#"{"action":"notify"}"#).await;
    assert_eq!(next_json(&mut ada).await["type"], "ack");
    next_heard(&mut heard).await;

    // The chat itself is untouched: the message route still broadcasts.
    send_text(&mut ada, r#"{"action":"onMessage","message":"hi"}"#).await;
    assert_eq!(next_json(&mut bob).await["message"], "hi");

    // ada leaves; the backend hears it, with her id and name.
    drop(ada);
    let departure = next_heard(&mut heard).await.event;
    assert_eq!(departure["requestContext"]["eventType"], "DISCONNECT");
    assert_eq!(departure["requestContext"]["connectionId"], ada_id.as_str());
    assert_eq!(departure["requestContext"]["authorizer"]["name"], "ada");
    std::fs::remove_dir_all(secrets).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_secret_is_missing_is_not_served_and_says_which_file() {
    let gateway = TestGateway::start_with(|config| config).await;
    let empty = std::env::temp_dir().join(format!("chatroom-no-secrets-{}", std::process::id()));
    let provider =
        LocalProvider::new(gateway.gateway.clone()).with_secrets(SecretSource::Dir(empty));
    let mut room = ChatRoom::new(
        "lobby",
        ChatRoomSpec {
            backend: Some(BackendSpec {
                url: "https://backend.example.com/chat".into(),
                routes: vec!["notify".into()],
                events: Vec::new(),
                secret_ref: Some(SecretKeyRef {
                    name: "chat-backend".into(),
                    key: "hmac".into(),
                }),
                timeout_seconds: 5,
            }),
            ..ChatRoomSpec::default()
        },
    );
    room.metadata.namespace = Some("default".into());
    let report = provider.converge(&room).await;
    let failure = report.failure().expect("not served without its key");
    assert_eq!(failure.reason, "SecretUnavailable");
    assert!(!failure.permanent, "retried: the Secret may yet come");
    assert!(
        failure.message.contains("default/chat-backend/hmac"),
        "{}",
        failure.message
    );
    assert!(gateway.gateway.room_keys().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_a_backend_at_an_internal_address_is_refused_unless_allowed() {
    use chatroom_handlers::backend::AddressPolicy;
    let gateway = TestGateway::start_with(|config| config).await;
    // Without the secretRef validation asks for: the provider's own check is what is shown.
    let metadata = |name: &str| {
        let mut room = ChatRoom::new(
            name,
            ChatRoomSpec {
                backend: Some(BackendSpec {
                    url: "https://169.254.169.254/latest/meta-data".into(),
                    routes: vec!["notify".into()],
                    events: Vec::new(),
                    secret_ref: None,
                    timeout_seconds: 5,
                }),
                ..ChatRoomSpec::default()
            },
        );
        room.metadata.namespace = Some("default".into());
        room
    };
    let guarded = LocalProvider::new(gateway.gateway.clone())
        .with_backend_addresses(AddressPolicy::PublicOnly);
    let report = guarded.converge(&metadata("guarded")).await;
    let failure = report.failure().expect("refused");
    assert!(
        failure
            .message
            .starts_with("spec.backend.url: 169.254.169.254 is an address"),
        "{}",
        failure.message
    );
    let allowed = LocalProvider::new(gateway.gateway.clone());
    assert!(
        allowed
            .converge(&metadata("allowed"))
            .await
            .failure()
            .is_none()
    );
}
