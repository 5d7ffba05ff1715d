//! Measures the Lambda function's numbers for docs/benchmarks.md (not a test: nothing here is
//! asserted):
//! - init: time from spawning `bootstrap` until it asks the Runtime API for its first event;
//! - fan-out: one broadcast to 1,000 connections through the real management-API client
//!   against a loopback endpoint that answers at once.
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
use chatroom_handlers::aws::ManagementApiSender;
use chatroom_handlers::{Connection, ConnectionStore, Fanout, MemoryStore, broadcast};

const INIT_RUNS: usize = 20;
const FANOUT_RUNS: usize = 5;
const CONNECTIONS: usize = 1_000;

#[tokio::main]
async fn main() {
    let bootstrap = std::env::args()
        .nth(1)
        .expect("usage: lambda_bench PATH_TO_BOOTSTRAP");
    let mut init = Vec::new();
    for _ in 0..INIT_RUNS {
        init.push(init_time(&bootstrap).await);
    }
    let mut fanout = Vec::new();
    for _ in 0..FANOUT_RUNS {
        fanout.push(fanout_time().await);
    }
    init.sort();
    fanout.sort();
    println!(
        "{}",
        serde_json::json!({
            "init_ms": { "runs": INIT_RUNS, "p50": ms(init[INIT_RUNS / 2]), "max": ms(init[INIT_RUNS - 1]) },
            "fanout_1000_ms": { "runs": FANOUT_RUNS, "p50": ms(fanout[FANOUT_RUNS / 2]), "max": ms(fanout[FANOUT_RUNS - 1]) },
        })
    );
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Spawn to first `GET /runtime/invocation/next`.
async fn init_time(bootstrap: &str) -> Duration {
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

async fn fanout_time() -> Duration {
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
    let sender = ManagementApiSender::new(&sdk, &format!("http://{addr}/dev"));
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

    let started = Instant::now();
    let report = broadcast(
        &store,
        &sender,
        &recipients,
        payload,
        Fanout::at(chrono::Utc::now().timestamp_millis(), 64),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(report.delivered, CONNECTIONS, "every post succeeded");
    server.abort();
    elapsed
}
