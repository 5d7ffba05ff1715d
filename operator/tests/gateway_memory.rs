//! Hostile clients against the gateway's memory, each attack a bounded loop on loopback, one
//! after another in this process so that each growth of its resident set is the attack's own:
//! a client that pings without reading, one that reads nothing while large messages are
//! broadcast, a back end posting large frames to a client that reads nothing, and enough
//! connections to spend the memory budget. Each is held to a bound, and the others keep being
//! served.
//!
//! `cargo test --release -p chatroom-operator --test gateway_memory -- --nocapture` prints
//! the figures docs/benchmarks.md reports.

mod raw;
mod support;

use std::time::{Duration, Instant};

use chatroom_operator::gateway::{CONNECTION_RESERVE_BYTES, Limits};
use raw::{OP_PING, RawClient, encode, memory_kib};
use serde_json::json;
use support::*;

/// The most one attack may grow the process by. Before the bounds in bytes each of these
/// grew it by tens of megabytes (docs/benchmarks.md).
const BOUND_KIB: u64 = 8 * 1024;
/// A message that fits one frame (32 KB) once wrapped, as a client sends it.
const MESSAGE_BYTES: usize = 30 * 1024;
/// A receive buffer that does not grow: a client on a slow link, or one that never reads.
const SMALL_RECEIVE_BUFFER: u32 = 4096;

struct Measure {
    name: &'static str,
    before_kib: u64,
}

impl Measure {
    fn start(name: &'static str) -> Self {
        Self {
            name,
            before_kib: memory_kib(std::process::id()).0,
        }
    }

