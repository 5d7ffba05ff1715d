//! The second hostile-client campaign against the local gateway's memory budget (issue 23),
//! each attack a bounded loop on loopback against a small budget: what it makes the gateway
//! hold stays within the budget plus a fixed overhead (peak RSS, measured from a reset), and
//! a newcomer is admitted within a few seconds while it goes on.
//!
//! The attacks run one at a time (a lock), so that each peak is the attack's own.
//! `cargo test --release -p chatroom-operator --test gateway_fair_when_full -- --nocapture`
//! prints the figures docs/benchmarks.md reports.

mod raw;
mod support;

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chatroom_operator::crd::{ChatRoom, ChatRoomSpec};
use chatroom_operator::gateway::{
    CONNECTION_RESERVE_BYTES, GatewayConfig, Limits, ManagementAuth, ManagementKeys,
};
use chatroom_operator::providers::local::LocalProvider;
use raw::RawClient;
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

static ONE_AT_A_TIME: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

const BUDGET: usize = 16 * 1024 * 1024;
/// What the process may grow by beyond the budget during an attack: tokio's tasks and the
/// allocator's slack (docs/benchmarks.md has the measured figures).
const OVERHEAD: usize = 16 * 1024 * 1024;
/// How soon a newcomer must be in while an attack goes on.
const ADMITTED_WITHIN: Duration = Duration::from_secs(4);
const KEY_ID: &str = "AKIAGATEWAYTEST";
const SECRET: &str = "gateway-test-secret";

/// The process's anonymous resident memory (its heap and stacks), in KiB: what the budget is
/// about. File-backed pages are left out: the test binary's own debug information, mapped
/// when some library formats a backtrace (RUST_BACKTRACE=1), would add tens of megabytes that
/// no client caused.
fn anonymous_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The peak of [`anonymous_kib`] while an attack runs, sampled every 2 ms by a thread of its own.
struct Peak {
    start_kib: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl Peak {
    fn reset() -> Self {
        use std::sync::atomic::Ordering;
        let start_kib = anonymous_kib();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopping.load(Ordering::Relaxed) {
                peak = peak.max(anonymous_kib());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak.max(anonymous_kib())
        });
        Self {
            start_kib,
            stop,
            sampler,
        }
    }

    /// Prints and bounds the growth of the peak since the reset.
    fn finish(self, attack: &str, budget: usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = self.sampler.join().unwrap();
        let grown = peak.saturating_sub(self.start_kib) * 1024;
        println!(
            "{attack}: peak anonymous RSS +{} KiB over {} KiB (budget {} KiB)",
            grown / 1024,
            self.start_kib,
            budget / 1024
        );
        assert!(
            grown as usize <= budget + OVERHEAD,
            "{attack}: the peak grew by {grown} bytes, more than the budget {budget} and {OVERHEAD} of overhead"
        );
    }
}

fn limits(budget: usize) -> Limits {
    Limits {
        memory_budget_bytes: budget,
        ..Limits::default()
    }
}

/// `default/lobby` with the chat logic, on a gateway made by `configure`.
async fn chat_gateway(
    configure: impl FnOnce(GatewayConfig) -> GatewayConfig,
) -> (TestGateway, String) {
    let gateway = TestGateway::start_with(configure).await;
    let provider = LocalProvider::new(gateway.gateway.clone());
    let mut room = ChatRoom::new("lobby", ChatRoomSpec::default());
    room.metadata.namespace = Some("default".into());
    let report = provider.converge(&room).await;
    std::mem::forget(provider);
    (gateway, report.outputs.websocket_url.unwrap())
}

/// `default/lobby` on a gateway with the default limits but a budget of `budget` bytes.
async fn chat_gateway_within(budget: usize) -> (TestGateway, String) {
    chat_gateway(|config| GatewayConfig {
        limits: limits(budget),
        ..config
    })
    .await
}

/// Sends a WebSocket handshake for `path` as `name` (with `extra` header lines) and answers the
/// connection and the status line it got.
async fn handshake(addr: SocketAddr, path: &str, name: &str, extra: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path}?name={name} HTTP/1.1\r\nHost: {addr}\r\n{extra}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let status = status_line(&mut stream).await;
    (stream, status)
}

/// A client that reads everything it is sent, a way to send as it, and the count of chat
/// messages it has received.
async fn reading_sender(
    url: &str,
) -> (
    futures::stream::SplitSink<Client, Message>,
    tokio::sync::watch::Receiver<usize>,
) {
    use futures::StreamExt;
    let (sink, mut stream) = connect(&format!("{url}?name=sender")).await.split();
    let (count, received) = tokio::sync::watch::channel(0);
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) if text.contains(r#""type":"message""#) => {
                    count.send_modify(|n| *n += 1);
                }
                // No panic here: a panic's backtrace, formatted on another test's time,
                // would land in that test's measurement. A sender closed early shows as
                // messages never received.
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    (sink, received)
}

