//! The chat's behaviour per route, driven through `Chat::handle` with recorded API Gateway events.

mod support;

use chatroom_handlers::{
    ChatConfig, ChatFrame, ConnectionStore, MemoryStore, RouteSelectionExpression, anonymous_label,
};
use support::{RecordingSender, WithName, chat_with, event};

#[tokio::test]
async fn connect_stores_the_connection_with_its_display_name() {
    let chat = chat_with(MemoryStore::new(), RecordingSender::default());
    let response = chat
        .handle(&event("$connect", "conn-a", None).with_name("ada"))
        .await
        .unwrap();
    assert_eq!(response.status_code, 200);
    let stored = chat.store().list().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, "conn-a");
    assert_eq!(stored[0].display_name.as_deref(), Some("ada"));
}

#[tokio::test]
async fn connect_refuses_a_display_name_longer_than_32_characters() {
    let chat = chat_with(MemoryStore::new(), RecordingSender::default());
    let long = "é".repeat(33);
    let response = chat
        .handle(&event("$connect", "conn-a", None).with_name(&long))
        .await
        .unwrap();
    assert_eq!(response.status_code, 400);
    assert!(chat.store().is_empty());
    // 32 multi-byte characters are fine: the limit counts characters, not bytes.
    let ok = chat
        .handle(&event("$connect", "conn-b", None).with_name(&"é".repeat(32)))
        .await
        .unwrap();
    assert_eq!(ok.status_code, 200);
}

#[tokio::test]
async fn disconnect_removes_the_connection() {
    let chat = chat_with(MemoryStore::new(), RecordingSender::default());
    chat.handle(&event("$connect", "conn-a", None))
        .await
        .unwrap();
    chat.handle(&event("$disconnect", "conn-a", None))
        .await
        .unwrap();
    assert!(chat.store().is_empty());
}

#[tokio::test]
async fn message_route_broadcasts_to_everyone_including_the_sender() {
    let chat = chat_with(MemoryStore::new(), RecordingSender::default());
    chat.handle(&event("$connect", "conn-a", None).with_name("ada"))
        .await
        .unwrap();
    chat.handle(&event("$connect", "conn-b", None))
        .await
        .unwrap();
    chat.sender().clear();

    let body = r#"{"action":"onMessage","message":"Hello everyone"}"#;
    let response = chat
        .handle(&event("onMessage", "conn-a", Some(body)))
        .await
        .unwrap();
    assert_eq!(response.status_code, 200);

    let mut posts = chat.sender().posts();
    posts.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = ChatFrame::Message {
        from: "ada".into(),
        message: "Hello everyone".into(),
        sent_at: "2026-11-25T08:00:00.123Z".into(),
        channel: None,
    };
    assert_eq!(
        posts,
        vec![
            ("conn-a".to_owned(), expected.clone()),
            ("conn-b".to_owned(), expected)
        ]
    );
}

#[tokio::test]
async fn a_sender_without_a_name_is_shown_as_a_guest_never_by_its_connection_id() {
    let chat = chat_with(MemoryStore::new(), RecordingSender::default());
    chat.handle(&event("$connect", "conn-b", None))
        .await
        .unwrap();
    chat.sender().clear();
    chat.handle(&event(
        "onMessage",
        "conn-b",
        Some(r#"{"action":"onMessage","message":"hi"}"#),
    ))
    .await
    .unwrap();
    let posts = chat.sender().posts();
    let ChatFrame::Message { from, .. } = &posts[0].1 else {
        panic!("expected a message, got {posts:?}")
    };
    // Whoever knows a connection id can post to and disconnect it through @connections.
    assert_ne!(from, "conn-b");
    assert_eq!(*from, anonymous_label("conn-b"));
    assert!(from.starts_with("guest-") && from.len() == 12, "{from}");
}

#[tokio::test]
async fn default_route_answers_only_the_sender_with_the_expected_shape() {
    let chat = chat_with(MemoryStore::new(), RecordingSender::default());
    chat.handle(&event("$connect", "conn-a", None))
        .await
        .unwrap();
    chat.handle(&event("$connect", "conn-b", None))
        .await
        .unwrap();
    chat.sender().clear();
    chat.handle(&event("$default", "conn-a", Some("not json")))
        .await
        .unwrap();

    let posts = chat.sender().posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].0, "conn-a");
    let ChatFrame::Error { message } = &posts[0].1 else {
        panic!("expected an error frame, got {posts:?}")
    };
    assert!(
        message.contains(r#"{"action":"onMessage","message":"<text>"}"#),
        "{message}"
    );
}

