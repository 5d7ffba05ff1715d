//! Broadcast through the function's `@connections` client against a local server that answers
//! as API Gateway does.

mod aws_support;
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_support::ManagementApi;
use bytes::Bytes;
use chatroom_handlers::aws::{ConnectionsApi, ManagementApiSender};
use chatroom_handlers::{ConnectionStore, Fanout, SendError, Sender, broadcast};
use chatroom_testkit::sdk_config;
use support::{NOW_MS, store_with};

async fn sender(endpoint: &str) -> ManagementApiSender {
    let api = ConnectionsApi::new(&sdk_config(None).await).unwrap();
    ManagementApiSender::new(api, endpoint)
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("conn{i:03}")).collect()
}

#[tokio::test]
async fn a_410_is_gone_and_removes_exactly_that_connection() {
    let api = ManagementApi::default();
    api.gone
        .lock()
        .unwrap()
        .extend(["conn003".to_owned(), "conn007".to_owned()]);
    let (endpoint, api) = api.start().await;
    let sender = sender(&endpoint).await;

    assert!(matches!(
        sender.post("conn003", Bytes::from_static(b"x")).await,
        Err(SendError::Gone)
    ));

    let all = ids(10);
    let (store, recipients) = store_with(&all).await;
    let report = broadcast(
        &store,
        &sender,
        &recipients,
        Bytes::from_static(b"{\"m\":1}"),
        Fanout::at(NOW_MS, 4),
    )
    .await;

    assert_eq!(report.gone, ["conn003", "conn007"]);
    assert_eq!(report.delivered, 8);
    let mut left: Vec<String> = store
        .list()
        .await
        .unwrap()
        .iter()
        .map(|r| r.id.clone())
        .collect();
    left.sort();
    let expected: Vec<String> = all
        .into_iter()
        .filter(|id| id != "conn003" && id != "conn007")
        .collect();
    assert_eq!(left, expected, "the sender and every live connection stay");
    assert!(
        api.posts
            .lock()
            .unwrap()
            .iter()
            .all(|(_, body)| body == "{\"m\":1}")
    );
}

#[tokio::test]
async fn a_500_on_one_post_does_not_stop_the_others() {
    let api = ManagementApi::default();
    api.failing.lock().unwrap().insert("conn002".to_owned());
    let (endpoint, api) = api.start().await;
    let sender = sender(&endpoint).await;
    let all = ids(6);
    let (store, recipients) = store_with(&all).await;

    let report = broadcast(
        &store,
        &sender,
        &recipients,
        Bytes::from_static(b"x"),
        Fanout::at(NOW_MS, 3),
    )
    .await;

    assert_eq!(report.failed, ["conn002"]);
    assert_eq!(report.delivered, 5);
    assert_eq!(store.len(), 6, "a failed post is not a gone connection");
    let expected: Vec<String> = all.into_iter().filter(|id| id != "conn002").collect();
    assert_eq!(api.posted_to(), expected);
    // The sender's own retry policy (8 attempts, for 429 storms) tried the 500 eight times.
    assert_eq!(api.attempts.load(Ordering::SeqCst), 5 + 8);
}

#[tokio::test]
async fn concurrent_posts_never_exceed_the_bound() {
    let api = ManagementApi {
        delay: Some(Duration::from_millis(20)),
        ..ManagementApi::default()
    };
    let (endpoint, api) = api.start().await;
    let sender = sender(&endpoint).await;
    let (store, recipients) = store_with(&ids(60)).await;

    let report = broadcast(
        &store,
        &sender,
        &recipients,
        Bytes::from_static(b"x"),
        Fanout::at(NOW_MS, 8),
    )
    .await;

    assert_eq!(report.delivered, 60);
    assert_eq!(
        api.posts.lock().unwrap().len(),
        60,
        "every post finished before broadcast returned"
    );
    let peak = api.peak.load(Ordering::SeqCst);
    assert!(
        (2..=8).contains(&peak),
        "peak concurrency {peak} outside 2..=8"
    );
}