async fn say(sender: &mut futures::stream::SplitSink<Client, Message>, text: String) {
    use futures::SinkExt;
    sender.send(Message::text(text)).await.unwrap();
}

/// A newcomer's handshake, retried as a client would after a 503's `Retry-After`, until it is
/// let in: how long that took.
async fn newcomer_admitted(addr: SocketAddr, path: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (_stream, status) = handshake(addr, path, "newcomer", "").await;
        if status.contains(" 101 ") {
            return started.elapsed();
        }
        assert!(
            status.contains(" 503 "),
            "a newcomer is let in or asked to come back: {status}"
        );
        assert!(
            started.elapsed() < ADMITTED_WITHIN,
            "the newcomer was kept out for {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads what each client that read nothing got at the end: 1008, or the connection dropped
/// when even the close frame could not get through within the close grace. How many got 1008.
async fn closed_for_not_reading(clients: &mut [RawClient]) -> usize {
    let mut closed_1008 = 0;
    for client in clients {
        let (code, _) = client.until_close(Duration::from_millis(500)).await;
        assert!(matches!(code, Some(1008) | None), "closed with {code:?}");
        closed_1008 += usize::from(code == Some(1008));
    }
    closed_1008
}

/// The first line of the answer, or what the connection ended with.
async fn status_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await {
            Ok(Ok(1)) => line.push(byte[0]),
            Ok(_) => return format!("closed after {:?}", String::from_utf8_lossy(&line)),
            Err(_) => return "no answer".into(),
        }
    }
    String::from_utf8_lossy(&line).trim_end().to_owned()
}

/// Before: with SigV4 keys set, the body of every `@connections` request was read before its
/// signature was checked, outside the budget: 12,000 connections each sending 131,000 bytes
/// of a 131,072-byte body took the gateway to 1,729 MiB. Now an unsigned request is answered
/// 403 from its headers, and no body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_management_bodies_are_refused_from_their_headers_unread() {
    const ATTACKERS: usize = 400;
    const SENT: usize = 131_000;
    let _one = ONE_AT_A_TIME.lock().await;
    let keys = ManagementKeys {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
    };
    let (mut gateway, url) = chat_gateway(|config| GatewayConfig {
        limits: limits(BUDGET),
        management_auth: ManagementAuth::SigV4(keys),
        ..config
    })
    .await;
    let mut reader = connect(&format!("{url}?name=reader")).await;
    let id = gateway.connection_ids(&url)[0].clone();
    let path = format!("{}/@connections/{id}", path_of(&url));

    let peak = Peak::reset();
    let body = vec![b'x'; SENT];
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let mut stream = TcpStream::connect(gateway.management_addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 131072\r\n\r\n",
            gateway.management_addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The gateway may answer and close before taking it all; what it took is not read.
        let _ = tokio::time::timeout(Duration::from_millis(50), stream.write_all(&body)).await;
        attackers.push(stream);
    }
    let mut refused = 0;
    for stream in &mut attackers {
        let status = status_line(stream).await;
        assert!(status.starts_with("HTTP/1.1 403"), "{status}");
        refused += 1;
    }
    peak.finish(
        &format!("{refused} unsigned @connections bodies of 131,000 bytes"),
        BUDGET,
    );
    drop(attackers);

    // The signed back end is served meanwhile.
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
        .region(aws_sdk_apigatewaymanagement::config::Region::new(
            "us-east-1",
        ))
        .endpoint_url(
            gateway
                .gateway
                .callback_url(&room_of(&url))
                .trim_end_matches("/@connections"),
        )
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            KEY_ID, SECRET, None, None, "test",
        ))
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
        .post_to_connection()
        .connection_id(&id)
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
            r#"{"from":"the back end"}"#,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(next_json(&mut reader).await["from"], "the back end");
    // Its connections end before the next attack is measured.
    gateway.shut_down().await;
}

