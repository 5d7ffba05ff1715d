//! What a fleet of rooms costs, read from the operator's own `/metrics` and `/proc`: shared by
//! the steady-state test and the soak benchmark.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::replica::Replica;

/// One scrape of the counters that matter for a fleet.
#[derive(Debug, Default)]
pub struct Counters {
    /// `chatroom_aws_requests_total` by (service, operation, outcome).
    requests: BTreeMap<(String, String, String), u64>,
    pub reconciles: u64,
    pub throttled: u64,
    /// `chatroom_resync_seconds`: the resync in force after the last room settled.
    pub resync_seconds: f64,
}

impl Counters {
    pub async fn scrape(replica: &Replica) -> Self {
        let (_, metrics) = replica.get("/metrics").await.expect("metrics");
        Self::parse(&metrics)
    }

    pub fn parse(metrics: &str) -> Self {
        let mut counters = Self::default();
        for line in metrics.lines() {
            if let Some(rest) = line.strip_prefix("chatroom_aws_requests_total{") {
                let (labels, value) = rest.split_once("} ").expect("a labelled sample");
                let label = |name: &str| {
                    labels
                        .split(',')
                        .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                        .map(|v| v.trim_end_matches('"').to_owned())
                        .unwrap_or_default()
                };
                counters.requests.insert(
                    (label("service"), label("operation"), label("outcome")),
                    value.parse().expect("a count"),
                );
            } else if let Some(rest) = line.strip_prefix("chatroom_aws_throttled_total{") {
                let (_, value) = rest.split_once("} ").expect("a labelled sample");
                counters.throttled += value.parse::<u64>().expect("a count");
            } else if let Some(value) = line.strip_prefix("chatroom_reconciles_total ") {
                counters.reconciles = value.parse().expect("a count");
            } else if let Some(value) = line.strip_prefix("chatroom_resync_seconds ") {
                counters.resync_seconds = value.parse().expect("seconds");
            }
        }
        counters
    }

    /// Requests whose (service, operation) `keep` accepts.
    pub fn requests(&self, keep: impl Fn(&str, &str) -> bool) -> u64 {
        self.requests
            .iter()
            .filter(|((service, operation, _), _)| keep(service, operation))
            .map(|(_, count)| count)
            .sum()
    }

    /// Requests by service, of every operation and outcome.
    pub fn by_service(&self) -> BTreeMap<String, u64> {
        let mut services = BTreeMap::new();
        for ((service, _, _), count) in &self.requests {
            *services.entry(service.clone()).or_default() += count;
        }
        services
    }
}

pub fn is_api_gateway(service: &str, _: &str) -> bool {
    service == "ApiGatewayV2"
}

pub fn is_mutating(_: &str, operation: &str) -> bool {
    !["Get", "Describe", "List"]
        .iter()
        .any(|read| operation.starts_with(read))
}

/// Samples a running total every `every` until `until`: (when, total).
pub async fn sample(
    replica: &Replica,
    every: Duration,
    until: Instant,
    of: impl Fn(&Counters) -> u64,
) -> Vec<(Instant, u64)> {
    let mut samples = Vec::new();
    while Instant::now() < until {
        samples.push((Instant::now(), of(&Counters::scrape(replica).await)));
        tokio::time::sleep(every).await;
    }
    samples
}

/// The most a sampled running total grew within any one second.
pub fn busiest_second(samples: &[(Instant, u64)]) -> u64 {
    samples
        .iter()
        .enumerate()
        .map(|(i, (at, count))| {
            let within = samples[i..]
                .iter()
                .take_while(|(then, _)| *then <= *at + Duration::from_secs(1))
                .last()
                .map_or(*count, |(_, c)| *c);
            within - count
        })
        .max()
        .unwrap_or(0)
}

/// (VmRSS, VmHWM) of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}
