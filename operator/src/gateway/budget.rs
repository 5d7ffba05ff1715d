//! The gateway's memory budget: what it holds for its clients, in bytes, so that it refuses
//! new work before the pod's memory limit is reached instead of being killed at it.
//!
//! # What is counted
//! - Each TCP connection: a [`Reserve`] taken before its request is read, kept until it
//!   closes (a WebSocket connection keeps the one its handshake took), grown by what it keeps
//!   of its request (the User-Agent, the authorizer's context).
//! - Each queue beyond the first 4 KiB its reserve covers, in 16 KiB steps, until its writer
//!   takes the frames; a writer's batch (at most 64 KiB of payload) until written.
//! - A broadcast's payload once, by a [`Charge`] its queues share, however many hold it.
//! - A socket whose kernel send buffer is full (capped by `SO_SNDBUF`), while its writer waits.
//! - A management request's body, from before it is read until its handler has queued it.
//!
//! # Guarantees
//! - The count never runs short of what it counts (each queue is counted at most 16 KiB over
//!   what it holds), and everything is given back, by `Drop`, whatever path a connection ends
//!   on.
//! - A reserve is refused, never granted, once the budget is spent; then the gateway makes room
//!   by its fairness policy (http_server.rs: the oldest connection without a request head, else
//!   the client with the most unread bytes) before a newcomer gets 503, and the clients
//!   already served keep going.
//!
//! # Caveats
//! - It is an estimate of the gateway's memory, not a reading of it: a connection's own
//!   buffers are counted at [`CONNECTION_RESERVE_BYTES`], measured for an idle connection
//!   with room to spare. Keep the budget below the pod's limit by the process's own base
//!   (docs/operations.md).
//! - Queued frames do not wait for the budget: each queue is bounded on its own
//!   (`outbound_queue_bytes`), so a burst to a large room is not refused halfway.
//! - A kernel send buffer is counted only while a write waits on it: one filled by the last
//!   write before the client stopped reading is not, up to the cap per connection.

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
        let charge = self.try_charge(CONNECTION_RESERVE_BYTES)?;
        Some(Reserve {
            _charge: charge,
            kept: None,
        })
    }

    /// `bytes` counted until the charge is dropped, unless that would spend more than the
    /// budget: what a new piece of work may hold.
    pub fn try_charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|after| *after <= self.limit)
            });
        taken.ok().map(|_| Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// `bytes` counted until the charge is dropped, past the budget if need be: what work
    /// already admitted holds (a broadcast's one buffer, a socket the kernel holds full).
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.add(bytes);
        Charge {
            budget: self.clone(),
            bytes,
        }
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

/// Bytes counted in the budget, given back when it is dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// One connection's share of the budget, given back when it is dropped: the fixed reserve,
/// and what it keeps of its request beyond it.
#[derive(Debug)]
pub struct Reserve {
    _charge: Charge,
    kept: Option<Charge>,
}

impl Reserve {
    /// Counts `bytes` more that the connection keeps for its life; false, and nothing
    /// counted, when the budget has no room for them.
    pub fn keep(&mut self, budget: &Arc<MemoryBudget>, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        match budget.try_charge(bytes) {
            Some(charge) => {
                self.kept = Some(charge);
                true
            }
            None => false,
        }
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
    fn a_charge_is_refused_past_the_limit_unless_forced_and_always_given_back() {
        let budget = MemoryBudget::new(100);
        let held = budget.try_charge(60).expect("within the budget");
        assert!(budget.try_charge(41).is_none());
        let forced = budget.charge(50);
        assert_eq!(budget.used(), 110);
        drop((held, forced));
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
