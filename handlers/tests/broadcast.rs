//! Broadcast: bounded concurrency, exact removal of gone connections, failures isolated.

mod support;

use std::time::Duration;

use bytes::Bytes;
use chatroom_handlers::{Connection, ConnectionStore, Fanout, MemoryStore, broadcast};
use support::{NOW_MS, RecordingSender, store_with};

#[tokio::test]
async fn gone_connections_are_removed_exactly_and_the_rest_kept() {
    let (store, recipients) = store_with(&["a", "b", "c", "d"]).await;
    let sender = RecordingSender::answering_gone_for(&["b", "d"]);
    let report = broadcast(
        &store,
        &sender,
        &recipients,
        Bytes::from_static(b"{}"),
        Fanout::at(NOW_MS, 8),
    )
    .await;

    assert_eq!(report.delivered, 2);
    assert_eq!(report.gone, vec!["b".to_owned(), "d".to_owned()]);
    let mut left: Vec<_> = store
        .list()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.clone())
        .collect();
    left.sort();
    assert_eq!(left, vec!["a".to_owned(), "c".to_owned()]);
}

#[tokio::test]
async fn a_failing_post_does_not_stop_the_others_and_keeps_its_row() {
    let (store, recipients) = store_with(&["a", "b", "c"]).await;
    let sender = RecordingSender::failing_for(&["a"]);
    let report = broadcast(
        &store,
        &sender,
        &recipients,
        Bytes::from_static(b"{}"),
        Fanout::at(NOW_MS, 8),
    )
    .await;

    assert_eq!(report.delivered, 2);
    assert_eq!(report.failed, vec!["a".to_owned()]);
    assert_eq!(store.len(), 3);
    let mut reached: Vec<_> = sender.raw_posts().into_iter().map(|(id, _)| id).collect();
    reached.sort();
    assert_eq!(reached, vec!["b".to_owned(), "c".to_owned()]);
}

#[tokio::test]
async fn concurrency_never_exceeds_the_bound_and_all_posts_finish_first() {
    let ids: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (store, recipients) = store_with(&refs).await;
    let sender = RecordingSender::holding_each_post(Duration::from_millis(2));

    let report = broadcast(
        &store,
        &sender,
        &recipients,
        Bytes::from_static(b"x"),
        Fanout::at(NOW_MS, 7),
    )
    .await;

    assert_eq!(report.delivered, 100);
    // Every post finished before broadcast returned.
    assert_eq!(sender.raw_posts().len(), 100);
    assert_eq!(sender.in_flight(), 0);
    let peak = sender.peak_in_flight();
    assert!(peak <= 7, "peak concurrency {peak} exceeded the bound 7");
    assert!(
        peak > 1,
        "posts ran one at a time (peak {peak}); the bound was not used"
    );
}

#[tokio::test]
async fn a_connection_inside_its_connect_window_keeps_its_row_when_it_answers_gone() {
    // API Gateway answers 410 for a connection whose $connect has not finished.
    let store = MemoryStore::new();
    for (id, connected_at_ms) in [("settled", NOW_MS - 31_000), ("opening", NOW_MS - 2_000)] {
        let connection = Connection {
            id: id.into(),
            display_name: None,
            connected_at_ms,
        };
        store.put(connection).await.unwrap();
    }
    let recipients = store.list().await.unwrap();
    let sender = RecordingSender::answering_gone_for(&["settled", "opening"]);

    let report = broadcast(
        &store,
        &sender,
        &recipients,
        Bytes::from_static(b"{}"),
        Fanout::at(NOW_MS, 8),
    )
    .await;

    assert_eq!(report.gone, ["settled"]);
    assert_eq!(report.connecting, ["opening"]);
    let left: Vec<String> = store
        .list()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(
        left,
        ["opening"],
        "the opening client will receive the next message"
    );
}
