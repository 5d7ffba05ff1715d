//! Connections that never finish their request head: closed after the header timeout while
//! everyone else is served, and no reason for SIGTERM to wait.

mod binary;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use binary::{LocalGateway, repo_root};
use chatroom_operator::gateway::Limits;
use futures::StreamExt;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW: usize = 300;

/// A connection that sends half a request head and then nothing.
async fn half_a_head(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /default/lobby/dev HTTP/1.1\r\nHost: chat\r\n")
        .await
        .unwrap();
    stream
}

/// Whether the gateway has closed `stream` (a read ends or fails) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 256];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An answer (408) is fine too, as long as the connection then ends.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn heads_that_never_finish_are_closed_after_the_timeout_and_others_chat_meanwhile() {
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (gateway, url) = TestGateway::with_chat_room(limits).await;
    let started = Instant::now();
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        slow.push(half_a_head(gateway.addr).await);
    }

    let mut client = connect(&format!("{url}?name=ada")).await;
    send_text(
        &mut client,
        r#"{"action":"onMessage","message":"still served"}"#,
    )
    .await;
    assert_eq!(next_json(&mut client).await["message"], "still served");

    // The newest was opened a moment ago: its second has not passed.
    assert!(
        !closed_within(&mut slow[SLOW - 1], Duration::from_millis(300)).await,
        "closed before its header timeout"
    );
    for (i, stream) in slow.iter_mut().enumerate() {
        let left = Duration::from_secs(4).saturating_sub(started.elapsed());
        assert!(
            closed_within(stream, left).await,
            "slow connection {i} still open {:?} after it began",
            started.elapsed()
        );
    }
    // What never sent a whole head took no connection: the room has only ada.
    assert_eq!(gateway.connection_ids(&url).len(), 1);
}

#[tokio::test]
async fn sigterm_does_not_wait_for_heads_that_never_finish() {
    let room = repo_root().join("examples/chatroom.yaml");
    let gateway = LocalGateway::start(&[Path::new(&room)], &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], gateway.port));
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        slow.push(half_a_head(addr).await);
    }
    let (mut client, _) = tokio_tungstenite::connect_async(gateway.url("default/lobby/dev"))
        .await
        .unwrap();

    let started = Instant::now();
    let (status, _, stderr) = tokio::task::spawn_blocking(move || gateway.terminate())
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}: {stderr}");
    // The default header timeout is 10 s; shutdown gives unfinished requests 1 s.
    assert!(took < Duration::from_secs(4), "exit took {took:?}");
    let close = tokio::time::timeout(PATIENCE, client.next()).await.unwrap();
    let Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) = close else {
        panic!("expected a close frame, got {close:?}");
    };
    assert_eq!(u16::from(frame.code), 1001);
    for stream in &mut slow {
        assert!(closed_within(stream, Duration::from_secs(1)).await);
    }
}
