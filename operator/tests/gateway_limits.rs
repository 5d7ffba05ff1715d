//! API Gateway's quotas: frame and message size (1009), idle timeout and maximum connection
//! duration (1001), with short values set as the flags would.

mod support;

use std::time::Duration;

use chatroom_operator::gateway::Limits;
use futures::SinkExt;
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

fn fragment(text: &str, opcode: Data, last: bool) -> Message {
    Message::Frame(Frame::message(
        text.as_bytes().to_vec(),
        OpCode::Data(opcode),
        last,
    ))
}

async fn fragmented(client: &mut Client, pieces: usize, piece_bytes: usize) {
    let piece = "x".repeat(piece_bytes);
    for i in 0..pieces {
        let opcode = if i == 0 { Data::Text } else { Data::Continue };
        client
            .send(fragment(&piece, opcode, i + 1 == pieces))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_frame_over_32_kb_closes_with_1009_and_disconnect_reports_it() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;

    send_text(&mut client, &"x".repeat(32 * 1024 + 1)).await;

    assert_eq!(close_code(&mut client).await, 1009);
    let disconnect = script.wait_for("$disconnect").await;
    assert_eq!(
        disconnect.request_context.disconnect_status_code,
        Some(1009)
    );
    assert!(
        !script.routes().contains(&"$default".to_owned()),
        "the oversize frame was not routed"
    );
}

#[tokio::test]
async fn a_fragmented_message_within_128_kb_is_accepted_whole() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;

    // Four frames of 32 KB each: every frame within the frame limit, 128 KB in all.
    fragmented(&mut client, 4, 32 * 1024).await;

    let message = script.wait_for("$default").await;
    assert_eq!(message.body.map(|b| b.len()), Some(128 * 1024));
    send_text(&mut client, "still open").await;
    script.wait_for_bodies("still open", 1).await;
}

#[tokio::test]
async fn a_fragmented_message_over_128_kb_closes_with_1009() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;

    fragmented(&mut client, 5, 30 * 1024).await;

    assert_eq!(close_code(&mut client).await, 1009);
    assert_eq!(
        script
            .wait_for("$disconnect")
            .await
            .request_context
            .disconnect_status_code,
        Some(1009)
    );
}

#[tokio::test]
async fn limits_are_settable() {
    let limits = Limits {
        max_message_bytes: 100,
        max_frame_bytes: 50,
        ..Limits::default()
    };
    let gateway = TestGateway::start(limits).await;
    let url = gateway.add_scripted_room(Script::accepting());

    let mut small_frames = connect(&url).await;
    send_text(&mut small_frames, &"x".repeat(51)).await;
    assert_eq!(close_code(&mut small_frames).await, 1009);

    let mut small_messages = connect(&url).await;
    fragmented(&mut small_messages, 3, 40).await;
    assert_eq!(close_code(&mut small_messages).await, 1009);
}

#[tokio::test]
async fn an_idle_connection_closes_with_1001_and_activity_keeps_it_open() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(400),
        ..Limits::default()
    };
    let gateway = TestGateway::start(limits).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());

    let mut busy = connect(&url).await;
    let mut idle = connect(&url).await;
    let started = tokio::time::Instant::now();
    // Keep one client active past two idle periods.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send_text(&mut busy, "tick").await;
    }
    assert_eq!(close_code(&mut idle).await, 1001);
    assert!(started.elapsed() >= Duration::from_millis(400));
    send_text(&mut busy, "still here").await;
    script.wait_for_bodies("still here", 1).await;
    let disconnect = script.wait_for("$disconnect").await;
    assert_eq!(
        disconnect.request_context.disconnect_status_code,
        Some(1001)
    );
    assert_eq!(
        disconnect.request_context.disconnect_reason.as_deref(),
        Some("Idle timeout")
    );
}

#[tokio::test]
async fn no_connection_outlives_the_maximum_duration_even_when_active() {
    let limits = Limits {
        max_connection_duration: Duration::from_millis(500),
        ..Limits::default()
    };
    let gateway = TestGateway::start(limits).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;
    let started = tokio::time::Instant::now();

    let code = loop {
        tokio::select! {
            code = close_code(&mut client) => break code,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        // Reached only while no close frame has arrived: stay active.
        if client.send(Message::text("tick")).await.is_err() {
            break close_code(&mut client).await;
        }
    };
    assert_eq!(code, 1001);
    assert!(started.elapsed() >= Duration::from_millis(500));
    let disconnect = script.wait_for("$disconnect").await;
    assert_eq!(
        disconnect.request_context.disconnect_reason.as_deref(),
        Some("Maximum connection duration reached")
    );
}