    /// Prints and bounds the growth of the resident set since the start.
    fn finish(self, what: &str) {
        let (after, peak) = memory_kib(std::process::id());
        let grown = after.saturating_sub(self.before_kib);
        println!(
            "{}: {what}; RSS {} -> {after} KiB (+{grown} KiB), peak so far {peak} KiB",
            self.name, self.before_kib
        );
        assert!(
            grown < BOUND_KIB,
            "{}: grew by {grown} KiB, bound {BOUND_KIB} KiB",
            self.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_cost_bounded_memory_and_the_others_are_served() {
    let (gateway, url) = TestGateway::with_chat_room(Limits::default()).await;
    let mut bystander = connect(&format!("{url}?name=bystander")).await;
    // Warm up the allocator and every code path once, so that what follows is the attacks'.
    say(&mut bystander, "warm-up", MESSAGE_BYTES).await;
    pings_without_reading(&gateway, &url, &mut bystander).await;
    broadcasts_to_a_client_that_reads_nothing(&gateway, &url, &mut bystander).await;
    posts_to_a_client_that_reads_nothing(&gateway, &url, &mut bystander).await;
}

async fn say(client: &mut Client, tag: &str, bytes: usize) {
    let text = format!("{tag}:{}", "x".repeat(bytes));
    let body = json!({"action": "onMessage", "message": text}).to_string();
    send_text(client, &body).await;
    receive(client, tag).await;
}

/// Reads until a message that starts with `tag`.
async fn receive(client: &mut Client, tag: &str) {
    loop {
        let frame = next_json(client).await;
        if frame["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(tag))
        {
            return;
        }
    }
}

/// Is the connection at `path` gone (closed by the gateway) to the management API?
async fn gone(gateway: &TestGateway, path: &str) -> bool {
    http(gateway.management_addr, "GET", path, b"").await.0 == 410
}

/// 200,000 pings of 125 bytes (25 MB) from a client that never reads a pong: the pongs fill
/// its queue, and it is closed with 1008.
async fn pings_without_reading(gateway: &TestGateway, url: &str, bystander: &mut Client) {
    const PINGS: usize = 200_000;
    let measure = Measure::start("pings without reading");
    let before = gateway.connection_ids(url);
    let mut attacker = RawClient::connect_with_receive_buffer(
        gateway.addr,
        &path_of(url),
        Some(SMALL_RECEIVE_BUFFER),
    )
    .await;
    let id = gateway.new_connection_id(url, &before).await;
    let ping = encode(0x80 | OP_PING, &[b'p'; 125], true);
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    while sent < PINGS && Instant::now() < deadline {
        if attacker.send(&batch).await.is_err() {
            break;
        }
        sent += 1000;
    }
    let path = format!("{}/@connections/{id}", path_of(url));
    wait_until(|| gone(gateway, &path)).await;
    let (code, _) = attacker.until_close(PATIENCE).await;
    assert!(matches!(code, Some(1008) | None), "closed with {code:?}");
    say(bystander, "after the pings", 100).await;
    measure.finish(&format!("{sent} pings sent before the gateway closed it"));
}

/// 600 messages of 30 KB (18 MB) broadcast while one client reads nothing: its queue of
/// 1 MiB fills, it is closed with 1008, and a reader gets every message.
async fn broadcasts_to_a_client_that_reads_nothing(
    gateway: &TestGateway,
    url: &str,
    bystander: &mut Client,
) {
    const MESSAGES: usize = 600;
    let measure = Measure::start("broadcasts to a client that reads nothing");
    let before = gateway.connection_ids(url);
    let _attacker = RawClient::connect_with_receive_buffer(
        gateway.addr,
        &path_of(url),
        Some(SMALL_RECEIVE_BUFFER),
    )
    .await;
    let id = gateway.new_connection_id(url, &before).await;
    let mut sender = connect(&format!("{url}?name=sender")).await;
    for i in 0..MESSAGES {
        say(&mut sender, &format!("big {i}"), MESSAGE_BYTES).await;
        receive(bystander, &format!("big {i}:")).await;
    }
    let path = format!("{}/@connections/{id}", path_of(url));
    assert!(gone(gateway, &path).await, "the silent client was closed");
    measure.finish(&format!(
        "{MESSAGES} messages of 30 KB, every one delivered to the reader"
    ));
}

/// 300 posts of 100 KB (30 MB) to a client that reads nothing: past its queue the posts
/// answer 410, and a reader's posts still arrive.
async fn posts_to_a_client_that_reads_nothing(
    gateway: &TestGateway,
    url: &str,
    bystander: &mut Client,
) {
    const POSTS: usize = 300;
    let measure = Measure::start("posts to a client that reads nothing");
    let before = gateway.connection_ids(url);
    let _attacker = RawClient::connect_with_receive_buffer(
        gateway.addr,
        &path_of(url),
        Some(SMALL_RECEIVE_BUFFER),
    )
    .await;
    let id = gateway.new_connection_id(url, &before).await;
    let path = format!("{}/@connections/{id}", path_of(url));
    let body = vec![b'y'; 100 * 1024];
    let mut accepted = 0;
    for _ in 0..POSTS {
        match http(gateway.management_addr, "POST", &path, &body).await.0 {
            200 => accepted += 1,
            410 => {}
            other => panic!("a post answered {other}"),
        }
    }
    assert!(
        accepted < POSTS,
        "every post was accepted: the queue never filled"
    );
    assert!(gone(gateway, &path).await);
    say(bystander, "after the posts", 100).await;
    measure.finish(&format!(
        "{accepted} of {POSTS} posts taken before it was closed"
    ));
}

async fn wait_until<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "not within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn past_the_memory_budget_new_clients_get_503_and_those_connected_are_served() {
    // Room for eight connections, the budget's reserve each (the HTTP connection of a
    // handshake takes one while it lasts).
    let limits = Limits {
        memory_budget_bytes: 8 * CONNECTION_RESERVE_BYTES,
        ..Limits::default()
    };
    let (gateway, url) = TestGateway::with_chat_room(limits).await;
    let mut connected = Vec::new();
    let mut refused = 0;
    for i in 0..20 {
        match tokio_tungstenite::connect_async(format!("{url}?name=c{i}")).await {
            Ok((client, _)) => connected.push(client),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503);
                refused += 1;
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert!(
        (3..=8).contains(&connected.len()) && refused > 0,
        "{} connected, {refused} refused",
        connected.len()
    );
    assert!(gateway.gateway.budget().used() <= gateway.gateway.budget().limit());
    let mut first = connected.remove(0);
    say(&mut first, "within the budget", 100).await;
    // Connections that leave give their share back.
    drop(connected);
    wait_until(|| {
        let room = url.clone();
        async move {
            tokio_tungstenite::connect_async(format!("{room}?name=late"))
                .await
                .is_ok()
        }
    })
    .await;
}
