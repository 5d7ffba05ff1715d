//! A fleet in steady state: `run --provider aws` with 40 rooms and a 2 s resync, against the
//! real kube-apiserver and moto, with the default rate limits. Once every room is Ready, the
//! operator's own metrics show over 40 s: no listing of APIs, no mutating call, at most 4 API
//! Gateway requests per reconcile, never more than 10 API Gateway requests in any one second,
//! and the resync stretched so that steady state takes half of API Gateway's rate limit.

mod aws_support;
mod binary;
mod cluster;
mod fleet;
mod replica;
mod support;

use std::time::{Duration, Instant};

use aws_support::Inventory;
use chatroom_operator::crd::{ChatRoom, ChatRoomSpec};
use chatroom_operator::providers::aws::steady_state_requests;
use cluster::Cluster;
use fleet::{Counters, busiest_second, is_api_gateway, is_mutating, sample};
use replica::Replica;
use serde_json::json;

const ROOMS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_fleet_in_steady_state_lists_nothing_changes_nothing_and_stays_under_the_rate() {
    let prefix = format!("fleet-{}", std::process::id());
    let cluster = Cluster::new("fleet");
    let names: Vec<String> = (0..ROOMS).map(|i| format!("{prefix}-{i}")).collect();
    for name in &names {
        cluster.add_room(name, json!({}));
    }
    let zip = cluster.dir().join("bootstrap.zip");
    std::fs::write(&zip, b"bootstrap.zip for the fleet").unwrap();
    let kubeconfig = cluster::admin_kubeconfig();
    let operator = |pod: &str, limits: &str| {
        Replica::aws(
            &kubeconfig,
            pod,
            &[
                "--watch-namespace",
                &cluster.namespace,
                "--handler-zip",
                zip.to_str().unwrap(),
                "--cluster-name",
                "fleet",
                "--resync",
                "2s",
                "--max-concurrent-reconciles",
                "8",
                "--aws-rate-limit",
                limits,
            ],
            aws_support::operator_moto_env("fleet"),
        )
    };

    // The fleet is built fast (moto has no quotas), then the operator restarts with the default
    // limits: a restarted operator finds every room by the ids in its status.
    let builder = operator(
        "builder",
        "apigateway=100,dynamodb=100,iam=100,lambda=100,logs=100",
    );
    cluster
        .wait_until("every room is Ready", Duration::from_secs(120), |c| {
            c.ready_rooms().len() == names.len()
        })
        .await;
    let (exit, _, log) = builder.terminate(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}:\n{log}");
    // API Gateway keeps its default (5 per second), the limit under test; the others only make
    // deleting 40 rooms take longer.
    let replica = operator("one", "dynamodb=50,iam=50,lambda=50,logs=50");
    replica.wait_ready().await;

    // Steady state: sample the operator's counters every 100 ms for 40 s.
    let start = Counters::scrape(&replica).await;
    let until = Instant::now() + Duration::from_secs(40);
    let samples = sample(&replica, Duration::from_millis(100), until, |c| {
        c.requests(is_api_gateway)
    })
    .await;
    let end = Counters::scrape(&replica).await;

    let delta = |keep: &dyn Fn(&str, &str) -> bool| end.requests(keep) - start.requests(keep);
    let listings = delta(&|s, o| s == "ApiGatewayV2" && o == "GetApis");
    assert_eq!(listings, 0, "no API listing in steady state");
    let mutating = delta(&is_mutating);
    assert_eq!(mutating, 0, "no mutating call in steady state");
    let reconciles = end.reconciles - start.reconciles;
    let api_gateway = delta(&is_api_gateway);
    // 40 rooms × 4 requests at 5 per second would take all of API Gateway's budget every 32 s;
    // the operator stretches the 2 s resync so that steady state takes half.
    assert!(
        (end.resync_seconds - 64.0).abs() < 1e-9,
        "the resync in force: {} s",
        end.resync_seconds
    );
    assert!(
        reconciles >= 10,
        "steady-state reconciles in the window: {reconciles}"
    );
    assert!(
        api_gateway <= 4 * reconciles,
        "{api_gateway} API Gateway requests for {reconciles} reconciles: more than 4 each"
    );
    // Every service keeps to what the resync floor is computed from.
    let (before, after) = (start.by_service(), end.by_service());
    for (service, label) in [
        ("apigateway", "ApiGatewayV2"),
        ("dynamodb", "DynamoDB"),
        ("iam", "IAM"),
        ("lambda", "Lambda"),
        ("logs", "CloudWatch Logs"),
        ("sts", "STS"),
    ] {
        let used = after.get(label).copied().unwrap_or(0) - before.get(label).copied().unwrap_or(0);
        // The fleet's rooms are plain ones (`{}`): exactly what steady_state_requests counts
        // for them, no more.
        let (_, each) = steady_state_requests(&ChatRoomSpec::default())
            .into_iter()
            .find(|(name, _)| *name == service)
            .unwrap();
        // The caller's identity is asked once per region per process, maybe within the window.
        let once = u64::from(service == "sts");
        assert!(
            used <= u64::from(each) * reconciles + once,
            "{used} {label} requests for {reconciles} reconciles: more than {each} each"
        );
    }
    let busiest = busiest_second(&samples);
    assert!(
        busiest <= 10,
        "{busiest} API Gateway requests within one second; the limit is 5 per second"
    );
    eprintln!(
        "steady state over 40 s: {reconciles} reconciles, {api_gateway} API Gateway requests, busiest second {busiest}"
    );

    for name in &names {
        cluster.delete_room(name);
    }
    cluster
        .wait_until("every room is deleted", Duration::from_secs(240), |c| {
            c.room_names().is_empty()
        })
        .await;
    let (exit, _, log) = replica.terminate(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}:\n{log}");
    let mut room = ChatRoom::new(&names[0], ChatRoomSpec::default());
    room.metadata.namespace = Some(cluster.namespace.clone());
    assert!(Inventory::in_cluster("fleet", &room).await.is_empty());
}

#[test]
fn counters_are_read_from_the_exposition_format() {
    let counters = Counters::parse(
        "chatroom_aws_requests_total{service=\"ApiGatewayV2\",operation=\"GetApi\",outcome=\"ok\"} 7\n\
         chatroom_aws_requests_total{service=\"ApiGatewayV2\",operation=\"CreateApi\",outcome=\"ok\"} 2\n\
         chatroom_aws_requests_total{service=\"Lambda\",operation=\"GetFunction\",outcome=\"ok\"} 3\n\
         chatroom_aws_throttled_total{service=\"ApiGatewayV2\"} 4\n\
         chatroom_reconciles_total 5\n\
         chatroom_resync_seconds 64.0\n",
    );
    assert_eq!(counters.requests(is_api_gateway), 9);
    assert_eq!(
        counters.requests(|s, o| is_api_gateway(s, o) && is_mutating(s, o)),
        2
    );
    assert_eq!(counters.by_service()["Lambda"], 3);
    assert_eq!((counters.reconciles, counters.throttled), (5, 4));
    assert!((counters.resync_seconds - 64.0).abs() < f64::EPSILON);
}

#[test]
fn the_busiest_second_is_the_largest_growth_within_one_second() {
    let t = Instant::now();
    let at = |ms| t + Duration::from_millis(ms);
    let samples = [
        (at(0), 0),
        (at(500), 3),
        (at(1000), 5),
        (at(1600), 14),
        (at(3000), 15),
    ];
    assert_eq!(
        busiest_second(&samples),
        9,
        "from 1,000 ms (5) to 1,600 ms (14)"
    );
}