/// Before: a broadcast frame was counted once per recipient queue though it is one buffer, so
/// clients that read nothing made every newcomer get 503 while the gateway held little. Now the
/// buffer is counted once, their sockets hold at most the capped send buffer, and they are
/// closed 1008 (their queue full, or shed for the newcomer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_read_nothing_cannot_keep_a_newcomer_out() {
    const SILENT_READERS: usize = 60;
    // 3.6 MB, as in the campaign's 28 broadcasts of 128 KB, in messages of one frame each.
    const BROADCASTS: usize = 120;
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut gateway, url) = chat_gateway_within(BUDGET).await;
    let (mut sender, mut received) = reading_sender(&url).await;
    let peak = Peak::reset();
    let mut silent = Vec::new();
    for _ in 0..SILENT_READERS {
        silent.push(
            RawClient::connect_with_receive_buffer(gateway.addr, &path_of(&url), Some(4096)).await,
        );
    }
    let message = "m".repeat(30 * 1024);
    for n in 0..BROADCASTS {
        let body = json!({"action": "onMessage", "message": format!("{n}:{message}")});
        say(&mut sender, body.to_string()).await;
    }
    // Every broadcast has gone out (the sender has its own copy of each).
    tokio::time::timeout(PATIENCE, received.wait_for(|n| *n == BROADCASTS))
        .await
        .expect("the sender got every message")
        .unwrap();
    let waited = newcomer_admitted(gateway.addr, &path_of(&url)).await;
    println!("a newcomer was admitted after {waited:?}");
    // Every one of them is closed for not reading, and its share comes back.
    let deadline = Instant::now() + PATIENCE;
    while gateway.connection_ids(&url).len() > 1 {
        assert!(
            Instant::now() < deadline,
            "{} connections left",
            gateway.connection_ids(&url).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed_1008 = closed_for_not_reading(&mut silent).await;
    assert!(closed_1008 > 0, "no client saw its close frame");
    println!("{closed_1008} of {SILENT_READERS} saw the close frame 1008");
    peak.finish(
        &format!("{SILENT_READERS} clients reading nothing, {BROADCASTS} broadcasts of 30 KB"),
        BUDGET,
    );
    // Its connections end before the next attack is measured.
    gateway.shut_down().await;
}

/// When the budget is spent by clients that do not read, a newcomer is not refused: the client
/// holding the most unread bytes is closed 1008, and the newcomer gets its room within the
/// close grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_the_client_holding_the_most_unread_bytes_makes_room() {
    const BUDGET_HERE: usize = 4 * 1024 * 1024;
    const SILENT_READERS: usize = 4;
    const POSTS: usize = 33;
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut gateway, url) = chat_gateway_within(BUDGET_HERE).await;
    let peak = Peak::reset();
    let mut silent = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..SILENT_READERS {
        let before = gateway.connection_ids(&url);
        silent.push(
            RawClient::connect_with_receive_buffer(gateway.addr, &path_of(&url), Some(4096)).await,
        );
        ids.push(gateway.new_connection_id(&url, &before).await);
    }
    // Just under each queue's 1 MiB, so that none is closed for its queue, until the budget
    // is spent: a post that finds it spent is answered 503, unread.
    let body = vec![b'p'; 30 * 1024];
    'posting: for id in &ids {
        let path = format!("{}/@connections/{id}", path_of(&url));
        for _ in 0..POSTS {
            match http(gateway.management_addr, "POST", &path, &body).await.0 {
                200 => {}
                503 => break 'posting,
                other => panic!("a post answered {other}"),
            }
        }
    }
    // Newcomers that read as they should, kept open, until one is refused: each finds the
    // budget spent in turn, and a client that reads nothing makes room for it.
    let mut newcomers = Vec::new();
    let mut slowest = Duration::ZERO;
    let refused_after = loop {
        let started = Instant::now();
        let name = format!("n{}", newcomers.len());
        let (stream, status) = handshake(gateway.addr, &path_of(&url), &name, "").await;
        slowest = slowest.max(started.elapsed());
        if !status.contains(" 101 ") {
            assert!(status.contains(" 503 "), "{status}");
            break newcomers.len();
        }
        newcomers.push(stream);
        assert!(newcomers.len() < 400, "no 503 in sight");
    };
    println!(
        "{refused_after} newcomers admitted past a budget held by {SILENT_READERS} clients reading nothing, the slowest after {slowest:?}"
    );
    assert!(slowest < ADMITTED_WITHIN, "a newcomer waited {slowest:?}");
    // The first refusal came only once no client holding unread bytes was left to shed.
    closed_for_not_reading(&mut silent).await;
    let left: Vec<String> = gateway
        .connection_ids(&url)
        .into_iter()
        .filter(|id| ids.contains(id))
        .collect();
    assert!(
        left.is_empty(),
        "clients holding unread bytes left: {left:?}"
    );
    peak.finish(
        &format!("{SILENT_READERS} clients reading nothing holding the budget"),
        BUDGET_HERE,
    );
    // Its connections end before the next attack is measured.
    gateway.shut_down().await;
}

