use std::time::{Duration, Instant};

use futures::stream::{self, SplitSink};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Options;
use crate::report::{Report, peak_rss_bytes};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Socket, Message>;

/// Marks this run's messages, so a frame from anyone else is never counted.
const MARKER: &str = "LG|";
/// Where the marker sits in a broadcast frame.
const MARKED_MESSAGE: &str = "\"message\":\"LG|";
/// How long receivers wait for stragglers after the last send.
const DRAIN: Duration = Duration::from_secs(15);

pub async fn run(options: &Options) -> Result<Report, String> {
    let base = Instant::now();
    let connecting = Instant::now();
    let results: Vec<Result<Socket, String>> = stream::iter(0..options.clients)
        .map(|i| connect(options, i))
        .buffer_unordered(options.connect_concurrency.max(1))
        .collect()
        .await;
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let connect_failures = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(first)) = results.iter().find(|r| r.is_err()) {
        eprintln!("{connect_failures} connection(s) failed; first: {first}");
    }
    let sockets: Vec<Socket> = results.into_iter().filter_map(Result::ok).collect();

    let per_sender = messages_per_sender(options);
    let senders = options.senders.min(sockets.len());
    let expected_per_client = (senders * per_sender) as u64;
    let mut sinks: Vec<Sink> = Vec::with_capacity(sockets.len());
    let mut readers = Vec::with_capacity(sockets.len());
    for socket in sockets {
        let (sink, frames) = socket.split();
        sinks.push(sink);
        readers.push(tokio::spawn(receive(frames, expected_per_client, base)));
    }
    // Every client stays connected until the report is done; the first `senders` also send.
    let mut idle_sinks = sinks.split_off(senders);
    let clients = readers.len();

    if !options.settle.is_zero() {
        tokio::time::sleep(options.settle).await;
    }
    let first_send = base.elapsed();
    let period = options
        .rate
        .map(|rate| Duration::from_secs_f64(senders as f64 / rate));
    // The senders keep time on a thread of their own: on the receivers' busy runtime their
    // ticks would slip, and the offered load would fall below the rate asked for.
    let options_for_senders = options.clone();
    let sending = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let tasks: Vec<_> = sinks
                .into_iter()
                .enumerate()
                .map(|(sender, sink)| {
                    let options = options_for_senders.clone();
                    tokio::spawn(async move {
                        send(sink, sender, per_sender, period, &options, base).await
                    })
                })
                .collect();
            let mut done = Vec::with_capacity(tasks.len());
            for task in tasks {
                done.push(task.await.map_err(|e| e.to_string())??);
            }
            Ok::<_, String>(done)
        })
    });
    let sent_sinks = tokio::task::spawn_blocking(move || sending.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the sender thread panicked".to_owned())??;
    idle_sinks.extend(sent_sinks);

    let mut report = Report {
        clients,
        connect_seconds,
        connect_failures,
        expected: expected_per_client * clients as u64,
        ..Report::default()
    };
    let mut last_delivery = first_send;
    for reader in readers {
        let received = reader.await.map_err(|e| e.to_string())?;
        report.delivered += received.count;
        last_delivery = last_delivery.max(received.last);
        report.latencies_us.extend(received.latencies_us);
    }
    report.send_to_last_delivery = last_delivery.saturating_sub(first_send);
    if !options.hold.is_zero() {
        tokio::time::sleep(options.hold).await;
    }
    report.server_peak_rss_bytes = options.server_pid.and_then(peak_rss_bytes);
    drop(idle_sinks);
    Ok(report)
}

fn messages_per_sender(options: &Options) -> usize {
    match (options.rate, options.duration) {
        (Some(rate), Some(duration)) if options.senders > 0 => {
            ((rate * duration.as_secs_f64()) / options.senders as f64).round() as usize
        }
        _ => options.messages,
    }
}

