//! A thousand real WebSocket clients in one room: every client receives every message exactly
//! once, senders included.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use chatroom_operator::gateway::Limits;
use futures::StreamExt;
use futures::future::join_all;
use support::*;

const CLIENTS: usize = 1_000;
const SENDERS: usize = 3;
const MESSAGES_PER_SENDER: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_receives_every_message_exactly_once() {
    // A thousand clients in two seconds: above API Gateway's 500 new connections per second,
    // which this test is not about.
    let limits = Limits {
        new_connections_per_second: 5_000,
        ..Limits::default()
    };
    let (_gateway, url) = TestGateway::with_chat_room(limits).await;

    let mut clients = Vec::with_capacity(CLIENTS);
    for batch in 0..CLIENTS / 100 {
        let connecting = (0..100).map(|i| connect_named(&url, batch * 100 + i));
        clients.extend(join_all(connecting).await);
    }

    let expected = SENDERS * MESSAGES_PER_SENDER;
    let receivers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, mut client)| {
            tokio::spawn(async move {
                let mut seen: HashMap<String, usize> = HashMap::new();
                let mut received = 0;
                // Bounded in count and in time: the test fails rather than hangs.
                while received < expected {
                    let frame = tokio::time::timeout(Duration::from_secs(60), client.next())
                        .await
                        .unwrap_or_else(|_| panic!("client {index} got {received} of {expected}"));
                    let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) = frame
                    else {
                        continue;
                    };
                    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                    // Arrivals are announced while the room is small; only messages count.
                    if json["type"] == "presence" {
                        continue;
                    }
                    let key = format!(
                        "{}:{}",
                        json["from"].as_str().unwrap(),
                        json["message"].as_str().unwrap()
                    );
                    *seen.entry(key).or_default() += 1;
                    received += 1;
                }
                (index, client, seen)
            })
        })
        .collect();

    let mut senders = Vec::new();
    for s in 0..SENDERS {
        senders.push(connect(&format!("{url}?name=sender{s}")).await);
    }
    // The senders are clients of the room too; drain what they receive.
    for round in 0..MESSAGES_PER_SENDER {
        for sender in &mut senders {
            send_text(
                sender,
                &format!(r#"{{"action":"onMessage","message":"m{round}"}}"#),
            )
            .await;
        }
    }

    let mut all_exact = 0;
    for receiver in join_all(receivers).await {
        let (index, mut client, seen) = receiver.unwrap();
        assert_eq!(seen.len(), expected, "client {index} saw {seen:?}");
        assert!(
            seen.values().all(|&n| n == 1),
            "client {index} got a duplicate: {seen:?}"
        );
        assert_silent_briefly(&mut client).await;
        all_exact += 1;
    }
    assert_eq!(all_exact, CLIENTS);
    for mut sender in senders {
        let mut own = 0;
        while own < expected {
            let frame = next_json(&mut sender).await;
            assert_eq!(frame["type"], "message");
            own += 1;
        }
    }
}

async fn connect_named(url: &str, index: usize) -> Client {
    connect(&format!("{url}?name=c{index}")).await
}

/// After the expected frames, no message arrives: none was delivered twice late. (Other
/// clients leaving are announced once the room is small again; those are no messages.)
async fn assert_silent_briefly(client: &mut Client) {
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_millis(5), client.next()).await
    {
        let is_presence = frame
            .to_text()
            .is_ok_and(|text| text.contains(r#""type":"presence""#));
        assert!(is_presence, "extra frame after all messages: {frame:?}");
    }
}
