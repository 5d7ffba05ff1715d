use std::time::Duration;

/// The gateway's limits: API Gateway's WebSocket quotas, which the local gateway enforces the
/// same way, and the bounds in bytes and time that keep one hostile client from hurting the
/// others.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html>
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest message, after reassembling fragments (AWS: 128 KB). Larger closes with 1009.
    pub max_message_bytes: usize,
    /// Largest single frame (AWS: 32 KB). Larger closes with 1009; larger outgoing messages
    /// are split into frames of at most this size, as AWS splits `@connections` posts.
    pub max_frame_bytes: usize,
    /// A connection with no frame from its client for this long is closed with 1001 (AWS: 10 min).
    pub idle_timeout: Duration,
    /// No connection lives longer than this; it is closed with 1001 (AWS: 2 h).
    pub max_connection_duration: Duration,
    /// Frames waiting to be written to one client.
    pub outbound_queue_frames: usize,
    /// Bytes waiting to be written to one client, control-frame replies included. A client
    /// that lets either fill up is not reading: it is closed with 1008.
    pub outbound_queue_bytes: usize,
    /// What the whole gateway may hold: a fixed reserve per connection plus every byte queued
    /// for a client. Past it, new connections are refused with 503 while existing ones are
    /// served.
    pub memory_budget_bytes: usize,
    /// How long a client may take to send a complete HTTP request head (the WebSocket
    /// handshake included), and a management request its body.
    pub header_timeout: Duration,
    /// New WebSocket connections per second across the gateway (AWS: 500 per account and
    /// Region); past it, the handshake is refused with 429.
    pub new_connections_per_second: u32,
    /// Requests per second across every room, and the bucket that lets bursts through (AWS's
    /// account-level throttle: 10,000 per second, burst 5,000); a room's `spec.throttling` is
    /// checked as well.
    pub account_rate_limit: f64,
    pub account_burst_limit: u32,
    /// Requests per second one connection may make on every route but the room's broadcast
    /// route (`who`, `history`, `$default`: answers to the sender alone, which AWS does not
    /// limit below the account's rate), and the burst above it. Past it the sender gets API
    /// Gateway's "Too Many Requests" frame.
    pub connection_query_rate: f64,
    pub connection_query_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 128 * 1024,
            max_frame_bytes: 32 * 1024,
            idle_timeout: Duration::from_secs(10 * 60),
            max_connection_duration: Duration::from_secs(2 * 60 * 60),
            outbound_queue_frames: 1024,
            outbound_queue_bytes: 1024 * 1024,
            memory_budget_bytes: 192 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            new_connections_per_second: 500,
            account_rate_limit: 10_000.0,
            account_burst_limit: 5_000,
            connection_query_rate: 10.0,
            connection_query_burst: 20,
        }
    }
}

/// The longest any of the gateway's durations may be: a connection lives at most a day, and
/// a larger value would overflow the timers it arms.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A limit that cannot work, named by the flag that sets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {problem}")]
pub struct InvalidLimit {
    pub flag: &'static str,
    pub problem: String,
}

