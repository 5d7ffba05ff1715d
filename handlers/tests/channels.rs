//! Channels through `Chat::handle`: who gets a channel's messages, and the bounds a client
//! meets with an error frame.

mod support;

use chatroom_handlers::channels::ChannelSettings;
use chatroom_handlers::{Chat, ChatConfig, ChatFrame, HistorySettings, MemoryHistory, MemoryStore};
use support::{RecordingSender, WithName, event};

fn room(most: usize) -> Chat<MemoryStore, RecordingSender> {
    let config = ChatConfig {
        channels: Some(ChannelSettings {
            max_per_connection: most,
        }),
        ..ChatConfig::default()
    };
    Chat::new(MemoryStore::new(), RecordingSender::default(), config)
}

async fn joined(chat: &Chat<MemoryStore, RecordingSender>, ids: &[&str]) {
    for id in ids {
        let response = chat
            .handle(&event("$connect", id, None).with_name(id))
            .await
            .unwrap();
        assert_eq!(response.status_code, 200);
    }
    chat.sender().clear();
}

async fn send(
    chat: &Chat<
        impl chatroom_handlers::ConnectionStore,
        RecordingSender,
        impl chatroom_handlers::HistoryStore,
    >,
    route: &str,
    id: &str,
    body: &str,
) -> i64 {
    chat.handle(&event(route, id, Some(body)))
        .await
        .unwrap()
        .status_code
}

