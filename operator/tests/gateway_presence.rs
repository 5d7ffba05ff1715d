//! Presence and history through the local gateway: real WebSocket clients, the real chat logic
//! behind the local provider, a room with `history: {messages: 2}`.

mod support;

use chatroom_operator::crd::{ChatRoomSpec, HistorySpec};
use chatroom_operator::gateway::Limits;
use serde_json::{Value, json};
use support::{Client, TestGateway, assert_silent, connect, next_any_json, send_text};

async fn join(url: &str, name: &str) -> Client {
    connect(&format!("{url}?name={name}")).await
}

async fn say(client: &mut Client, text: &str) {
    send_text(
        client,
        &json!({"action": "onMessage", "message": text}).to_string(),
    )
    .await;
}

fn presence(frame: &Value) -> (&str, &str) {
    assert_eq!(frame["type"], "presence", "{frame}");
    assert!(
        frame["at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{frame}"
    );
    (
        frame["event"].as_str().unwrap(),
        frame["name"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn joins_leaves_who_and_the_last_two_messages_for_a_newcomer() {
    let spec = ChatRoomSpec {
        history: Some(HistorySpec {
            messages: 2,
            retention: "24h".into(),
        }),
        ..ChatRoomSpec::default()
    };
    let (_gateway, url) = TestGateway::with_room(Limits::default(), spec).await;

    let mut ada = join(&url, "ada").await;
    let mut grace = join(&url, "grace").await;
    assert_eq!(presence(&next_any_json(&mut ada).await), ("join", "grace"));
    assert_silent(&mut grace).await;

    send_text(&mut grace, r#"{"action":"who"}"#).await;
    assert_eq!(
        next_any_json(&mut grace).await,
        json!({"type": "who", "online": ["ada", "grace"]})
    );
    assert_silent(&mut ada).await;

    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        say(&mut ada, text).await;
        let frame = next_any_json(&mut ada).await;
        assert_eq!(next_any_json(&mut grace).await, frame);
        sent.push(frame);
    }

    let mut lin = join(&url, "lin").await;
    assert_eq!(presence(&next_any_json(&mut ada).await), ("join", "lin"));
    assert_eq!(presence(&next_any_json(&mut grace).await), ("join", "lin"));
    send_text(&mut lin, r#"{"action":"history"}"#).await;
    assert_eq!(
        next_any_json(&mut lin).await,
        json!({"type": "history", "messages": [sent[1], sent[2]]}),
        "exactly the last two, oldest first, as they were broadcast"
    );

    grace.close(None).await.unwrap();
    assert_eq!(presence(&next_any_json(&mut ada).await), ("leave", "grace"));
    assert_eq!(presence(&next_any_json(&mut lin).await), ("leave", "grace"));
    send_text(&mut lin, r#"{"action":"who"}"#).await;
    assert_eq!(
        next_any_json(&mut lin).await,
        json!({"type": "who", "online": ["ada", "lin"]})
    );
}

#[tokio::test]
async fn a_room_without_history_answers_history_like_any_unknown_action() {
    let (_gateway, url) = TestGateway::with_chat_room(Limits::default()).await;
    let mut ada = join(&url, "ada").await;
    send_text(&mut ada, r#"{"action":"history"}"#).await;
    let frame = next_any_json(&mut ada).await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert!(
        frame["message"].as_str().unwrap().contains("Unrecognised"),
        "{frame}"
    );
}