impl Limits {
    /// Every problem with these limits, each naming its flag; empty when they can work.
    pub fn problems(&self) -> Vec<InvalidLimit> {
        let mut problems = Vec::new();
        let mut fail = |flag, problem: String| problems.push(InvalidLimit { flag, problem });
        for (flag, bytes) in [
            ("--max-message-bytes", self.max_message_bytes),
            ("--max-frame-bytes", self.max_frame_bytes),
            ("--outbound-queue-frames", self.outbound_queue_frames),
            ("--outbound-queue-bytes", self.outbound_queue_bytes),
        ] {
            if bytes == 0 {
                fail(flag, "must be above 0".to_owned());
            }
        }
        // One connection's reserve and one largest message queued for it: below that the
        // gateway would start and refuse every client.
        let one_connection = super::budget::CONNECTION_RESERVE_BYTES + self.max_message_bytes;
        if self.memory_budget_bytes < one_connection {
            fail(
                "--memory-budget-bytes",
                format!(
                    "{} is less than one connection needs ({} bytes: its reserve and one --max-message-bytes message)",
                    self.memory_budget_bytes, one_connection
                ),
            );
        }
        if self.max_frame_bytes > self.max_message_bytes {
            fail(
                "--max-frame-bytes",
                format!(
                    "{} is above --max-message-bytes {}: a frame is part of a message",
                    self.max_frame_bytes, self.max_message_bytes
                ),
            );
        }
        if self.outbound_queue_bytes < self.max_message_bytes {
            fail(
                "--outbound-queue-bytes",
                format!(
                    "{} is below --max-message-bytes {}: no client could receive the largest message",
                    self.outbound_queue_bytes, self.max_message_bytes
                ),
            );
        }
        for (flag, duration) in [
            ("--idle-timeout", self.idle_timeout),
            ("--max-connection-duration", self.max_connection_duration),
            ("--header-timeout", self.header_timeout),
        ] {
            if duration.is_zero() || duration > MAX_DURATION {
                fail(
                    flag,
                    format!("{duration:?} is not between 1ms and {MAX_DURATION:?}"),
                );
            }
        }
        if self.new_connections_per_second == 0 {
            fail("--new-connections-per-second", "must be above 0".to_owned());
        }
        let min_rate = crate::token_bucket::MIN_RATE_PER_SECOND;
        for (flag, rate) in [
            ("--account-rate-limit", self.account_rate_limit),
            ("--connection-query-rate", self.connection_query_rate),
        ] {
            if !(rate.is_finite() && rate >= min_rate) {
                fail(
                    flag,
                    format!("must be at least one request an hour ({min_rate:.6}/s), got {rate}"),
                );
            }
        }
        for (flag, burst) in [
            ("--account-burst-limit", self.account_burst_limit),
            ("--connection-query-burst", self.connection_query_burst),
        ] {
            if burst == 0 {
                fail(flag, "must be above 0".to_owned());
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(limits: &Limits) -> Vec<&'static str> {
        limits.problems().iter().map(|p| p.flag).collect()
    }

    #[test]
    fn the_defaults_work() {
        assert_eq!(Limits::default().problems(), []);
    }

    #[test]
    fn zero_limits_and_a_frame_above_the_message_are_refused_by_flag() {
        let zero = Limits {
            max_message_bytes: 0,
            outbound_queue_bytes: 0,
            memory_budget_bytes: 0,
            new_connections_per_second: 0,
            account_burst_limit: 0,
            ..Limits::default()
        };
        assert_eq!(
            flags(&zero),
            [
                "--max-message-bytes",
                "--outbound-queue-bytes",
                "--memory-budget-bytes",
                "--max-frame-bytes",
                "--new-connections-per-second",
                "--account-burst-limit"
            ]
        );
        let frame_too_big = Limits {
            max_frame_bytes: 256 * 1024,
            outbound_queue_bytes: 1024 * 1024,
            ..Limits::default()
        };
        assert_eq!(flags(&frame_too_big), ["--max-frame-bytes"]);
    }

    #[test]
    fn durations_are_refused_outside_a_millisecond_and_a_day() {
        let limits = Limits {
            idle_timeout: Duration::ZERO,
            max_connection_duration: Duration::from_secs(400_000_000_000 * 365 * 86_400),
            header_timeout: MAX_DURATION,
            ..Limits::default()
        };
        assert_eq!(
            flags(&limits),
            ["--idle-timeout", "--max-connection-duration"]
        );
    }

    #[test]
    fn a_budget_below_one_connection_and_a_rate_below_one_an_hour_are_refused() {
        let limits = Limits {
            memory_budget_bytes: 1,
            account_rate_limit: 1e-300,
            ..Limits::default()
        };
        assert_eq!(
            flags(&limits),
            ["--memory-budget-bytes", "--account-rate-limit"]
        );
        let least = Limits {
            memory_budget_bytes: super::super::budget::CONNECTION_RESERVE_BYTES + 128 * 1024,
            account_rate_limit: 1.0 / 3600.0,
            ..Limits::default()
        };
        assert_eq!(least.problems(), []);
    }

    #[test]
    fn a_queue_smaller_than_a_message_is_refused() {
        let limits = Limits {
            outbound_queue_bytes: 1000,
            ..Limits::default()
        };
        assert_eq!(flags(&limits), ["--outbound-queue-bytes"]);
    }
}
