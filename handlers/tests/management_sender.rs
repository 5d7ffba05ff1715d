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

/// An error answer is read to at most 4 KiB: a 403 with a 64 KiB body is one failed post, not
/// retried, its error text bounded, and the next post on the same client goes through.
#[tokio::test]
async fn an_error_answer_past_4_kib_is_not_held_and_not_retried() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let app = axum::Router::new().route(
        "/{stage}/@connections/{id}",
        axum::routing::post(
            move |axum::extract::Path((_, id)): axum::extract::Path<(String, String)>| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if id == "refused" {
                        let body = format!(r#"{{"message":"{}"}}"#, "x".repeat(64 * 1024));
                        (axum::http::StatusCode::FORBIDDEN, body)
                    } else {
                        (axum::http::StatusCode::OK, String::new())
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sender = sender(&format!("http://{addr}/dev")).await;

    match sender.post("refused", Bytes::from_static(b"x")).await {
        Err(SendError::Failed(why)) => {
            assert!(why.contains("HTTP 403"), "{why}");
            assert!(why.len() < 4 * 1024, "{} bytes of error text", why.len());
        }
        other => panic!("a 403 with a large body got {other:?}"),
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "a 403 is not retried");
    sender
        .post("conn000", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}