/// Before: 12,400 TCP connections that never send a request head, re-opened as they are
/// dropped, held every reserve, and newcomers got 503. Now they may hold an eighth of the
/// budget; past it the oldest is dropped for the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_speak_cannot_keep_a_newcomer_out() {
    const BUDGET_HERE: usize = 4 * 1024 * 1024;
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut gateway, url) = chat_gateway_within(BUDGET_HERE).await;
    let peak = Peak::reset();
    // More than the whole budget's worth of reserves.
    let silent_count = BUDGET_HERE / CONNECTION_RESERVE_BYTES + 50;
    let mut silent = Vec::new();
    for _ in 0..silent_count {
        silent.push(TcpStream::connect(gateway.addr).await.unwrap());
    }
    let waited = newcomer_admitted(gateway.addr, &path_of(&url)).await;
    println!("{silent_count} silent connections: a newcomer was admitted after {waited:?}");
    peak.finish(
        &format!("{silent_count} connections that never send a request head"),
        BUDGET_HERE,
    );
    // Its connections end before the next attack is measured.
    gateway.shut_down().await;
}

/// Before: a 15 KB `User-Agent` was kept twice per connection and not counted, so 12,287 such
/// clients held 456 MB under a 192 MiB budget before the first 503. Now it is kept once and
/// counted: the 503 comes when the budget, so counted, is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_user_agent_is_counted_in_the_budget() {
    const BUDGET_HERE: usize = 4 * 1024 * 1024;
    const AGENT_BYTES: usize = 15 * 1024;
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut gateway, url) = chat_gateway_within(BUDGET_HERE).await;
    let peak = Peak::reset();
    let agent = "a".repeat(AGENT_BYTES);
    let mut admitted = Vec::new();
    let refused_at = loop {
        let name = format!("u{}", admitted.len());
        let user_agent = format!("User-Agent: {agent}\r\n");
        let (stream, status) = handshake(gateway.addr, &path_of(&url), &name, &user_agent).await;
        if !status.contains(" 101 ") {
            assert!(status.contains(" 503 "), "{status}");
            break admitted.len();
        }
        admitted.push(stream);
        assert!(admitted.len() < 1_000, "no 503 in sight");
    };
    let per_connection = CONNECTION_RESERVE_BYTES + AGENT_BYTES;
    println!("{refused_at} clients with a 15 KB User-Agent before the first 503");
    assert!(
        refused_at * per_connection <= BUDGET_HERE,
        "{refused_at} connections of {per_connection} bytes each exceed the budget"
    );
    assert!(
        refused_at * per_connection > BUDGET_HERE / 2,
        "the budget was spent by what each connection keeps, not something else: {refused_at}"
    );
    peak.finish(
        &format!("{refused_at} clients with a 15 KB User-Agent"),
        BUDGET_HERE,
    );
    // Its connections end before the next attack is measured.
    gateway.shut_down().await;
}

/// The bytes waiting in the kernel's send queue of the gateway's socket to the client at
/// `client`, from /proc/net/tcp (`tx_queue`, hex).
fn send_queue_bytes(gateway: SocketAddr, client: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex = |addr: SocketAddr| format!(":{:04X}", addr.port());
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, queues) = (fields.get(1)?, fields.get(2)?, fields.get(4)?);
        (local.ends_with(&hex(gateway)) && remote.ends_with(&hex(client)))
            .then(|| u64::from_str_radix(queues.split(':').next()?, 16).ok())
            .flatten()
    })
}

/// Before: each client that never reads pinned ~3.9 MB of the gateway's socket send queue
/// (Linux grows it to `tcp_wmem`'s 4 MB), outside any budget. Now each socket's send buffer
/// is capped, and counted while the gateway waits on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_pins_at_most_the_capped_send_buffer() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut gateway, url) = chat_gateway_within(BUDGET).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(gateway.addr).await.unwrap();
    let client_addr = stream.local_addr().unwrap();
    let mut silent = RawClient::from_stream(stream);
    let (status, _) = silent.handshake(gateway.addr, &path_of(&url)).await;
    assert_eq!(status, 101);
    let (mut sender, _received) = reading_sender(&url).await;
    let message = "q".repeat(30 * 1024);
    let mut most = 0;
    for n in 0..24 {
        let body = json!({"action": "onMessage", "message": format!("{n}:{message}")});
        say(&mut sender, body.to_string()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(queued) = send_queue_bytes(gateway.addr, client_addr) {
            most = most.max(queued);
        }
    }
    println!("the gateway's send queue to a client that reads nothing peaked at {most} bytes");
    assert!(
        most > 0,
        "the socket was found and the client did fall behind"
    );
    // SO_SNDBUF 32 KiB: the kernel allows twice that, and a segment's worth past it.
    assert!(
        most <= 128 * 1024,
        "{most} bytes queued in the kernel for one client"
    );
    // Its connections end before the next attack is measured.
    gateway.shut_down().await;
}
