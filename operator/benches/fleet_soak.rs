//! The fleet soak for docs/benchmarks.md: `chatroom-operator run --provider aws` over N rooms,
//! against moto (`MOTO_ENDPOINT`) and the HTTP test API server, with a short resync. Prints
//! one JSON line: time until every room is Ready, AWS requests per reconcile by service in
//! steady state, the busiest second of API Gateway requests, the operator's RSS across the
//! soak, and the time to delete every room.
//!
//! bash scripts/bench-fleet.sh 1000 10      # rooms, minutes; starts moto itself
//!
//! Under `cargo test` (no `--bench`) it runs a three-room, ten-second smoke of itself.

#[path = "../tests/apiserver/mod.rs"]
mod apiserver;
#[path = "../tests/binary/mod.rs"]
mod binary;
#[path = "../tests/fleet/mod.rs"]
mod fleet;
#[path = "../tests/rbac/mod.rs"]
mod rbac;
#[path = "../tests/replica/mod.rs"]
mod replica;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apiserver::ApiServer;
use apiserver::replica::{NAMESPACE, ready_url};
use clap::Parser;
use fleet::{Counters, busiest_second, is_api_gateway, is_mutating, memory_kib};
use replica::Replica;
use serde_json::json;

#[derive(Parser)]
struct Soak {
    /// Rooms in the fleet.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Minutes of steady state, once every room is Ready.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// `--resync` for the operator; it stretches it itself to keep within API Gateway's rate.
    #[arg(long, default_value = "2s")]
    resync: String,
    /// `--aws-rate-limit` for the operator (empty: its defaults).
    #[arg(long, default_value = "")]
    rate_limits: String,
    /// How long to wait for the fleet to become Ready, or to go, in minutes.
    #[arg(long, default_value_t = 60)]
    patience: u64,
    /// Set by `cargo bench` (the smoke run of `cargo test` has no flags of its own).
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test` passes the test harness's own flags (filters,
    // --include-ignored, --skip …), which the smoke run does not read.
    let benching = std::env::args().any(|a| a == "--bench");
    let mut soak = if benching {
        Soak::parse()
    } else {
        Soak::parse_from(["fleet_soak"])
    };
    let steady = if benching {
        Duration::from_secs(soak.minutes * 60)
    } else {
        soak.rooms = 3;
        Duration::from_secs(10)
    };
    let patience = Duration::from_secs(soak.patience * 60);
    let run = format!("soak-{}", std::process::id());
    let cluster = ApiServer::new(&run);
    let names: Vec<String> = (0..soak.rooms).map(|i| format!("{run}-{i}")).collect();
    for name in &names {
        cluster.add_room(NAMESPACE, name, json!({}));
    }
    let zip = cluster.dir().join("bootstrap.zip");
    std::fs::write(&zip, b"bootstrap.zip for the soak").unwrap();
    let kubeconfig = cluster.kubeconfig("soak", NAMESPACE).await;
    let mut args = vec![
        "--handler-zip",
        zip.to_str().unwrap(),
        "--cluster-name",
        &run,
        "--resync",
        &soak.resync,
    ];
    if !soak.rate_limits.is_empty() {
        args.extend(["--aws-rate-limit", &soak.rate_limits]);
    }
    let started = Instant::now();
    // The account owner's keys: the soak measures the operator, not its policy (every test of
    // the suite holds it to its policy); the gate still checks every parameter.
    let replica = Replica::aws(&kubeconfig, "soak", &args, chatroom_testkit::moto_env());
    replica.wait_ready().await;
    cluster
        .wait_until("every room is Ready", patience, |c| {
            names.iter().all(|name| ready_url(c, name).is_some())
        })
        .await;
    let ready_after = started.elapsed();
    let built = Counters::scrape(&replica).await;

    // Steady state: API Gateway's running total every 250 ms, memory every minute.
    let pid = replica.pid();
    let (rss_start, _) = memory_kib(pid);
    let mut rss_by_minute = vec![rss_start];
    let mut samples = Vec::new();
    let soak_started = Instant::now();
    let mut next_minute = soak_started + Duration::from_secs(60);
    while soak_started.elapsed() < steady {
        let counters = Counters::scrape(&replica).await;
        samples.push((Instant::now(), counters.requests(is_api_gateway)));
        if Instant::now() >= next_minute {
            rss_by_minute.push(memory_kib(pid).0);
            next_minute += Duration::from_secs(60);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let end = Counters::scrape(&replica).await;
    let (rss_end, rss_peak) = memory_kib(pid);

    let reconciles = end.reconciles - built.reconciles;
    let per_reconcile: BTreeMap<String, f64> = end
        .by_service()
        .into_iter()
        .map(|(service, count)| {
            let before = built.by_service().get(&service).copied().unwrap_or(0);
            (service, (count - before) as f64 / reconciles.max(1) as f64)
        })
        .collect();
    let built_per_room: BTreeMap<String, f64> = built
        .by_service()
        .into_iter()
        .map(|(service, count)| (service, count as f64 / soak.rooms as f64))
        .collect();
    let steady_requests = end.requests(|_, _| true) - built.requests(|_, _| true);
    let steady_mutating = end.requests(is_mutating) - built.requests(is_mutating);
    let steady_listings = end.requests(|s, o| s == "ApiGatewayV2" && o == "GetApis")
        - built.requests(|s, o| s == "ApiGatewayV2" && o == "GetApis");

    let deleting = Instant::now();
    for name in &names {
        cluster.delete_room(NAMESPACE, name);
    }
    cluster
        .wait_until("every room is deleted", patience, |c| {
            names.iter().all(|name| c.room(NAMESPACE, name).is_none())
        })
        .await;
    let deleted_after = deleting.elapsed();
    let (exit, _, log) = replica.terminate(Duration::from_secs(60)).await;
    assert!(exit.success(), "{exit:?}:\n{log}");

    let report = json!({
        "rooms": soak.rooms,
        "resync_asked": soak.resync,
        "rate_limits": if soak.rate_limits.is_empty() { "defaults" } else { &soak.rate_limits },
        "ready_after_s": round(ready_after.as_secs_f64()),
        "requests_per_room_to_build": built_per_room,
        "throttled_while_building": built.throttled,
        "steady_minutes": steady.as_secs_f64() / 60.0,
        "resync_in_force_s": end.resync_seconds,
        "steady_reconciles": reconciles,
        "steady_requests": steady_requests,
        "steady_requests_per_reconcile": per_reconcile,
        "steady_mutating_requests": steady_mutating,
        "steady_api_listings": steady_listings,
        "busiest_api_gateway_second": busiest_second(&samples),
        "rss_kib_start_end_peak": [rss_start, rss_end, rss_peak],
        "rss_kib_by_minute": rss_by_minute,
        "deleted_after_s": round(deleted_after.as_secs_f64()),
    });
    println!("{report}");
    assert!(reconciles > 0, "no reconcile in the steady state: {report}");
    assert_eq!(
        steady_mutating, 0,
        "a steady state that changes things: {report}"
    );
}

fn round(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}
