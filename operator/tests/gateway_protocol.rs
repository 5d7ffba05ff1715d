//! RFC 6455 and API Gateway at the edges, with a raw client: close codes for frames that break
//! the protocol, messages split into frames of at most 32 KB, what was queued before a close
//! goes out before it, and throttling that keeps a spammer from costing the others.

mod raw;
mod support;

use std::time::Duration;

use chatroom_operator::crd::{ChatRoomSpec, ThrottlingSpec};
use chatroom_operator::gateway::Limits;
use raw::{OP_BINARY, OP_CONTINUE, OP_PING, OP_TEXT, RawClient, encode};
use support::*;

const BRIEF: Duration = Duration::from_secs(5);

/// A raw client in the scripted room, and the script.
async fn raw_connection(gateway: &TestGateway) -> (std::sync::Arc<Script>, RawClient) {
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let client = RawClient::connect(gateway.addr, &path_of(&url)).await;
    (script, client)
}

#[tokio::test]
async fn frames_that_break_the_protocol_close_with_1002_or_1007_and_reach_no_route() {
    let cases: [(&str, Vec<u8>, u16); 6] = [
        (
            "invalid UTF-8 in a text frame",
            encode(0x80 | OP_TEXT, &[0xc3, 0x28], true),
            1007,
        ),
        (
            "a reserved bit set",
            encode(0x80 | 0x40 | OP_TEXT, b"{}", true),
            1002,
        ),
        (
            "a reserved data opcode",
            encode(0x80 | 0x3, b"{}", true),
            1002,
        ),
        (
            "a reserved control opcode",
            encode(0x80 | 0xB, b"", true),
            1002,
        ),
        (
            "an unmasked frame",
            encode(0x80 | OP_TEXT, b"{}", false),
            1002,
        ),
        (
            "a ping over 125 bytes",
            encode(0x80 | OP_PING, &[0; 126], true),
            1002,
        ),
    ];
    let gateway = TestGateway::start(Limits::default()).await;
    for (what, frame, code) in cases {
        let (script, mut client) = raw_connection(&gateway).await;
        client.send(&frame).await.unwrap();
        assert_eq!(client.until_close(BRIEF).await.0, Some(code), "{what}");
        let disconnect = script.wait_for("$disconnect").await;
        assert_eq!(
            disconnect.request_context.disconnect_status_code,
            Some(i64::from(code)),
            "{what}"
        );
        assert!(
            !script.routes().contains(&"$default".to_owned()),
            "{what} was routed"
        );
    }
}

#[tokio::test]
async fn a_post_over_32_kb_arrives_as_fragments_of_at_most_32_kb() {
    let gateway = TestGateway::start(Limits::default()).await;
    let (script, mut client) = raw_connection(&gateway).await;
    let id = script.connection_ids()[0].clone();
    let path = format!("{}/{id}", path_of(&gateway.callback_url()));
    let body: Vec<u8> = (0..70 * 1024).map(|i| b'a' + (i % 26) as u8).collect();

    let (status, _, _) = http(gateway.management_addr, "POST", &path, &body).await;
    assert_eq!(status, 200);
    let mut frames = Vec::new();
    while frames.last().is_none_or(|f: &raw::RawFrame| !f.fin) {
        frames.push(client.read_frame(BRIEF).await.expect("a frame"));
    }
    let shape: Vec<(u8, bool, usize)> = frames
        .iter()
        .map(|f| (f.opcode, f.fin, f.payload.len()))
        .collect();
    assert_eq!(
        shape,
        [
            (OP_TEXT, false, 32 * 1024),
            (OP_CONTINUE, false, 32 * 1024),
            (OP_CONTINUE, true, 6 * 1024)
        ]
    );
    let joined: Vec<u8> = frames.into_iter().flat_map(|f| f.payload).collect();
    assert_eq!(joined, body);

    let binary = vec![0xff; 40 * 1024];
    assert_eq!(
        http(gateway.management_addr, "POST", &path, &binary)
            .await
            .0,
        200
    );
    let first = client.read_frame(BRIEF).await.unwrap();
    assert_eq!((first.opcode, first.fin), (OP_BINARY, false));
}

