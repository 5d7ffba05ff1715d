use std::time::Duration;

/// What one run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub clients: usize,
    pub connect_seconds: f64,
    pub connect_failures: usize,
    pub expected: u64,
    pub delivered: u64,
    /// From the first send to the last delivery.
    pub send_to_last_delivery: Duration,
    /// Microseconds from send to receipt, one per delivery.
    pub latencies_us: Vec<u32>,
    pub server_peak_rss_bytes: Option<u64>,
}

impl Report {
    pub fn to_json(&self) -> String {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let percentile = |p: f64| -> Option<f64> {
            if sorted.is_empty() {
                return None;
            }
            let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
            Some(f64::from(sorted[index]) / 1000.0)
        };
        let seconds = self.send_to_last_delivery.as_secs_f64();
        let per_second = if seconds > 0.0 {
            self.delivered as f64 / seconds
        } else {
            0.0
        };
        serde_json::json!({
            "clients": self.clients,
            "connect_seconds": round(self.connect_seconds, 3),
            "connect_failures": self.connect_failures,
            "expected_deliveries": self.expected,
            "delivered": self.delivered,
            "deliveries_per_second": round(per_second, 0),
            "latency_ms": {
                "p50": percentile(50.0),
                "p90": percentile(90.0),
                "p99": percentile(99.0),
                "max": percentile(100.0),
            },
            "server_peak_rss_mb": self.server_peak_rss_bytes.map(|b| round(b as f64 / 1_048_576.0, 1)),
        })
        .to_string()
    }
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// Peak resident set size of a process (`VmHWM` in /proc/PID/status).
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