async fn connect(options: &Options, index: usize) -> Result<Socket, String> {
    let mut url = options.url.clone();
    url.query_pairs_mut()
        .append_pair("name", &format!("c{index}"));
    // tungstenite's default 128 KiB read buffer per client would make the generator, not the
    // server, the thing measured.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let mut socket =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
            .await
            .map(|(socket, _)| socket)
            .map_err(|e| e.to_string())?;
    if let Some(channel) = &options.channel {
        subscribe(&mut socket, channel).await?;
    }
    Ok(socket)
}

/// Subscribes to `channel` and waits for the room's answer, so that no message of the run is
/// sent before every client is in the channel.
async fn subscribe(socket: &mut Socket, channel: &str) -> Result<(), String> {
    let request = serde_json::json!({ "action": "subscribe", "channel": channel });
    socket
        .send(Message::text(request.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = socket.next().await {
            if let Ok(Message::Text(text)) = frame
                && text.contains("\"type\":\"subscribed\"")
            {
                return Ok(());
            }
        }
        Err("closed before it was subscribed".to_owned())
    });
    answered
        .await
        .map_err(|_| format!("no answer to subscribing to {channel}"))?
}

async fn send(
    mut sink: Sink,
    sender: usize,
    count: usize,
    period: Option<Duration>,
    options: &Options,
    base: Instant,
) -> Result<Sink, String> {
    let mut ticks = period.map(|p| {
        let mut interval = tokio::time::interval(p);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    for seq in 0..count {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let stamp = base.elapsed().as_micros();
        let head = format!("{MARKER}{sender}|{seq}|{stamp}|");
        let padding = options.payload_bytes.saturating_sub(head.len());
        let text = format!("{head}{}", "x".repeat(padding));
        let body = match &options.channel {
            Some(channel) => format!(
                r#"{{"action":"{}","message":"{text}","channel":"{channel}"}}"#,
                options.action
            ),
            None => format!(r#"{{"action":"{}","message":"{text}"}}"#, options.action),
        };
        sink.send(Message::text(body))
            .await
            .map_err(|e| format!("sender {sender}: {e}"))?;
    }
    Ok(sink)
}

struct Received {
    count: u64,
    last: Duration,
    latencies_us: Vec<u32>,
}

async fn receive(
    mut frames: futures::stream::SplitStream<Socket>,
    expected: u64,
    base: Instant,
) -> Received {
    let mut received = Received {
        count: 0,
        last: Duration::ZERO,
        latencies_us: Vec::with_capacity(expected as usize),
    };
    let mut deadline: Option<tokio::time::Instant> = None;
    while received.count < expected {
        // Until the first delivery, wait as long as the run's own timeout allows.
        let next = match deadline {
            Some(at) => match tokio::time::timeout_at(at, frames.next()).await {
                Ok(frame) => frame,
                Err(_) => break,
            },
            None => frames.next().await,
        };
        let Some(Ok(Message::Text(text))) = next else {
            if next.is_none() {
                break;
            }
            continue;
        };
        let Some(stamp) = sent_at_micros(text.as_str()) else {
            continue;
        };
        let now = base.elapsed();
        received.count += 1;
        received.last = now;
        received
            .latencies_us
            .push(u32::try_from(now.as_micros().saturating_sub(stamp)).unwrap_or(u32::MAX));
        deadline = Some(tokio::time::Instant::now() + DRAIN);
    }
    received
}

/// The send time embedded in a broadcast frame of this run, without a full JSON parse (the
/// marker's fields hold no characters JSON escapes).
fn sent_at_micros(frame: &str) -> Option<u128> {
    let start = frame.find(MARKED_MESSAGE)? + MARKED_MESSAGE.len();
    let mut fields = frame[start..].split('|');
    let (_sender, _seq, stamp) = (fields.next()?, fields.next()?, fields.next()?);
    stamp.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_send_time_from_a_broadcast_frame() {
        let frame = r#"{"type":"message","from":"c1","message":"LG|0|7|123456|xxxx","sentAt":"2026-11-25T00:00:00.000Z"}"#;
        assert_eq!(sent_at_micros(frame), Some(123_456));
        assert_eq!(
            sent_at_micros(r#"{"type":"message","from":"x","message":"hello"}"#),
            None
        );
    }
}