#[tokio::test]
async fn posts_answered_200_before_a_delete_all_arrive_before_its_close() {
    const POSTS: usize = 200;
    let gateway = TestGateway::start(Limits::default()).await;
    let (script, mut client) = raw_connection(&gateway).await;
    let id = script.connection_ids()[0].clone();
    let path = format!("{}/{id}", path_of(&gateway.callback_url()));

    for i in 0..POSTS {
        let body = format!("{{\"n\":{i}}}");
        let (status, _, _) = http(gateway.management_addr, "POST", &path, body.as_bytes()).await;
        assert_eq!(status, 200);
    }
    let (status, _, _) = http(gateway.management_addr, "DELETE", &path, b"").await;
    assert_eq!(status, 204);

    let (code, delivered) = client.until_close(BRIEF).await;
    assert_eq!(code, Some(1000));
    assert_eq!(delivered, POSTS, "every post answered 200 arrived first");
}

#[tokio::test]
async fn a_throttled_room_passes_its_burst_and_rate_and_tells_the_spammer_why() {
    const READERS: usize = 5;
    const SPAM: usize = 200;
    const BURST: usize = 10;
    const RATE: f64 = 5.0;
    let spec = ChatRoomSpec {
        throttling: Some(ThrottlingSpec {
            burst_limit: BURST as i32,
            rate_limit: RATE,
        }),
        ..ChatRoomSpec::default()
    };
    let (_gateway, url) = TestGateway::with_room(Limits::default(), spec).await;
    let mut readers = Vec::new();
    for i in 0..READERS {
        // $connect is throttled too: connect no faster than the room allows.
        readers.push(connect_when_allowed(&format!("{url}?name=reader{i}")).await);
    }
    let mut spammer = connect_when_allowed(&format!("{url}?name=spammer")).await;
    // The connections took tokens too; let the bucket fill up again.
    tokio::time::sleep(Duration::from_secs_f64(BURST as f64 / RATE)).await;
    let started = tokio::time::Instant::now();
    for i in 0..SPAM {
        let message = format!(r#"{{"action":"onMessage","message":"spam {i}"}}"#);
        send_text(&mut spammer, &message).await;
    }

    let mut refused = 0;
    let mut echoed = 0;
    while refused + echoed < SPAM {
        let frame = next_json(&mut spammer).await;
        match frame["message"].as_str() {
            Some("Too Many Requests") => {
                assert!(frame["requestId"].is_string(), "{frame}");
                refused += 1;
            }
            _ => echoed += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst, plus what the rate refilled while the spam lasted.
    let allowed = BURST + (elapsed * RATE).ceil() as usize;
    assert!(
        (BURST..=allowed).contains(&echoed),
        "{echoed} of {SPAM} passed in {elapsed:.2} s"
    );
    for (i, reader) in readers.iter_mut().enumerate() {
        let mut received = 0;
        while let Ok(frame) = tokio::time::timeout(QUIET, next_json(reader)).await {
            assert_eq!(frame["from"], "spammer", "reader {i}: {frame}");
            received += 1;
        }
        assert_eq!(received, echoed, "reader {i} got exactly what passed");
    }
    // Nobody was closed: once the bucket refills, a reader's message reaches everyone.
    tokio::time::sleep(Duration::from_secs_f64(1.0 / RATE + 0.1)).await;
    send_text(
        &mut readers[0],
        r#"{"action":"onMessage","message":"still here"}"#,
    )
    .await;
    for reader in readers.iter_mut().chain([&mut spammer]) {
        loop {
            let frame = next_json(reader).await;
            if frame["message"] == "still here" {
                break;
            }
        }
    }
}

/// Connects, waiting out the 429s of a room whose throttling also counts `$connect`.
async fn connect_when_allowed(url: &str) -> Client {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio_tungstenite::connect_async(url).await {
            Ok((client, _)) => return client,
            Err(tokio_tungstenite::tungstenite::Error::Http(response))
                if response.status() == 429 =>
            {
                assert!(tokio::time::Instant::now() < deadline, "still 429 at {url}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("connect to {url}: {error}"),
        }
    }
}

#[tokio::test]
async fn new_connections_past_the_rate_get_429_and_reach_no_connect() {
    let limits = Limits {
        new_connections_per_second: 20,
        ..Limits::default()
    };
    let gateway = TestGateway::start(limits).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let attempts =
        futures::future::join_all((0..60).map(|_| tokio_tungstenite::connect_async(&url))).await;
    let (mut accepted, mut throttled) = (0, 0);
    for attempt in attempts {
        match attempt {
            Ok(_) => accepted += 1,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                throttled += 1;
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert!(
        (20..=25).contains(&accepted),
        "{accepted} accepted, {throttled} throttled"
    );
    assert_eq!(accepted + throttled, 60);
    assert_eq!(
        script.connection_ids().len(),
        accepted,
        "a throttled client reaches no $connect"
    );
}

#[tokio::test]
async fn the_clients_port_serves_no_connections_api_and_no_room_list_unless_asked() {
    let gateway = TestGateway::start_with(|config| chatroom_operator::gateway::GatewayConfig {
        room_index: false,
        ..config
    })
    .await;
    let (script, _client) = raw_connection(&gateway).await;
    let id = script.connection_ids()[0].clone();
    let path = format!("{}/{id}", path_of(&gateway.callback_url()));
    for method in ["POST", "GET", "DELETE"] {
        let (status, _, _) = http(gateway.addr, method, &path, b"{}").await;
        assert_eq!(status, 404, "{method} {path} on the clients' port");
    }
    assert_eq!(http(gateway.addr, "GET", "/", b"").await.0, 404);
    assert_eq!(
        http(gateway.management_addr, "GET", &path, b"").await.0,
        200
    );
}

/// `who` and `history` answer only their sender, and each answer costs the gateway a whole
/// frame: one connection asking as fast as it can is held to its own query rate, while its
/// broadcasts and other connections' queries go on.
#[tokio::test]
async fn one_connection_asking_who_as_fast_as_it_can_is_held_to_its_own_query_rate() {
    let limits = Limits {
        connection_query_rate: 1.0,
        connection_query_burst: 3,
        ..Limits::default()
    };
    let (_gateway, url) = TestGateway::with_room(limits, ChatRoomSpec::default()).await;
    let mut ada = connect(&format!("{url}?name=ada")).await;
    let mut bob = connect(&format!("{url}?name=bob")).await;

    const ASKED: usize = 10;
    let started = tokio::time::Instant::now();
    for _ in 0..ASKED {
        send_text(&mut ada, r#"{"action":"who"}"#).await;
    }
    let (mut answered, mut refused) = (0, 0);
    while answered + refused < ASKED {
        let frame = next_json(&mut ada).await;
        match (frame["type"].as_str(), frame["message"].as_str()) {
            (Some("who"), _) => answered += 1,
            (_, Some("Too Many Requests")) => refused += 1,
            _ => panic!("unexpected {frame}"),
        }
    }
    let refilled = started.elapsed().as_secs_f64().ceil() as usize;
    assert!(
        (3..=3 + refilled).contains(&answered),
        "{answered} of {ASKED} answered"
    );
    assert!(refused >= ASKED - 3 - refilled);

    // bob's bucket is his own, and ada's broadcasts are not queries.
    send_text(&mut bob, r#"{"action":"who"}"#).await;
    assert_eq!(next_json(&mut bob).await["type"], "who");
    for i in 0..5 {
        let message = format!(r#"{{"action":"onMessage","message":"m{i}"}}"#);
        send_text(&mut ada, &message).await;
    }
    for i in 0..5 {
        assert_eq!(next_json(&mut bob).await["message"], format!("m{i}"));
    }
}
