//! `chatroom-loadgen`: opens N WebSocket clients against a room on loopback, has S of them
//! send M messages each (or at a set rate for a set time), and prints one JSON line with
//! deliveries, throughput, latency percentiles and the server's peak RSS.
//!
//! Every message carries its send time; every client counts every frame it receives and the
//! latency of each. Runs are bounded in count and in time, and only loopback is a target.

mod report;
mod run;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "chatroom-loadgen",
    about = "Load for a chatroom-operator room on loopback"
)]
pub struct Options {
    /// The room's WebSocket URL (loopback only), e.g. ws://127.0.0.1:8080/default/lobby/dev
    #[arg(long)]
    pub url: url::Url,
    /// Clients to open; the first `senders` of them also send.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    #[arg(long, default_value_t = 2)]
    pub senders: usize,
    /// Messages per sender (count mode).
    #[arg(long, default_value_t = 10)]
    pub messages: usize,
    /// Messages per second across all senders; with --duration, replaces --messages.
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// The route key messages select.
    #[arg(long, default_value = "onMessage")]
    pub action: String,
    /// Every client subscribes to this channel before the first send, and every message is
    /// sent to it (a room with `spec.channels`).
    #[arg(long)]
    pub channel: Option<String>,
    /// Bytes of text in each message.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Wait this long between connecting and the first send (to profile the sends alone).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub settle: Duration,
    /// Hold the connections this long after the run (idle-connection measurements).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub hold: Duration,
    /// The server's PID, to report its peak resident memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Upper bound on the whole run.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub timeout: Duration,
}

fn loopback_only(url: &url::Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "refusing to load {host}: only loopback addresses are targets"
        ))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(error) = loopback_only(&options.url) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    if options.senders > options.clients {
        eprintln!(
            "error: --senders ({}) cannot exceed --clients ({})",
            options.senders, options.clients
        );
        return ExitCode::from(2);
    }
    match tokio::time::timeout(options.timeout, run::run(&options)).await {
        Ok(Ok(report)) => {
            println!("{}", report.to_json());
            if report.delivered == report.expected {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(Err(error)) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "error: the run did not finish within --timeout {:?}",
                options.timeout
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_a_target() {
        for ok in [
            "ws://127.0.0.1:8080/a",
            "ws://127.9.9.9/a",
            "ws://localhost:1/a",
            "ws://[::1]:8080/a",
        ] {
            assert!(loopback_only(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for refused in [
            "ws://10.0.0.1/a",
            "ws://192.168.1.2/a",
            "ws://example.com/a",
            "ws://8.8.8.8/a",
        ] {
            assert!(
                loopback_only(&refused.parse().unwrap()).is_err(),
                "{refused}"
            );
        }
    }
}
