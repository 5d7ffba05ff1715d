//! A connection's bounded outbound queue: one producer (its handle), one consumer (its writer).
//!
//! Not tokio's `mpsc`: that channel allocates its first block of 32 slots (1.6 KB) when it is
//! created, and idle connections are the gateway's normal case — 16 MB at 10,000 of them. This
//! queue allocates on the first frame and holds the frames only while they wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Message;
use tokio::sync::Notify;

#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// The queue holds `capacity` frames: the client is not reading.
    Full,
    /// The writer is gone.
    Closed,
}

pub fn channel(capacity: usize) -> (Outbound, Queued) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            sender_gone: false,
            receiver_gone: false,
        }),
        changed: Notify::new(),
        capacity: capacity.max(1),
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
    capacity: usize,
}

struct State {
    frames: VecDeque<Message>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned queue is still a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side, held by the connection's handle.
pub struct Outbound {
    shared: Arc<Shared>,
}

impl Outbound {
    /// Queues a frame without waiting.
    pub fn try_send(&self, message: Message) -> Result<(), TrySendError> {
        {
            let mut state = self.shared.state();
            if state.receiver_gone {
                return Err(TrySendError::Closed);
            }
            if state.frames.len() >= self.shared.capacity {
                return Err(TrySendError::Full);
            }
            state.frames.push_back(message);
        }
        self.shared.changed.notify_one();
        Ok(())
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
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            {
                let mut state = self.shared.state();
                if let Some(message) = state.frames.pop_front() {
                    return Some(message);
                }
                if state.sender_gone {
                    return None;
                }
            }
            self.shared.changed.notified().await;
        }
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.shared.state().frames.pop_front()
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.receiver_gone = true;
        // Frames nobody will write are freed now, not when the handle goes.
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn text(s: &'static str) -> Message {
        Message::Text(s.into())
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_a_full_queue_refuses_more() {
        let (outbound, mut queued) = channel(2);
        assert_eq!(outbound.try_send(text("a")), Ok(()));
        assert_eq!(outbound.try_send(text("b")), Ok(()));
        assert_eq!(outbound.try_send(text("c")), Err(TrySendError::Full));
        assert_eq!(queued.recv().await, Some(text("a")));
        assert_eq!(outbound.try_send(text("d")), Ok(()));
        assert_eq!(queued.try_recv(), Some(text("b")));
        assert_eq!(queued.try_recv(), Some(text("d")));
        assert_eq!(queued.try_recv(), None);
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_frame_and_ends_when_the_sender_goes() {
        let (outbound, mut queued) = channel(4);
        let writer = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(message) = queued.recv().await {
                seen.push(message);
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
        let (outbound, queued) = channel(4);
        drop(queued);
        assert_eq!(outbound.try_send(text("x")), Err(TrySendError::Closed));
    }
}
