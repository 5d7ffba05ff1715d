//! A connection's bounded outbound queue: one producer (its handle), one consumer (its writer),
//! bounded in frames and in bytes, its bytes counted in the gateway's memory budget.
//!
//! Not tokio's `mpsc`: that channel allocates its first block of 32 slots (1.6 KB) when it is
//! created, and idle connections are the gateway's normal case — 16 MB at 10,000 of them. This
//! queue allocates on the first frame and holds the frames only while they wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;
use tungstenite::Utf8Bytes;

use super::budget::{Charge, MemoryBudget};

/// What a writer sends: data (as API Gateway relays it, split into frames by the writer), or
/// the answer to a ping, which counts against the queue like any frame so that a client that
/// pings without reading fills its queue instead of the gateway's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A text message; its bytes were checked to be UTF-8 once, when it was made.
    Text(Utf8Bytes),
    /// Data that is not UTF-8, which a text frame may not carry.
    Binary(Bytes),
    Pong(Bytes),
}

/// What a queued frame is counted at besides its payload: the queue slot and the frame header.
const FRAME_OVERHEAD_BYTES: usize = 64;

/// The first bytes of a queue are inside the connection's reserve
/// ([`super::budget::CONNECTION_RESERVE_BYTES`]); only what a queue holds beyond them is
/// counted in the budget again. A queue that drains as it should then never touches the
/// budget's shared counter, which every core would otherwise contend for at every frame.
pub(super) const RESERVED_QUEUE_BYTES: usize = 4 * 1024;
/// Beyond the reserve, a queue is counted in steps of this much, rounded up: a burst to a
/// thousand queues then updates the shared counter once per step, not once per frame.
const COUNTED_STEP_BYTES: usize = 16 * 1024;

/// A drained queue keeps room for this many frames, and frees a larger one.
const SHRINK_ABOVE_FRAMES: usize = 64;

/// What a queue holding `bytes` adds to the budget.
fn counted(bytes: usize) -> usize {
    bytes
        .saturating_sub(RESERVED_QUEUE_BYTES)
        .div_ceil(COUNTED_STEP_BYTES)
        * COUNTED_STEP_BYTES
}

impl Outgoing {
    /// A data message from bytes a backend or the chat sent: text when they are UTF-8. The
    /// bytes are shared, not copied.
    pub fn data(payload: Bytes) -> Self {
        match Utf8Bytes::try_from(payload.clone()) {
            Ok(text) => Self::Text(text),
            Err(_) => Self::Binary(payload),
        }
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(Utf8Bytes::from(text.into()))
    }

    /// The bytes of the message itself.
    pub fn payload_len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(payload) | Self::Pong(payload) => payload.len(),
        }
    }

    fn cost(&self) -> usize {
        self.payload_len() + FRAME_OVERHEAD_BYTES
    }
}

/// A queued frame, and the charge of its payload when the payload is one buffer that other
/// queues share (a broadcast): the budget then counts the payload once, by that charge, and
/// each queue only its slot. The writer keeps it until the frame is written, so the shared
/// payload stays counted while any writer still holds it.
pub struct Entry {
    pub frame: Outgoing,
    shared: Option<Arc<Charge>>,
}

impl Entry {
    /// The payload bytes no other queue's charge counts: what a writer holding this entry
    /// must count itself.
    pub fn own_payload_bytes(&self) -> usize {
        if self.shared.is_some() {
            0
        } else {
            self.frame.payload_len()
        }
    }

    /// What this entry adds to the budget through its queue.
    fn counted_cost(&self) -> usize {
        if self.shared.is_some() {
            FRAME_OVERHEAD_BYTES
        } else {
            self.frame.cost()
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// The queue holds its limit of frames or bytes: the client is not reading.
    Full,
    /// The writer is gone.
    Closed,
}

/// How much one queue may hold.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    pub frames: usize,
    pub bytes: usize,
}

pub fn channel(limits: QueueLimits, budget: Arc<MemoryBudget>) -> (Outbound, Queued) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            bytes: 0,
            counted_bytes: 0,
            sender_gone: false,
            receiver_gone: false,
        }),
        changed: Notify::new(),
        limits: QueueLimits {
            frames: limits.frames.max(1),
            bytes: limits.bytes,
        },
        budget,
    });
    (
        Outbound {
            shared: shared.clone(),
        },
        Queued { shared },
    )
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer; a notification sent while it is busy is kept for its next wait.
    changed: Notify,
    limits: QueueLimits,
    budget: Arc<MemoryBudget>,
}