fn errors_to(chat: &Chat<MemoryStore, RecordingSender>, id: &str) -> Vec<String> {
    chat.sender()
        .posts()
        .into_iter()
        .filter(|(to, _)| to == id)
        .filter_map(|(_, frame)| match frame {
            ChatFrame::Error { message } => Some(message),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_channel_message_reaches_only_its_subscribers() {
    let chat = room(10);
    joined(&chat, &["ada", "bob", "cy"]).await;
    for id in ["ada", "bob"] {
        let body = r#"{"action":"subscribe","channel":"orders:42"}"#;
        assert_eq!(send(&chat, "subscribe", id, body).await, 200);
    }
    let acks = chat.sender().posts();
    assert_eq!(acks.len(), 2);
    assert!(acks.iter().all(|(_, frame)| *frame
        == ChatFrame::Subscribed {
            channel: "orders:42".into()
        }));
    chat.sender().clear();

    let body = r#"{"action":"onMessage","message":"shipped","channel":"orders:42"}"#;
    assert_eq!(send(&chat, "onMessage", "bob", body).await, 200);
    let mut got: Vec<(String, ChatFrame)> = chat.sender().posts();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = ChatFrame::Message {
        from: "bob".into(),
        message: "shipped".into(),
        sent_at: "2026-11-25T08:00:00.123Z".into(),
        channel: Some("orders:42".into()),
    };
    assert_eq!(
        got,
        [("ada".into(), expected.clone()), ("bob".into(), expected)]
    );

    // Once ada leaves the channel, only bob hears it; a room message still reaches everyone.
    chat.sender().clear();
    let leave = r#"{"action":"unsubscribe","channel":"orders:42"}"#;
    assert_eq!(send(&chat, "unsubscribe", "ada", leave).await, 200);
    send(&chat, "onMessage", "bob", body).await;
    let to: Vec<String> = chat
        .sender()
        .posts()
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    assert_eq!(
        to,
        ["ada", "bob"],
        "ada's unsubscribed answer, then bob alone"
    );
    chat.sender().clear();
    send(
        &chat,
        "onMessage",
        "cy",
        r#"{"action":"onMessage","message":"all"}"#,
    )
    .await;
    assert_eq!(chat.sender().posts().len(), 3);
}

#[tokio::test]
async fn a_non_subscriber_cannot_send_to_a_channel_and_hears_nothing_from_it() {
    let chat = room(10);
    joined(&chat, &["ada", "cy"]).await;
    send(&chat, "subscribe", "ada", r#"{"channel":"ops"}"#).await;
    chat.sender().clear();
    let body = r#"{"message":"let me in","channel":"ops"}"#;
    assert_eq!(send(&chat, "onMessage", "cy", body).await, 400);
    let errors = errors_to(&chat, "cy");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("Subscribe to channel ops"), "{errors:?}");
    assert!(chat.sender().posts().iter().all(|(to, _)| to == "cy"));
}

#[tokio::test]
async fn bounds_are_refused_with_an_error_frame() {
    let chat = room(2);
    joined(&chat, &["ada"]).await;
    let cases = [
        (r#"{"channel":"a#b"}"#, "may hold only"),
        (
            &*format!(r#"{{"channel":"{}"}}"#, "x".repeat(65)),
            "1 to 64",
        ),
        (r#"{"channel":7}"#, "\"channel\" must be a string"),
        ("not json", "\"channel\" must be a string"),
    ];
    for (body, said) in cases {
        chat.sender().clear();
        assert_eq!(send(&chat, "subscribe", "ada", body).await, 400, "{body}");
        let errors = errors_to(&chat, "ada");
        assert!(
            errors.len() == 1 && errors[0].contains(said),
            "{body}: {errors:?}"
        );
    }
    send(&chat, "subscribe", "ada", r#"{"channel":"one"}"#).await;
    send(&chat, "subscribe", "ada", r#"{"channel":"two"}"#).await;
    chat.sender().clear();
    assert_eq!(
        send(&chat, "subscribe", "ada", r#"{"channel":"three"}"#).await,
        400
    );
    let errors = errors_to(&chat, "ada");
    assert!(errors[0].contains("at most 2 channels"), "{errors:?}");
    // Subscribing again to a channel it holds is no new channel.
    chat.sender().clear();
    assert_eq!(
        send(&chat, "subscribe", "ada", r#"{"channel":"two"}"#).await,
        200
    );
}

#[tokio::test]
async fn a_room_without_channels_says_so() {
    let chat = support::chat_with(MemoryStore::new(), RecordingSender::default());
    chat.handle(&event("$connect", "ada", None)).await.unwrap();
    chat.sender().clear();
    // `subscribe` is no route of such a room: the `$default` hint.
    send(&chat, "subscribe", "ada", r#"{"channel":"x"}"#).await;
    let body = r#"{"message":"hi","channel":"x"}"#;
    assert_eq!(send(&chat, "onMessage", "ada", body).await, 400);
    let frames: Vec<String> = chat
        .sender()
        .posts()
        .into_iter()
        .map(|(_, frame)| frame.to_json())
        .collect();
    assert!(frames[0].contains("Unrecognised action"), "{frames:?}");
    assert!(frames[1].contains("no channels"), "{frames:?}");
}

#[tokio::test]
async fn channel_messages_stay_out_of_the_rooms_history() {
    let config = ChatConfig {
        channels: Some(ChannelSettings::default()),
        ..ChatConfig::default()
    };
    let settings = HistorySettings {
        messages: 10,
        retention: std::time::Duration::from_secs(3600),
    };
    let chat = Chat::with_history(
        MemoryStore::new(),
        RecordingSender::default(),
        config,
        Some((MemoryHistory::new(10), settings)),
    );
    chat.handle(&event("$connect", "ada", None)).await.unwrap();
    send(&chat, "subscribe", "ada", r#"{"channel":"x"}"#).await;
    send(
        &chat,
        "onMessage",
        "ada",
        r#"{"message":"secret","channel":"x"}"#,
    )
    .await;
    send(&chat, "onMessage", "ada", r#"{"message":"public"}"#).await;
    chat.sender().clear();
    send(&chat, "history", "ada", "{}").await;
    let posts = chat.sender().posts();
    let ChatFrame::History { messages } = &posts[0].1 else {
        panic!("{posts:?}")
    };
    let texts: Vec<&str> = messages
        .iter()
        .filter_map(|m| match m {
            ChatFrame::Message { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["public"]);
}

#[tokio::test]
async fn leaving_the_room_leaves_its_channels() {
    let chat = room(10);
    joined(&chat, &["ada", "bob"]).await;
    for id in ["ada", "bob"] {
        send(&chat, "subscribe", id, r#"{"channel":"x"}"#).await;
    }
    chat.handle(&event("$disconnect", "ada", None))
        .await
        .unwrap();
    chat.sender().clear();
    send(
        &chat,
        "onMessage",
        "bob",
        r#"{"message":"anyone?","channel":"x"}"#,
    )
    .await;
    let to: Vec<String> = chat
        .sender()
        .posts()
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    assert_eq!(to, ["bob"]);
}
