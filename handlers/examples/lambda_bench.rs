//! Measures the Lambda function's numbers for docs/benchmarks.md (not a test: nothing here is
//! asserted):
//! - init: time from spawning `bootstrap` until it asks the Runtime API for its first event;
//! - fan-out: one broadcast to 1,000 connections through the function's `@connections` client
//!   against a loopback endpoint that answers at once: its time, and the CPU the posting thread
//!   spent per post;
//! - a message, end to end through `Function::handle` (DynamoDB and the management API both
//!   stubbed on loopback), with and without history: the DynamoDB requests it makes and its
//!   time. Init is measured with history configured, and with auth configured, too.
//!
//! cargo run --release -p chatroom-handlers --example lambda_bench -- target/lambda/bootstrap/bootstrap

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use chatroom_handlers::aws::{ConnectionsApi, Function, FunctionConfig, ManagementApiSender};
use chatroom_handlers::{
    ApiGatewayWebsocketProxyRequest, Connection, ConnectionStore, Fanout, MemoryStore, broadcast,
};

const INIT_RUNS: usize = 20;
const FANOUT_RUNS: usize = 5;
const CONNECTIONS: usize = 1_000;

#[tokio::main]
async fn main() {
    let bootstrap = std::env::args()
        .nth(1)
        .expect("usage: lambda_bench PATH_TO_BOOTSTRAP");
    let mut init = Vec::new();
    let mut init_history = Vec::new();
    let mut init_auth = Vec::new();
    for _ in 0..INIT_RUNS {
        init.push(init_time(&bootstrap, &[]).await);
        init_history.push(init_time(&bootstrap, HISTORY_ENV).await);
        init_auth.push(init_time(&bootstrap, AUTH_ENV).await);
    }
    let (mut fanout, mut fanout_cpu) = (Vec::new(), Vec::new());
    for _ in 0..FANOUT_RUNS {
        let (time, cpu) = fanout_time().await;
        fanout.push(time);
        fanout_cpu.push(cpu);
    }
    let (mut plain, mut kept) = (Vec::new(), Vec::new());
    let (mut plain_requests, mut kept_requests) = (Vec::new(), Vec::new());
    for _ in 0..FANOUT_RUNS {
        let (time, requests) = message_through_function(false).await;
        plain.push(time);
        plain_requests = requests;
        let (time, requests) = message_through_function(true).await;
        kept.push(time);
        kept_requests = requests;
    }
    for runs in [
        &mut init,
        &mut init_history,
        &mut init_auth,
        &mut fanout,
        &mut fanout_cpu,
        &mut plain,
        &mut kept,
    ] {
        runs.sort();
    }
    let summary = |runs: &[Duration]| serde_json::json!({ "runs": runs.len(), "p50": ms(runs[runs.len() / 2]), "max": ms(runs[runs.len() - 1]) });
    println!(
        "{}",
        serde_json::json!({
            "init_ms": summary(&init),
            "init_with_history_ms": summary(&init_history),
            "init_with_auth_ms": summary(&init_auth),
            "fanout_1000_ms": summary(&fanout),
            "fanout_cpu_us_per_post": {
                "runs": fanout_cpu.len(),
                "p50": fanout_cpu[fanout_cpu.len() / 2].as_secs_f64() * 1e6 / CONNECTIONS as f64,
            },
            "message_to_1000_ms": { "history_off": summary(&plain), "history_on": summary(&kept) },
            "message_dynamodb_requests": { "history_off": plain_requests, "history_on": kept_requests },
        })
    );
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// A room with `spec.history`, as the operator configures its function.
const HISTORY_ENV: &[(&str, &str)] = &[
    ("HISTORY_TABLE", "bench-history"),
    ("HISTORY_MESSAGES", "50"),
    ("HISTORY_RETENTION_SECONDS", "86400"),
    ("ROOM", "default/bench"),
];

/// A room with `spec.auth.jwt`: keys are fetched on the first token, never at init.
const AUTH_ENV: &[(&str, &str)] = &[
    ("AUTH_ISSUER", "https://login.example.com/"),
    ("AUTH_AUDIENCES", "chat"),
    (
        "AUTH_JWKS_URI",
        "https://login.example.com/.well-known/jwks.json",
    ),
    ("AUTH_IDENTITY_SOURCE", "querystring.token"),
];

/// Spawn to first `GET /runtime/invocation/next`, with `extra_env` on top of a plain room's.
async fn init_time(bootstrap: &str, extra_env: &[(&str, &str)]) -> Duration {
    let first_poll: Arc<Mutex<Option<Instant>>> = Arc::default();
    let seen = first_poll.clone();
    let app = Router::new().route(
        "/2018-06-01/runtime/invocation/next",
        get(move || {
            seen.lock().unwrap().get_or_insert_with(Instant::now);
            async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let started = Instant::now();
    let mut child = Command::new(bootstrap)
        .env_clear()
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", addr.to_string().as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "bench"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("TABLE_NAME", "bench"),
        ])
        .envs(extra_env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bootstrap starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let polled = loop {
        if let Some(at) = *first_poll.lock().unwrap() {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "bootstrap never polled for an event"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    polled - started
}

/// The broadcast's time, and the CPU time of the one thread it ran on (the endpoint runs on
/// other threads).
async fn fanout_time() -> (Duration, Duration) {
    let app = Router::new().route(
        "/{stage}/@connections/{id}",
        post(|| async { StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .load()
        .await;
    let sender = ManagementApiSender::new(
        ConnectionsApi::new(&sdk).expect("TLS client"),
        &format!("http://{addr}/dev"),
    );
    let store = MemoryStore::new();
    for i in 0..CONNECTIONS {
        store
            .put(Connection {
                id: format!("conn{i:04}"),
                display_name: None,
                connected_at_ms: 1,
            })
            .await
            .unwrap();
    }
    let recipients = store.list().await.unwrap();
    let payload = Bytes::from(format!(
        r#"{{"type":"message","from":"bench","message":"{}","sentAt":"2026-11-25T00:00:00.000Z"}}"#,
        "x".repeat(100)
    ));

    let posting = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (cpu_before, started) = (thread_cpu(), Instant::now());
        let report = runtime.block_on(broadcast(
            &store,
            &sender,
            &recipients,
            payload,
            Fanout::at(chrono::Utc::now().timestamp_millis(), 64),
        ));
        let (elapsed, cpu) = (started.elapsed(), thread_cpu() - cpu_before);
        assert_eq!(report.delivered, CONNECTIONS, "every post succeeded");
        (elapsed, cpu)
    });
    let measured = tokio::task::spawn_blocking(move || posting.join().unwrap())
        .await
        .unwrap();
    server.abort();
    measured
}

fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// One message from one of 1,000 connections, through `Function::handle` as Lambda runs it:
/// DynamoDB is a loopback stub that answers Scan with the 1,000 rows and PutItem with `{}`,
/// the management API one that answers 200. Returns the time and the DynamoDB operations, in
/// order.
async fn message_through_function(history: bool) -> (Duration, Vec<String>) {
    let operations: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = operations.clone();
    let rows: Vec<serde_json::Value> = (0..CONNECTIONS)
        .map(|i| serde_json::json!({"connectionId": {"S": format!("conn{i:04}")}}))
        .collect();
    let scan =
        serde_json::json!({"Items": rows, "Count": CONNECTIONS, "ScannedCount": CONNECTIONS})
            .to_string();
    let dynamodb = Router::new().route(
        "/",
        post(move |headers: axum::http::HeaderMap| {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .trim_start_matches("DynamoDB_20120810.")
                .to_owned();
            let body = if target == "Scan" {
                scan.clone()
            } else {
                "{}".to_owned()
            };
            seen.lock().unwrap().push(target);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/x-amz-json-1.0",
                    )],
                    body,
                )
            }
        }),
    );
    let connections = Router::new().route(
        "/{stage}/@connections/{id}",
        post(|| async { StatusCode::OK }),
    );
    let serve = |app: Router| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (
            addr,
            tokio::spawn(async move { axum::serve(listener, app).await }),
        )
    };
    let (dynamodb_addr, dynamodb_server) = serve(dynamodb).await;
    let (connections_addr, connections_server) = serve(connections).await;

    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(format!("http://{dynamodb_addr}"))
        .load()
        .await;
    let callback = format!("http://{connections_addr}/dev");
    let mut environment = vec![("TABLE_NAME", "bench"), ("CALLBACK_URL", callback.as_str())];
    if history {
        environment.extend(HISTORY_ENV.iter().copied());
    }
    let config = FunctionConfig::from_lookup(|name| {
        environment
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let function = Function::new(&sdk, config).expect("the bench's room has no auth");
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some("onMessage".into());
    event.request_context.connection_id = Some("conn0000".into());
    event.request_context.request_id = Some("bench-request".into());
    event.request_context.request_time_epoch = chrono::Utc::now().timestamp_millis();
    event.request_context.stage = Some("dev".into());
    event.body = Some(format!(
        r#"{{"action":"onMessage","message":"{}"}}"#,
        "x".repeat(100)
    ));

    let started = Instant::now();
    let response = function.handle(&event).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status_code, 200);
    dynamodb_server.abort();
    connections_server.abort();
    let operations = operations.lock().unwrap().clone();
    (elapsed, operations)
}
