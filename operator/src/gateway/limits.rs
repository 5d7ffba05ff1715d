use std::time::Duration;

/// API Gateway's WebSocket quotas, which the local gateway enforces the same way.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table>
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, after reassembling fragments (AWS: 128 KB). Larger closes with 1009.
    pub max_message_bytes: usize,
    /// Largest single frame (AWS: 32 KB). Larger closes with 1009.
    pub max_frame_bytes: usize,
    /// A connection with no frame from its client for this long is closed with 1001 (AWS: 10 min).
    pub idle_timeout: Duration,
    /// No connection lives longer than this; it is closed with 1001 (AWS: 2 h).
    pub max_connection_duration: Duration,
    /// Frames waiting to be written to one client. A client that lets this fill up is not
    /// reading; it is closed with 1008 so that it cannot make the gateway grow without bound.
    pub outbound_queue_frames: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 128 * 1024,
            max_frame_bytes: 32 * 1024,
            idle_timeout: Duration::from_secs(10 * 60),
            max_connection_duration: Duration::from_secs(2 * 60 * 60),
            outbound_queue_frames: 1024,
        }
    }
}
