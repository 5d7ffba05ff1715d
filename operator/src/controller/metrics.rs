//! Prometheus metrics (prometheus-client): reconciles and failures by reason, reconcile
//! duration, rooms by readiness, AWS requests by service, operation and outcome, throttled
//! attempts, leadership.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::providers::aws::CallEvent;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    pub ready: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: String,
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Counter,
    failures: Family<ReasonLabels, Counter>,
    duration: Histogram,
    rooms: Family<ReadyLabels, Gauge>,
    aws_requests: Family<CallLabels, Counter>,
    aws_throttled: Family<ServiceLabels, Counter>,
    leader: Gauge,
    resync: Gauge<f64, std::sync::atomic::AtomicU64>,
    readiness: Arc<Mutex<HashMap<String, bool>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chatroom");
        let reconciles = Counter::default();
        let failures = Family::<ReasonLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let rooms = Family::<ReadyLabels, Gauge>::default();
        let aws_requests = Family::<CallLabels, Counter>::default();
        let aws_throttled = Family::<ServiceLabels, Counter>::default();
        let leader = Gauge::default();
        let resync = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register("rooms", "ChatRooms by readiness", rooms.clone());
        registry.register(
            "aws_requests",
            "AWS API calls, by service, operation and how they ended after the SDK's retries",
            aws_requests.clone(),
        );
        registry.register(
            "aws_throttled",
            "Attempts AWS answered with throttling, by service (the SDK retries them)",
            aws_throttled.clone(),
        );
        registry.register(
            "resync_seconds",
            "The resync in force: --resync, or longer when the fleet's steady state would take more than half of an AWS service's rate limit",
            resync.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica reconciles (holds the lease, or runs without leader election)",
            leader.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            failures,
            duration,
            rooms,
            aws_requests,
            aws_throttled,
            leader,
            resync,
            readiness: Arc::default(),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn aws_call(&self, event: &CallEvent) {
        match event {
            CallEvent::Finished(call, outcome) => {
                let labels = CallLabels {
                    service: call.service.clone(),
                    operation: call.operation.clone(),
                    outcome: outcome.label().to_owned(),
                };
                self.aws_requests.get_or_create(&labels).inc();
            }
            CallEvent::Throttled(call) => {
                let labels = ServiceLabels {
                    service: call.service.clone(),
                };
                self.aws_throttled.get_or_create(&labels).inc();
            }
        }
    }

    pub fn set_resync(&self, resync: Duration) {
        self.resync.set(resync.as_secs_f64());
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// How many rooms the controller knows, ready or not.
    pub fn room_count(&self) -> usize {
        self.readiness
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Records a room's readiness; `None` when it is gone.
    pub fn room(&self, key: &str, ready: Option<bool>) {
        let mut readiness = self
            .readiness
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match ready {
            Some(ready) => readiness.insert(key.to_owned(), ready),
            None => readiness.remove(key),
        };
        let ready = readiness.values().filter(|r| **r).count();
        let not_ready = readiness.len() - ready;
        self.rooms
            .get_or_create(&ReadyLabels {
                ready: "true".into(),
            })
            .set(ready as i64);
        self.rooms
            .get_or_create(&ReadyLabels {
                ready: "false".into(),
            })
            .set(not_ready as i64);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        text
    }
}