struct State {
    frames: VecDeque<Entry>,
    /// The cost of `frames` against the queue's own limit: every payload in full.
    bytes: usize,
    /// What `frames` add to the budget: shared payloads are counted by their charge instead.
    counted_bytes: usize,
    sender_gone: bool,
    receiver_gone: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned queue is still a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pop(&self, state: &mut State) -> Option<Entry> {
        let entry = state.frames.pop_front()?;
        // A burst grew the queue; once drained it gives the room back, so that a connection
        // that once fell behind does not keep its peak for good.
        if state.frames.is_empty() && state.frames.capacity() > SHRINK_ABOVE_FRAMES {
            state.frames = VecDeque::new();
        }
        state.bytes -= entry.frame.cost();
        let before = state.counted_bytes;
        state.counted_bytes -= entry.counted_cost();
        self.budget
            .release(counted(before).saturating_sub(counted(state.counted_bytes)));
        Some(entry)
    }
}

/// The sending side, held by the connection's handle.
pub struct Outbound {
    shared: Arc<Shared>,
}

impl Outbound {
    /// Queues a frame without waiting.
    pub fn try_send(&self, frame: Outgoing) -> Result<(), TrySendError> {
        self.push(Entry {
            frame,
            shared: None,
        })
    }

    /// Queues a frame whose payload other queues share, counted in the budget once by
    /// `charge` (see [`Entry`]).
    pub fn try_send_shared(
        &self,
        frame: Outgoing,
        charge: &Arc<Charge>,
    ) -> Result<(), TrySendError> {
        self.push(Entry {
            frame,
            shared: Some(charge.clone()),
        })
    }

    fn push(&self, entry: Entry) -> Result<(), TrySendError> {
        let cost = entry.frame.cost();
        let counted_cost = entry.counted_cost();
        {
            let mut state = self.shared.state();
            if state.receiver_gone {
                return Err(TrySendError::Closed);
            }
            let limits = self.shared.limits;
            if state.frames.len() >= limits.frames || state.bytes + cost > limits.bytes {
                return Err(TrySendError::Full);
            }
            let was_empty = state.frames.is_empty();
            let before = state.counted_bytes;
            state.frames.push_back(entry);
            state.bytes += cost;
            state.counted_bytes += counted_cost;
            self.shared
                .budget
                .add(counted(state.counted_bytes).saturating_sub(counted(before)));
            // The writer drains the queue before it waits again: only a frame into an empty
            // queue needs to wake it, and a thousand-recipient broadcast wakes each writer once.
            if !was_empty {
                return Ok(());
            }
        }
        self.shared.changed.notify_one();
        Ok(())
    }

    /// The bytes waiting, as counted against the queue's limit.
    pub fn queued_bytes(&self) -> usize {
        self.shared.state().bytes
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.shared.state().sender_gone = true;
        self.shared.changed.notify_one();
    }
}

/// The receiving side, held by the connection's writer.
pub struct Queued {
    shared: Arc<Shared>,
}

impl Queued {
    /// The next frame; `None` once the queue is empty and the sender is gone.
    pub async fn recv(&mut self) -> Option<Entry> {
        loop {
            {
                let mut state = self.shared.state();
                if let Some(frame) = self.shared.pop(&mut state) {
                    return Some(frame);
                }
                if state.sender_gone {
                    return None;
                }
            }
            self.shared.changed.notified().await;
        }
    }