#[tokio::test]
async fn default_route_hint_follows_a_nested_route_selection_expression() {
    let config = ChatConfig {
        message_route: "say".into(),
        route_selection: RouteSelectionExpression::parse("$request.body.meta.kind").unwrap(),
        ..ChatConfig::default()
    };
    let chat = chatroom_handlers::Chat::new(MemoryStore::new(), RecordingSender::default(), config);
    chat.handle(&event("$default", "conn-a", Some("{}")))
        .await
        .unwrap();
    let posts = chat.sender().posts();
    let ChatFrame::Error { message } = &posts[0].1 else {
        panic!("expected an error frame")
    };
    assert!(
        message.contains(r#"{"message":"<text>","meta":{"kind":"say"}}"#),
        "{message}"
    );
}

#[tokio::test]
async fn a_message_without_text_gets_an_error_reply_and_no_broadcast() {
    let chat = chat_with(MemoryStore::new(), RecordingSender::default());
    chat.handle(&event("$connect", "conn-a", None))
        .await
        .unwrap();
    chat.handle(&event("$connect", "conn-b", None))
        .await
        .unwrap();
    chat.sender().clear();
    chat.handle(&event(
        "onMessage",
        "conn-a",
        Some(r#"{"action":"onMessage","message":7}"#),
    ))
    .await
    .unwrap();
    let posts = chat.sender().posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, "conn-a");
    assert!(matches!(&posts[0].1, ChatFrame::Error { message } if message.contains("onMessage")));
}

#[tokio::test]
async fn a_store_failure_is_an_error_for_the_gateway_to_report() {
    let chat = chat_with(support::FailingStore, RecordingSender::default());
    let error = chat
        .handle(&event("$connect", "conn-a", None))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("could not put"), "{error}");
}

#[tokio::test]
async fn a_message_too_large_to_post_gets_an_error_back_and_reaches_no_one() {
    let chat = chat_with(MemoryStore::new(), RecordingSender::default());
    for id in ["conn-a", "conn-b"] {
        chat.handle(&event("$connect", id, None)).await.unwrap();
    }
    chat.sender().clear();
    // 127 KiB of quotes: small enough for API Gateway to accept from the client, but JSON
    // escaping doubles it past the 128 KB a post may carry.
    let text = "\"".repeat(127 * 1024);
    let body = serde_json::json!({"action": "onMessage", "message": text}).to_string();

    let response = chat
        .handle(&event("onMessage", "conn-a", Some(&body)))
        .await
        .unwrap();

    assert_eq!(response.status_code, 413);
    let posts = chat.sender().posts();
    assert_eq!(posts.len(), 1, "only the sender hears of it: {posts:?}");
    let (to, frame) = &posts[0];
    assert_eq!(to, "conn-a");
    let ChatFrame::Error { message } = frame else {
        panic!("expected an error frame, got {frame:?}")
    };
    assert!(message.contains("131072 bytes"), "{message}");

    let fits = serde_json::json!({"action": "onMessage", "message": "x".repeat(100 * 1024)});
    chat.handle(&event("onMessage", "conn-a", Some(&fits.to_string())))
        .await
        .unwrap();
    assert_eq!(
        chat.sender().posts().len(),
        3,
        "a large message that fits goes to both"
    );
}

#[tokio::test]
async fn in_a_room_with_auth_the_name_is_the_authorizers_and_name_in_the_url_is_ignored() {
    let config = ChatConfig {
        names_from_authorizer: true,
        ..ChatConfig::default()
    };
    let chat = chatroom_handlers::Chat::new(MemoryStore::new(), RecordingSender::default(), config);
    let identity = chatroom_handlers::auth::Identity {
        name: "Grace".into(),
        sub: "user-7".into(),
    };
    let mut allowed = event("$connect", "conn-a", None).with_name("admin");
    allowed.request_context.authorizer.fields = identity.context();
    assert_eq!(chat.handle(&allowed).await.unwrap().status_code, 200);
    let stored = chat.store().list().await.unwrap();
    assert_eq!(stored[0].display_name.as_deref(), Some("Grace"));

    // A `$connect` that came without the authorizer's context is no one the room knows.
    let unvetted = event("$connect", "conn-b", None).with_name("admin");
    assert_eq!(chat.handle(&unvetted).await.unwrap().status_code, 403);
    assert_eq!(chat.store().list().await.unwrap().len(), 1);
}
