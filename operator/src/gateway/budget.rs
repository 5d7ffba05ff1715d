//! The gateway's memory budget: what it holds for its clients, in bytes, so that it refuses
//! new work before the pod's memory limit is reached instead of being killed at it.
//!
//! # Expected flow
//! A TCP connection takes a [`Reserve`] before its request is read, and keeps it until it
//! closes (a WebSocket connection keeps the one its handshake took). What a client's queue
//! holds beyond the first 4 KiB (which its reserve covers), rounded up to 16 KiB steps, is
//! added until its writer takes it off the queue.
//!
//! # Guarantees
//! - The count never runs short of what it counts (each queue is counted at most 16 KiB over
//!   what it holds), and everything is given back, by `Drop`, whatever path a connection ends
//!   on.
//! - A reserve is refused, never granted, once the budget is spent: new clients get 503 while
//!   the clients already served keep going.
//!
//! # Caveats
//! - It is an estimate of the gateway's memory, not a reading of it: a connection's own
//!   buffers are counted at [`CONNECTION_RESERVE_BYTES`], measured for an idle connection
//!   with room to spare, and a broadcast frame shared by many queues is counted once per
//!   queue (more than it costs). Keep the budget below the pod's limit by the process's own
//!   base (docs/operations.md).
//! - Queued frames do not wait for the budget: each queue is bounded on its own
//!   (`outbound_queue_bytes`), so a burst to a large room is not refused halfway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What one connection is counted at besides the frames queued for it: an idle WebSocket
/// connection measured 6.8 KB (docs/benchmarks.md), and an HTTP request head may hold up to
/// the 16 KiB hyper is allowed to buffer.
pub const CONNECTION_RESERVE_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// A connection's reserve, unless that would spend more than the budget.
    pub fn reserve(self: &Arc<Self>) -> Option<Reserve> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(CONNECTION_RESERVE_BYTES)
                    .filter(|after| *after <= self.limit)
            });
        taken.ok().map(|_| Reserve {
            budget: self.clone(),
        })
    }

    /// Counts bytes queued for a client.
    pub fn add(&self, bytes: usize) {
        // Nothing to count touches nothing: the counter's cache line is shared by every core.
        if bytes > 0 {
            self.used.fetch_add(bytes, Ordering::AcqRel);
        }
    }

    /// Gives back bytes a writer took off its queue.
    pub fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// One connection's share of the budget, given back when it is dropped.
#[derive(Debug)]
pub struct Reserve {
    budget: Arc<MemoryBudget>,
}

impl Drop for Reserve {
    fn drop(&mut self) {
        self.budget.release(CONNECTION_RESERVE_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_stop_at_the_limit_and_come_back_when_dropped() {
        let budget = MemoryBudget::new(2 * CONNECTION_RESERVE_BYTES + 100);
        let first = budget.reserve().expect("room for one");
        let second = budget.reserve().expect("room for two");
        assert!(budget.reserve().is_none(), "no room for a third");
        drop(first);
        let third = budget.reserve().expect("room again once one left");
        assert_eq!(budget.used(), 2 * CONNECTION_RESERVE_BYTES);
        drop((second, third));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn queued_bytes_count_against_new_connections() {
        let budget = MemoryBudget::new(CONNECTION_RESERVE_BYTES + 10);
        budget.add(11);
        assert!(budget.reserve().is_none());
        budget.release(11);
        assert!(budget.reserve().is_some());
    }
}