    /// Waiting frames, taken under one lock (fewer round trips to the lock the producer also
    /// takes), until `into` holds `max_frames` or `max_bytes` of payload: a writer blocked on
    /// a client that does not read then holds little, and the rest stays in the queue, where
    /// its limit sees it.
    pub fn try_recv_many(&mut self, max_frames: usize, max_bytes: usize, into: &mut Vec<Entry>) {
        let mut state = self.shared.state();
        let mut bytes: usize = into.iter().map(|e| e.frame.payload_len()).sum();
        while into.len() < max_frames && bytes < max_bytes {
            let Some(entry) = self.shared.pop(&mut state) else {
                break;
            };
            bytes += entry.frame.payload_len();
            into.push(entry);
        }
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Entry> {
        let mut state = self.shared.state();
        self.shared.pop(&mut state)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.receiver_gone = true;
        // Frames nobody will write are freed now, not when the handle goes.
        self.shared.budget.release(counted(state.counted_bytes));
        state.bytes = 0;
        state.counted_bytes = 0;
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn text(s: &'static str) -> Outgoing {
        Outgoing::data(Bytes::from_static(s.as_bytes()))
    }

    fn queue(frames: usize, bytes: usize) -> (Outbound, Queued, Arc<MemoryBudget>) {
        let budget = MemoryBudget::new(usize::MAX);
        let (outbound, queued) = channel(QueueLimits { frames, bytes }, budget.clone());
        (outbound, queued, budget)
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_a_full_queue_refuses_more() {
        let (outbound, mut queued, _) = queue(2, usize::MAX);
        assert_eq!(outbound.try_send(text("a")), Ok(()));
        assert_eq!(outbound.try_send(text("b")), Ok(()));
        assert_eq!(outbound.try_send(text("c")), Err(TrySendError::Full));
        assert_eq!(queued.recv().await.map(|e| e.frame), Some(text("a")));
        assert_eq!(outbound.try_send(text("d")), Ok(()));
        assert_eq!(queued.try_recv().map(|e| e.frame), Some(text("b")));
        assert_eq!(queued.try_recv().map(|e| e.frame), Some(text("d")));
        assert!(queued.try_recv().is_none());
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_pongs_count() {
        const PONG: usize = 100 + FRAME_OVERHEAD_BYTES;
        let (outbound, _queued, budget) = queue(1000, 30 * PONG);
        let pong = || Outgoing::Pong(Bytes::from(vec![0; 100]));
        for _ in 0..30 {
            assert_eq!(outbound.try_send(pong()), Ok(()));
        }
        assert_eq!(outbound.try_send(pong()), Err(TrySendError::Full));
        assert_eq!(outbound.queued_bytes(), 30 * PONG);
        assert_eq!(
            budget.used(),
            COUNTED_STEP_BYTES,
            "4,920 bytes: one step past the reserve"
        );
    }

    #[test]
    fn the_budget_counts_what_a_queue_holds_beyond_the_reserve_and_gets_it_all_back() {
        let (outbound, mut queued, budget) = queue(100, usize::MAX);
        let big = || Outgoing::Binary(Bytes::from(vec![0; 10_000]));
        outbound
            .try_send(Outgoing::Binary(Bytes::from(vec![0; 3000])))
            .unwrap();
        assert_eq!(budget.used(), 0, "within the connection's reserve");
        outbound.try_send(big()).unwrap();
        assert_eq!(
            budget.used(),
            COUNTED_STEP_BYTES,
            "13 KB: one step past the reserve"
        );
        outbound.try_send(big()).unwrap();
        assert_eq!(budget.used(), 2 * COUNTED_STEP_BYTES, "23 KB: two steps");
        queued.try_recv();
        assert_eq!(budget.used(), COUNTED_STEP_BYTES, "20 KB: back to one");
        drop(queued);
        assert_eq!(budget.used(), 0, "what will never be written is given back");
    }

    #[test]
    fn a_payload_many_queues_share_is_counted_once_and_given_back_with_the_last() {
        let budget = MemoryBudget::new(usize::MAX);
        let limits = QueueLimits {
            frames: 100,
            bytes: usize::MAX,
        };
        let queues: Vec<_> = (0..100).map(|_| channel(limits, budget.clone())).collect();
        let frame = Outgoing::Binary(Bytes::from(vec![0; 128 * 1024]));
        let charge = Arc::new(budget.charge(frame.payload_len()));
        for (outbound, _) in &queues {
            outbound.try_send_shared(frame.clone(), &charge).unwrap();
        }
        drop(charge);
        assert_eq!(
            budget.used(),
            128 * 1024,
            "one buffer, and each queue's slot within its reserve"
        );
        assert_eq!(
            queues[0].0.queued_bytes(),
            frame.cost(),
            "each queue's own limit still counts the whole payload"
        );
        let mut queues = queues;
        for (_, queued) in &mut queues[..99] {
            queued.try_recv().unwrap();
        }
        assert_eq!(budget.used(), 128 * 1024, "one queue still holds it");
        queues[99].1.try_recv().unwrap();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn bytes_that_are_not_utf8_go_out_as_binary() {
        assert_eq!(
            Outgoing::data(Bytes::from_static(&[0xff, 0])),
            Outgoing::Binary(Bytes::from_static(&[0xff, 0]))
        );
        assert_eq!(
            Outgoing::data(Bytes::from_static(b"{}")),
            Outgoing::text("{}")
        );
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_frame_and_ends_when_the_sender_goes() {
        let (outbound, mut queued, _) = queue(4, usize::MAX);
        let writer = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(entry) = queued.recv().await {
                seen.push(entry.frame);
            }
            seen
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        outbound.try_send(text("late")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(outbound);
        let seen = tokio::time::timeout(Duration::from_secs(2), writer)
            .await
            .expect("the writer ended")
            .unwrap();
        assert_eq!(seen, vec![text("late")]);
    }

    #[test]
    fn sending_to_a_gone_writer_is_closed() {
        let (outbound, queued, _) = queue(4, usize::MAX);
        drop(queued);
        assert_eq!(outbound.try_send(text("x")), Err(TrySendError::Closed));
    }
}
