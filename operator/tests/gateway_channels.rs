//! Channels on the local gateway, with real WebSocket clients: the same chat logic the room's
//! Lambda function runs, over the gateway's in-process store and sender.

mod support;

use chatroom_operator::crd::{ChannelsSpec, ChatRoomSpec};
use chatroom_operator::gateway::Limits;
use support::*;

fn with_channels(most: i32) -> ChatRoomSpec {
    ChatRoomSpec {
        channels: Some(ChannelsSpec {
            max_per_connection: most,
        }),
        ..ChatRoomSpec::default()
    }
}

async fn subscribed(client: &mut Client, channel: &str) {
    send_text(
        client,
        &format!(r#"{{"action":"subscribe","channel":"{channel}"}}"#),
    )
    .await;
    let ack = next_json(client).await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["channel"], channel);
}

#[tokio::test]
async fn a_channel_message_reaches_its_subscribers_and_no_one_else() {
    let (_gateway, url) = TestGateway::with_room(Limits::default(), with_channels(10)).await;
    let mut ada = connect(&format!("{url}?name=ada")).await;
    let mut bob = connect(&format!("{url}?name=bob")).await;
    let mut cy = connect(&format!("{url}?name=cy")).await;
    subscribed(&mut ada, "orders:42").await;
    subscribed(&mut bob, "orders:42").await;

    let body = r#"{"action":"onMessage","message":"shipped","channel":"orders:42"}"#;
    send_text(&mut bob, body).await;
    for client in [&mut ada, &mut bob] {
        let frame = next_json(client).await;
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["from"], "bob");
        assert_eq!(frame["channel"], "orders:42");
    }
    assert_silent(&mut cy).await;

    // cy may not send to a channel it is not in: told so, and nobody hears it.
    send_text(
        &mut cy,
        r#"{"action":"onMessage","message":"hi","channel":"orders:42"}"#,
    )
    .await;
    let refused = next_json(&mut cy).await;
    assert_eq!(refused["type"], "error");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("Subscribe to channel orders:42"),
        "{refused}"
    );
    assert_silent(&mut ada).await;

    // Unsubscribed, ada hears the channel no more; the room's own messages still reach all.
    send_text(
        &mut ada,
        r#"{"action":"unsubscribe","channel":"orders:42"}"#,
    )
    .await;
    assert_eq!(next_json(&mut ada).await["type"], "unsubscribed");
    send_text(&mut bob, body).await;
    assert_eq!(next_json(&mut bob).await["channel"], "orders:42");
    assert_silent(&mut ada).await;
    send_text(&mut cy, r#"{"action":"onMessage","message":"all"}"#).await;
    for client in [&mut ada, &mut bob, &mut cy] {
        let frame = next_json(client).await;
        assert_eq!(frame["message"], "all");
        assert!(frame.get("channel").is_none(), "{frame}");
    }
}

#[tokio::test]
async fn bounds_are_refused_with_an_error_frame_and_the_connection_stays() {
    let (_gateway, url) = TestGateway::with_room(Limits::default(), with_channels(2)).await;
    let mut ada = connect(&url).await;
    for (body, said) in [
        (r#"{"action":"subscribe","channel":"a b"}"#, "may hold only"),
        (r#"{"action":"subscribe"}"#, "\"channel\" must be a string"),
        (
            &*format!(r#"{{"action":"subscribe","channel":"{}"}}"#, "c".repeat(65)),
            "1 to 64",
        ),
    ] {
        send_text(&mut ada, body).await;
        let refused = next_json(&mut ada).await;
        assert_eq!(refused["type"], "error", "{body}");
        assert!(
            refused["message"].as_str().unwrap().contains(said),
            "{body}: {refused}"
        );
    }
    subscribed(&mut ada, "one").await;
    subscribed(&mut ada, "two").await;
    send_text(&mut ada, r#"{"action":"subscribe","channel":"three"}"#).await;
    let refused = next_json(&mut ada).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("at most 2 channels"),
        "{refused}"
    );
    // Still connected and still in its two channels.
    send_text(
        &mut ada,
        r#"{"action":"onMessage","message":"m","channel":"two"}"#,
    )
    .await;
    assert_eq!(next_json(&mut ada).await["channel"], "two");
}

#[tokio::test]
async fn a_room_without_channels_routes_subscribe_to_default() {
    let (_gateway, url) = TestGateway::with_chat_room(Limits::default()).await;
    let mut ada = connect(&url).await;
    send_text(&mut ada, r#"{"action":"subscribe","channel":"x"}"#).await;
    let reply = next_json(&mut ada).await;
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("Unrecognised action"),
        "{reply}"
    );
}
