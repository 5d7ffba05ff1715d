//! Presence (join, leave, who) and history, through `Chat::handle` with the in-memory stores,
//! and the DynamoDB history store against moto.

mod aws_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chatroom_handlers::ConnectionStore;
use chatroom_handlers::aws::DynamoDbHistory;
use chatroom_handlers::{
    Chat, ChatConfig, ChatFrame, HistoryEntry, HistorySettings, HistoryStore, MemoryHistory,
    MemoryStore, PresenceEvent, history_frame,
};
use chatroom_testkit::moto_sdk_config;
use support::{RecordingSender, WithName, event};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn room_with_history(messages: usize) -> Chat<MemoryStore, RecordingSender, MemoryHistory> {
    Chat::with_history(
        MemoryStore::new(),
        RecordingSender::default(),
        ChatConfig::default(),
        Some((
            MemoryHistory::new(messages),
            HistorySettings {
                messages,
                retention: DAY,
            },
        )),
    )
}

fn say(
    connection: &str,
    text: &str,
    at_ms: i64,
    request: &str,
) -> chatroom_handlers::ApiGatewayWebsocketProxyRequest {
    let body = serde_json::json!({"action": "onMessage", "message": text}).to_string();
    let mut event = event("onMessage", connection, Some(&body));
    event.request_context.request_time_epoch = at_ms;
    event.request_context.request_id = Some(request.into());
    event
}

