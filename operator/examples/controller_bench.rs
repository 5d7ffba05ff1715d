//! 1,000 ChatRooms reconciled to Ready by the controller's reconcile, with the local provider
//! and an in-process API server (tower-test) answering every request — no cluster. Prints wall
//! time and this process's peak RSS for docs/benchmarks.md (not a test: nothing is asserted
//! beyond every room becoming Ready).
//!
//! cargo run --release -p chatroom-operator --example controller_bench

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chatroom_operator::controller::{Context, Metrics, reconcile_room};
use chatroom_operator::crd::{ChatRoom, ChatRoomSpec};
use chatroom_operator::gateway::{Gateway, GatewayConfig, Limits};
use chatroom_operator::providers::local::LocalProvider;
use chatroom_operator::reconcile::Provider;
use futures::{StreamExt, stream};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};

const ROOMS: usize = 1_000;
const CONCURRENCY: usize = 4;

#[tokio::main]
async fn main() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let status_writes = Arc::new(AtomicUsize::new(0));
    let writes = status_writes.clone();
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let is_status = request.uri().path().ends_with("/status");
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            if is_status {
                writes.fetch_add(1, Ordering::Relaxed);
            }
            // Echo: the status patch and the Event come back as the API server would store them.
            let mut echo: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if is_status {
                echo["metadata"] = serde_json::json!({"name": "x", "namespace": "bench"});
                echo["spec"] = serde_json::json!({});
            }
            respond.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&echo).unwrap()))
                    .unwrap(),
            );
        }
    });
    let client = Client::new(service, "bench");
    let gateway = Gateway::new(GatewayConfig::local(
        "http://127.0.0.1:8080".parse().unwrap(),
        "http://127.0.0.1:8081".parse().unwrap(),
        Limits::default(),
    ));
    let provider = Provider::Local(LocalProvider::new(gateway.clone()));
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "chatroom-operator".into(),
            instance: None,
        },
    );
    let context = Arc::new(Context::new(
        client,
        provider,
        recorder,
        Metrics::default(),
        Duration::from_secs(300),
    ));

    let rooms: Vec<Arc<ChatRoom>> = (0..ROOMS)
        .map(|i| {
            let mut room = ChatRoom::new(&format!("room-{i:04}"), ChatRoomSpec::default());
            room.metadata.namespace = Some("bench".into());
            room.metadata.generation = Some(1);
            room.metadata.finalizers = Some(vec!["chatroom.dev/cleanup".into()]);
            Arc::new(room)
        })
        .collect();

    let started = Instant::now();
    let failures = stream::iter(rooms)
        .map(|room| reconcile_room(room, context.clone()))
        .buffer_unordered(CONCURRENCY)
        .filter(|result| std::future::ready(result.is_err()))
        .count()
        .await;
    let took = started.elapsed();

    let ready = context
        .metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("chatroom_rooms{ready=\"true\"}"))
        .unwrap_or_default()
        .to_owned();
    println!(
        "{}",
        serde_json::json!({
            "rooms": ROOMS,
            "failures": failures,
            "served_by_gateway": gateway.room_keys().len(),
            "status_writes": status_writes.load(Ordering::Relaxed),
            "ready_metric": ready,
            "wall_seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0,
            "peak_rss_mb": peak_rss_mb(),
        })
    );
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}
