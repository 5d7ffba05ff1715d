//! A client that stops reading cannot make the gateway grow: its bounded outbound queue fills,
//! it is closed with 1008, and everyone else keeps receiving every message.

mod support;

use std::time::Duration;

use chatroom_operator::gateway::Limits;
use futures::StreamExt;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const MESSAGES: usize = 1_000;
/// 30 KB per message: 30 MB in all, far beyond what socket buffers absorb for a silent client.
const MESSAGE_BYTES: usize = 30 * 1024;
const READERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_the_others_receive_everything() {
    let limits = Limits {
        outbound_queue_frames: 32,
        ..Limits::default()
    };
    let (gateway, url) = TestGateway::with_chat_room(limits).await;

    // The slow client never reads. Its small, fixed receive buffer (no autotuning) stands for a
    // client on a slow link; its id is what a backend would have from its $connect.
    let before = gateway.connection_ids(&url);
    let mut slow = connect_with_small_receive_buffer(&url).await;
    let slow_id = gateway.new_connection_id(&url, &before).await;
    let slow_path = format!("{}/@connections/{slow_id}", path_of(&url));

    let mut readers = Vec::new();
    for i in 0..READERS {
        let mut client = connect(&format!("{url}?name=reader{i}")).await;
        readers.push(tokio::spawn(async move {
            let mut received = 0;
            while received < MESSAGES {
                let frame = tokio::time::timeout(Duration::from_secs(60), client.next())
                    .await
                    .unwrap_or_else(|_| panic!("reader {i} stalled at {received} of {MESSAGES}"));
                if let Some(Ok(Message::Text(text))) = frame {
                    // The others' arrivals are announced too; only messages count.
                    received += usize::from(text.contains(r#""type":"message""#));
                } else {
                    panic!("reader {i} lost its connection at {received}: {frame:?}");
                }
            }
            received
        }));
    }

    // The sender waits for its own copy of each message before sending the next, so the
    // readers never fall behind; only the silent client's queue can fill.
    let mut sender = connect(&format!("{url}?name=sender")).await;
    let text = "x".repeat(MESSAGE_BYTES);
    let body = format!(r#"{{"action":"onMessage","message":"{text}"}}"#);
    for _ in 0..MESSAGES {
        send_text(&mut sender, &body).await;
        assert_eq!(next_json(&mut sender).await["from"], "sender");
    }

    for reader in readers {
        assert_eq!(reader.await.unwrap(), MESSAGES);
    }
    let (status, _, _) = http(gateway.management_addr, "GET", &slow_path, b"").await;
    assert_eq!(
        status, 410,
        "the slow client's connection was closed by the gateway"
    );

    // Draining what reached the slow client's socket ends in a 1008 close frame or, when the
    // close frame could not get through its full socket either, the end of the stream.
    let mut frames = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), slow.next())
            .await
            .expect("the slow stream ended")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1008);
                break;
            }
            Some(Ok(Message::Close(None)) | Err(_)) | None => break,
            Some(Ok(_)) => frames += 1,
        }
    }
    assert!(
        frames < MESSAGES,
        "the slow client was cut off before receiving everything ({frames})"
    );
}

async fn connect_with_small_receive_buffer(url: &str) -> Client {
    let authority = url.trim_start_matches("ws://").split('/').next().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(authority.parse().unwrap()).await.unwrap();
    let (client, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    client
}