fn texts(frame: &ChatFrame) -> Vec<String> {
    let ChatFrame::History { messages } = frame else {
        panic!("expected a history frame, got {frame:?}");
    };
    messages
        .iter()
        .map(|m| match m {
            ChatFrame::Message { message, .. } => message.clone(),
            other => panic!("history holds a non-message: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn the_others_see_a_join_and_a_leave_and_the_one_who_came_sees_neither() {
    let chat = room_with_history(2);
    chat.handle(&event("$connect", "conn-a", None).with_name("ada"))
        .await
        .unwrap();
    assert!(chat.sender().posts().is_empty(), "no one else to tell");

    chat.handle(&event("$connect", "conn-b", None).with_name("grace"))
        .await
        .unwrap();
    let posts = chat.sender().posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, "conn-a");
    assert_eq!(
        posts[0].1,
        ChatFrame::Presence {
            event: PresenceEvent::Join,
            name: "grace".into(),
            at: "2026-11-25T08:00:00.123Z".into(),
        }
    );

    chat.sender().clear();
    chat.handle(&event("$disconnect", "conn-b", None))
        .await
        .unwrap();
    let posts = chat.sender().posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, "conn-a");
    assert!(matches!(
        &posts[0].1,
        ChatFrame::Presence { event: PresenceEvent::Leave, name, .. } if name == "grace"
    ));

    // A second $disconnect for the same connection (it raced a broadcast's 410) says nothing.
    chat.sender().clear();
    chat.handle(&event("$disconnect", "conn-b", None))
        .await
        .unwrap();
    assert!(chat.sender().posts().is_empty());
}

#[tokio::test]
async fn who_answers_only_the_asker_with_every_name() {
    let chat = room_with_history(2);
    for (id, name) in [
        ("conn-a", Some("ada")),
        ("conn-b", Some("grace")),
        ("conn-c", None),
    ] {
        let connect = event("$connect", id, None);
        let connect = match name {
            Some(name) => connect.with_name(name),
            None => connect,
        };
        chat.handle(&connect).await.unwrap();
    }
    chat.sender().clear();

    chat.handle(&event("who", "conn-b", Some(r#"{"action":"who"}"#)))
        .await
        .unwrap();

    let posts = chat.sender().posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, "conn-b");
    let ChatFrame::Who { online, more: 0 } = &posts[0].1 else {
        panic!("expected a who frame, got {posts:?}");
    };
    let guest = chatroom_handlers::anonymous_label("conn-c");
    let mut expected = vec!["ada".to_owned(), "grace".to_owned(), guest];
    expected.sort();
    assert_eq!(*online, expected);
}

#[tokio::test]
async fn a_newcomer_gets_the_last_messages_oldest_first_as_they_were_sent() {
    let chat = room_with_history(2);
    chat.handle(&event("$connect", "conn-a", None).with_name("ada"))
        .await
        .unwrap();
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let at = 1_795_593_600_000 + i as i64;
        chat.handle(&say("conn-a", text, at, &format!("req-{i}")))
            .await
            .unwrap();
    }
    let broadcast: Vec<ChatFrame> = chat
        .sender()
        .posts()
        .into_iter()
        .map(|(_, frame)| frame)
        .collect();
    chat.handle(&event("$connect", "conn-b", None).with_name("grace"))
        .await
        .unwrap();
    chat.sender().clear();

    chat.handle(&event("history", "conn-b", Some(r#"{"action":"history"}"#)))
        .await
        .unwrap();

    let posts = chat.sender().posts();
    assert_eq!(posts.len(), 1, "only the asker is answered: {posts:?}");
    assert_eq!(posts[0].0, "conn-b");
    assert_eq!(texts(&posts[0].1), ["two", "three"]);
    let ChatFrame::History { messages } = &posts[0].1 else {
        unreachable!()
    };
    assert_eq!(
        messages[..],
        broadcast[1..],
        "the very frames that were broadcast"
    );
}

#[tokio::test]
async fn each_broadcast_is_kept_exactly_once() {
    let history = Arc::new(MemoryHistory::new(10));
    let settings = HistorySettings {
        messages: 10,
        retention: DAY,
    };
    let chat = Chat::with_history(
        MemoryStore::new(),
        RecordingSender::default(),
        ChatConfig::default(),
        Some((history.clone(), settings)),
    );
    for id in ["conn-a", "conn-b", "conn-c"] {
        chat.handle(&event("$connect", id, None)).await.unwrap();
    }
    chat.sender().clear();

    chat.handle(&say("conn-a", "hello", 1_795_593_600_000, "req-1"))
        .await
        .unwrap();

    assert_eq!(chat.sender().posts().len(), 3, "three recipients");
    assert_eq!(history.len(), 1, "one stored message");
}

#[tokio::test]
async fn a_room_without_history_has_no_history_route() {
    let chat = support::chat_with(MemoryStore::new(), RecordingSender::default());
    chat.handle(&event("$connect", "conn-a", None))
        .await
        .unwrap();
    chat.handle(&event("history", "conn-a", Some(r#"{"action":"history"}"#)))
        .await
        .unwrap();
    let posts = chat.sender().posts();
    assert!(
        matches!(&posts[0].1, ChatFrame::Error { message } if message.contains("Unrecognised"))
    );
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn the_dynamodb_history_answers_newest_first_within_limit_and_retention() {
    let sdk = moto_sdk_config().await;
    let (client, table) = aws_support::create_history_table(&sdk, "history").await;
    let history = DynamoDbHistory::new(client.clone(), &table, "default/lobby");
    let other_room = DynamoDbHistory::new(client.clone(), &table, "default/garden");
    let frame = |text: &str| {
        ChatFrame::Message {
            from: "ada".into(),
            message: text.into(),
            sent_at: "2026-11-25T08:00:00.000Z".into(),
            channel: None,
        }
        .to_json()
    };
    let hour = Duration::from_secs(3600);
    // Appended out of order: the sort key, not arrival, orders them.
    for (at, text) in [
        (3_000, "three"),
        (1_000, "one"),
        (2_000, "two"),
        (0, "expired"),
    ] {
        let retention = if text == "expired" {
            Duration::from_secs(1)
        } else {
            hour
        };
        let entry = HistoryEntry::new(1_795_593_600_000 + at, "req", frame(text), retention);
        history.append(entry).await.unwrap();
    }
    other_room
        .append(HistoryEntry::new(
            1_795_593_604_000,
            "req",
            frame("elsewhere"),
            hour,
        ))
        .await
        .unwrap();

    let now = 1_795_593_610_000;
    let newest_two = history.newest(2, now).await.unwrap();
    assert_eq!(texts(&history_frame(newest_two)), ["two", "three"]);
    let all = history.newest(10, now).await.unwrap();
    assert_eq!(
        texts(&history_frame(all)),
        ["one", "two", "three"],
        "the expired one is left out, and the other room's is not this room's"
    );

    let row = client
        .get_item()
        .table_name(&table)
        .key("room", AttributeValue::S("default/lobby".into()))
        .key(
            "messageId",
            AttributeValue::S(HistoryEntry::new(1_795_593_601_000, "req", String::new(), hour).id),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the row of \"one\"");
    assert_eq!(
        row["expiresAt"],
        AttributeValue::N((1_795_593_601 + 3600).to_string()),
        "TTL in epoch seconds: received + retention"
    );
}

#[tokio::test]
async fn who_in_a_crowd_answers_what_fits_one_post_and_counts_the_rest() {
    let chat = support::chat_with(MemoryStore::new(), RecordingSender::default());
    let crowd = 5_000;
    for i in 0..crowd {
        let name = format!("member-{i:05}-{}", "x".repeat(20));
        chat.store()
            .put(chatroom_handlers::Connection {
                id: format!("conn-{i}"),
                display_name: Some(name),
                connected_at_ms: 1,
            })
            .await
            .unwrap();
    }
    chat.handle(&event("who", "conn-0", Some(r#"{"action":"who"}"#)))
        .await
        .unwrap();
    let raw = chat.sender().raw_posts();
    assert!(raw[0].1.len() <= chatroom_handlers::contract::MAX_POST_BYTES);
    let ChatFrame::Who { online, more } = &chat.sender().posts()[0].1 else {
        panic!("expected a who frame");
    };
    assert!(
        online.len() > 3_000 && *more > 0,
        "{} shown, {more} more",
        online.len()
    );
    assert_eq!(online.len() + more, crowd);
    assert_eq!(
        online[0],
        format!("member-00000-{}", "x".repeat(20)),
        "sorted"
    );
}

#[tokio::test]
async fn arrivals_are_not_announced_to_a_crowd() {
    let chat = support::chat_with(MemoryStore::new(), RecordingSender::default());
    let audience = chatroom_handlers::contract::MAX_PRESENCE_AUDIENCE;
    for i in 0..audience {
        chat.handle(&event("$connect", &format!("conn-{i}"), None))
            .await
            .unwrap();
    }
    chat.sender().clear();
    chat.handle(&event("$connect", "one-more", None).with_name("ada"))
        .await
        .unwrap();
    assert_eq!(
        chat.sender().posts().len(),
        audience,
        "told to everyone up to the limit"
    );

    chat.sender().clear();
    chat.handle(&event("$connect", "too-many", None).with_name("grace"))
        .await
        .unwrap();
    assert!(
        chat.sender().posts().is_empty(),
        "{} others: no announcement",
        audience + 1
    );
}
