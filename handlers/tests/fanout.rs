//! Fan-out across invocations with the real `bootstrap`: the invocation that gets a message
//! hands its pages to asynchronous invocations of the same function (Lambda's Invoke API on
//! loopback, in front of a pool of processes), which post them at their share of the budget.
//! Against moto's DynamoDB and a stand-in `@connections` endpoint.

mod aws_support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_support::{ManagementApi, create_table};
use chatroom_testkit::lambda_runtime::{Function, Outcome};
use chatroom_testkit::lambda_service::{LambdaService, Ran};
use chatroom_testkit::{moto_endpoint, moto_sdk_config, write_settled_connections};
use serde_json::Value;

const FUNCTION: &str = "chat-fanout";
const SENDER: &str = "conn-0000000";

/// Writes `count` settled connections (`conn-0000000`…) the way the room function does.
async fn room_of(test: &str, count: usize) -> (aws_sdk_dynamodb::Client, String, Vec<String>) {
    let sdk = moto_sdk_config().await;
    let (client, table) = create_table(&sdk, test).await;
    let ids: Vec<String> = (0..count).map(|i| format!("conn-{i:07}")).collect();
    write_settled_connections(&client, &table, &ids).await;
    (client, table, ids)
}

struct Harness {
    coordinator: Function,
    service: LambdaService,
}

/// The function handling `table`'s messages, and `processes` more behind Lambda's Invoke API,
/// every invocation with `timeout`.
async fn harness(
    table: &str,
    callback: &str,
    posts_per_second: u32,
    processes: usize,
    timeout: Duration,
    twice: bool,
) -> Harness {
    let mut service = LambdaService::listen().await;
    if twice {
        service.deliver_twice();
    }
    let env = [
        ("TABLE_NAME", table.to_owned()),
        ("CALLBACK_URL", callback.to_owned()),
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_ENDPOINT_URL_LAMBDA", service.endpoint().to_owned()),
        ("FANOUT_POSTS_PER_SECOND", posts_per_second.to_string()),
    ];
    let binary = Path::new(env!("CARGO_BIN_EXE_bootstrap"));
    service
        .run(processes, binary, FUNCTION, &env, timeout)
        .await;
    let coordinator = Function::start_with_timeout(binary, FUNCTION, &env, timeout).await;
    Harness {
        coordinator,
        service,
    }
}

fn message_event(request_id: &str) -> Value {
    let path = format!("{}/tests/events/message.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["requestContext"]["connectionId"] = SENDER.into();
    event["requestContext"]["requestId"] = request_id.into();
    event
}

/// How many posts each connection got.
fn posts_per_connection(api: &ManagementApi) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (id, _) in api.posts.lock().unwrap().iter() {
        *counts.entry(id.clone()).or_insert(0) += 1;
    }
    counts
}

