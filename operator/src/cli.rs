//! Command-line interface. Every flag can also be set from its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::gateway::Limits;
use crate::telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "chatroom-operator",
    version,
    about = "Turns ChatRoom resources into real-time WebSocket chat rooms"
)]
pub struct Cli {
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the ChatRoom CustomResourceDefinition as YAML.
    Crd,
    /// Serve ChatRoom files on the embedded gateway until interrupted: no AWS, no cluster.
    Local(LocalArgs),
}

#[derive(Args, Debug)]
pub struct LocalArgs {
    /// ChatRoom YAML files (several documents per file allowed).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Address the gateway listens on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// URL clients reach the gateway at, when a proxy stands in front of it.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// API Gateway's WebSocket quotas; the defaults are AWS's.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Largest message in bytes, fragments reassembled; larger closes with 1009.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 128 * 1024)]
    pub max_message_bytes: usize,
    /// Largest frame in bytes; larger closes with 1009.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = 32 * 1024)]
    pub max_frame_bytes: usize,
    /// Close a connection after this long without a frame from its client (1001).
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Close every connection after this long (1001).
    #[arg(long, env = "MAX_CONNECTION_DURATION", default_value = "2h", value_parser = humantime::parse_duration)]
    pub max_connection_duration: Duration,
    /// Frames queued for one client before it counts as not reading and is closed (1008).
    #[arg(long, env = "OUTBOUND_QUEUE_FRAMES", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub outbound_queue_frames: u32,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_frame_bytes: self.max_frame_bytes,
            idle_timeout: self.idle_timeout,
            max_connection_duration: self.max_connection_duration,
            outbound_queue_frames: self.outbound_queue_frames as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_interface_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn limit_defaults_are_aws_defaults() {
        let cli = Cli::parse_from(["chatroom-operator", "local", "room.yaml"]);
        let Command::Local(args) = cli.command else {
            panic!("expected local")
        };
        assert_eq!(args.limits.limits(), Limits::default());
    }
}