fn skipped(ran: &[Ran]) -> usize {
    ran.iter()
        .filter(
            |r| matches!(&r.outcome, Some(Outcome::Response(_, body)) if body["skipped"] == true),
        )
        .count()
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_large_broadcast_goes_out_in_pages_each_recipient_once_though_lambda_delivers_twice() {
    let (_, table, ids) = room_of("fanout-twice", 2_500).await;
    let (callback, api) = ManagementApi::default().start().await;
    let mut room = harness(&table, &callback, 20_000, 2, Duration::from_secs(20), true).await;

    let outcome = room.coordinator.invoke(message_event("msg-twice-1")).await;
    assert_eq!(outcome.status_code(), 200, "{outcome:?}");
    let ran = room.service.settled(Duration::from_secs(60)).await;
    let logs = room.service.stop().await + &room.coordinator.stop();

    // Three pages, each delivered twice: the second delivery of each posted nothing.
    assert_eq!(ran.len(), 6, "{ran:#?}\n{logs}");
    assert_eq!(skipped(&ran), 3, "{ran:#?}");
    let counts = posts_per_connection(&api);
    assert_eq!(counts.len(), ids.len(), "every connection got it\n{logs}");
    assert!(counts.values().all(|n| *n == 1), "no one got it twice");
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_429_storm_delays_the_broadcast_but_loses_nothing() {
    let (_, table, ids) = room_of("fanout-storm", 1_500).await;
    let api = ManagementApi {
        throttle_first: 400.into(),
        ..ManagementApi::default()
    };
    let (callback, api) = api.start().await;
    let mut room = harness(&table, &callback, 20_000, 2, Duration::from_secs(20), false).await;

    let outcome = room.coordinator.invoke(message_event("msg-storm-1")).await;
    assert_eq!(outcome.status_code(), 200, "{outcome:?}");
    let ran = room.service.settled(Duration::from_secs(60)).await;
    let logs = room.service.stop().await + &room.coordinator.stop();

    assert_eq!(api.throttled.load(Ordering::SeqCst), 400);
    assert!(
        ran.iter().all(|r| r.attempt == 0),
        "no page had to be run again"
    );
    let counts = posts_per_connection(&api);
    assert_eq!(counts.len(), ids.len(), "{logs}");
    assert!(counts.values().all(|n| *n == 1));
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_connection_gone_mid_broadcast_is_removed_once() {
    let (client, table, ids) = room_of("fanout-gone", 2_100).await;
    let gone = ["conn-0000005", "conn-0001500", "conn-0002099"];
    let api = ManagementApi {
        gone: std::sync::Mutex::new(gone.iter().map(|s| s.to_string()).collect()),
        ..ManagementApi::default()
    };
    let (callback, api) = api.start().await;
    let mut room = harness(&table, &callback, 20_000, 2, Duration::from_secs(20), true).await;

    room.coordinator
        .invoke(message_event("msg-gone-1"))
        .await
        .status_code();
    room.service.settled(Duration::from_secs(60)).await;
    let logs = room.service.stop().await + &room.coordinator.stop();

    assert_eq!(
        posts_per_connection(&api).len(),
        ids.len() - gone.len(),
        "{logs}"
    );
    for id in gone {
        let found = client
            .get_item()
            .table_name(&table)
            .key("connectionId", AttributeValue::S(id.into()))
            .send()
            .await
            .unwrap();
        assert!(found.item.is_none(), "{id} is removed");
    }
    // The room's version moved once per removal, though each page was delivered twice.
    let version = client
        .get_item()
        .table_name(&table)
        .key("connectionId", AttributeValue::S("#version".into()))
        .send()
        .await
        .unwrap()
        .item
        .and_then(|row| row.get("version").cloned());
    assert_eq!(version, Some(AttributeValue::N("3".into())));
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_worker_killed_mid_page_is_run_again_and_pages_it_finished_are_not_posted_again() {
    let (_, table, ids) = room_of("fanout-crash", 3_000).await;
    let (callback, api) = ManagementApi::default().start().await;
    // One process, paced so that each page takes about a second: the kill lands mid-page.
    let mut room = harness(&table, &callback, 3_000, 1, Duration::from_secs(6), true).await;

    room.coordinator
        .invoke(message_event("msg-crash-1"))
        .await
        .status_code();
    // Wait until the first page is through and the second under way, then kill.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while api.posts.lock().unwrap().len() < 1_300 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pages never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(room.service.kill_a_busy_process(), "a process was posting");
    let ran = room.service.settled(Duration::from_secs(90)).await;
    let logs = room.service.stop().await + &room.coordinator.stop();

    let killed: Vec<&Ran> = ran.iter().filter(|r| r.outcome.is_none()).collect();
    assert_eq!(killed.len(), 1, "{ran:#?}");
    let counts = posts_per_connection(&api);
    assert_eq!(counts.len(), ids.len(), "nothing lost\n{logs}");
    // The killed page was posted again from its start: only its recipients may have it twice;
    // the first page, finished before the kill and delivered again, was not posted again.
    let twice: Vec<&String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(!twice.is_empty(), "the killed page was posted again");
    let killed_page = killed[0].event["chatroomFanout"]["page"].as_u64().unwrap() as usize;
    for id in &twice {
        let index: usize = id.trim_start_matches("conn-").parse().unwrap();
        assert_eq!(index / 1_000, killed_page, "{id} is not on the killed page");
    }
    assert!(counts.values().all(|n| *n <= 2));
    assert!(
        skipped(&ran) >= 2,
        "the finished pages' second deliveries were skipped"
    );
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_page_longer_than_the_functions_timeout_is_handed_on_before_its_deadline() {
    let (_, table, ids) = room_of("fanout-hand-on", 2_000).await;
    let (callback, api) = ManagementApi::default().start().await;
    // One page at 400 posts a second (what a 128 MB worker is given): five seconds of
    // posting, in invocations of four seconds each.
    let mut room = harness(&table, &callback, 400, 2, Duration::from_secs(4), false).await;

    room.coordinator
        .invoke(message_event("msg-hand-on-1"))
        .await
        .status_code();
    let ran = room.service.settled(Duration::from_secs(60)).await;
    let logs = room.service.stop().await + &room.coordinator.stop();

    assert!(
        ran.iter()
            .all(|r| matches!(r.outcome, Some(Outcome::Response(..)))),
        "no invocation ran out of time: {ran:#?}\n{logs}"
    );
    let parts_past_the_start = ran
        .iter()
        .filter(|r| r.event["chatroomFanout"]["offset"].as_u64() > Some(0))
        .count();
    assert!(
        parts_past_the_start >= 2,
        "the page was handed on, and on again: {ran:#?}"
    );
    let counts = posts_per_connection(&api);
    assert_eq!(counts.len(), ids.len(), "{logs}");
    assert!(counts.values().all(|n| *n == 1));
}
