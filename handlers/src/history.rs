//! A room's message history: the messages it broadcast, kept a while, so that a newcomer (or a
//! client reconnecting after API Gateway's two-hour cut) can catch up.
//!
//! # Guarantees
//! - Every broadcast message is appended once, before it is posted to anyone.
//! - An answer holds the newest messages still within the retention, oldest first, no more
//!   than asked and never more bytes than one post may carry.
//! - A message too large to fit in any answer on its own (with the history frame around it,
//!   over one post) is delivered live but never kept: it cannot push older messages out, and
//!   a newcomer is answered the ones before it.
//!
//! # Caveats
//! - Expiry is read-side: DynamoDB's TTL deletes late (up to days), so reads skip expired
//!   entries themselves.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::contract::MAX_POST_BYTES;
use crate::frames::ChatFrame;
use crate::store::StoreError;

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Time-ordered: sorting ids sorts entries by the time the gateway received them.
    pub id: String,
    /// The message frame exactly as it was broadcast (JSON).
    pub frame: String,
    /// Epoch milliseconds after which the entry is no longer answered.
    pub expires_at_ms: i64,
}

impl HistoryEntry {
    /// The entry for a message received at `received_ms` by request `request_id` (which
    /// tells apart messages of the same millisecond).
    pub fn new(received_ms: i64, request_id: &str, frame: String, retention: Duration) -> Self {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        Self {
            id: format!("{:013}#{request_id}", received_ms.max(0)),
            frame,
            expires_at_ms: received_ms.saturating_add(retention_ms),
        }
    }
}

/// Where a room keeps its history: DynamoDB on AWS, memory in the local gateway.
pub trait HistoryStore: Send + Sync {
    fn append(&self, entry: HistoryEntry) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// At most `limit` entries not expired at `now_ms`, newest first.
    fn newest(
        &self,
        limit: usize,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<HistoryEntry>, StoreError>> + Send;
}

impl<H: HistoryStore> HistoryStore for std::sync::Arc<H> {
    fn append(&self, entry: HistoryEntry) -> impl Future<Output = Result<(), StoreError>> + Send {
        H::append(self, entry)
    }

    fn newest(
        &self,
        limit: usize,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<HistoryEntry>, StoreError>> + Send {
        H::newest(self, limit, now_ms)
    }
}

/// How much history a room keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistorySettings {
    /// The most messages one answer holds (1–[`MAX_HISTORY_MESSAGES`]).
    pub messages: usize,
    pub retention: Duration,
}

/// The most messages `spec.history.messages` may ask for.
pub const MAX_HISTORY_MESSAGES: usize = 200;

/// The bytes of a history answer that holds no message.
fn empty_answer_bytes() -> usize {
    ChatFrame::History {
        messages: Vec::new(),
    }
    .to_json()
    .len()
}

/// Whether a message frame fits in a history answer at all.
pub fn fits_in_an_answer(frame_json: &str) -> bool {
    empty_answer_bytes() + frame_json.len() <= MAX_POST_BYTES
}

/// The answer to `history`: the newest of `newest_first` that fit in one post, oldest first.
/// An entry that is not a message frame (never written by this crate), or that could never
/// fit in an answer, is skipped.
pub fn history_frame(newest_first: Vec<HistoryEntry>) -> ChatFrame {
    let mut bytes = empty_answer_bytes();
    let mut messages = Vec::new();
    for entry in newest_first {
        let Ok(frame @ ChatFrame::Message { .. }) = serde_json::from_str::<ChatFrame>(&entry.frame)
        else {
            continue;
        };
        let json = frame.to_json();
        if !fits_in_an_answer(&json) {
            continue;
        }
        let size = json.len() + usize::from(!messages.is_empty());
        if bytes + size > MAX_POST_BYTES {
            break;
        }
        bytes += size;
        messages.push(frame);
    }
    messages.reverse();
    ChatFrame::History { messages }
}

/// The local gateway's history: a ring of the newest entries, bounded in count and in bytes
/// (no answer can hold more than one post's worth, so nothing beyond it is kept).
#[derive(Debug)]
pub struct MemoryHistory {
    capacity: usize,
    entries: Mutex<VecDeque<HistoryEntry>>,
}

impl MemoryHistory {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<HistoryEntry>> {
        // Every critical section is one push, pop or clone: the ring stays consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HistoryStore for MemoryHistory {
    async fn append(&self, entry: HistoryEntry) -> Result<(), StoreError> {
        if !fits_in_an_answer(&entry.frame) {
            return Ok(());
        }
        let mut entries = self.lock();
        entries.push_back(entry);
        let mut bytes: usize = entries.iter().map(|e| e.frame.len()).sum();
        while entries.len() > self.capacity || (bytes > MAX_POST_BYTES && entries.len() > 1) {
            if let Some(oldest) = entries.pop_front() {
                bytes -= oldest.frame.len();
            }
        }
        Ok(())
    }

    async fn newest(&self, limit: usize, now_ms: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        let entries = self.lock();
        Ok(entries
            .iter()
            .rev()
            .filter(|e| e.expires_at_ms > now_ms)
            .take(limit)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        ChatFrame::Message {
            from: "ada".into(),
            message: text.into(),
            sent_at: "2026-11-25T08:00:00.000Z".into(),
            channel: None,
        }
        .to_json()
    }

    fn texts(frame: &ChatFrame) -> Vec<String> {
        let ChatFrame::History { messages } = frame else {
            panic!("not a history frame: {frame:?}");
        };
        messages
            .iter()
            .map(|m| match m {
                ChatFrame::Message { message, .. } => message.clone(),
                other => panic!("not a message: {other:?}"),
            })
            .collect()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn ids_sort_as_the_messages_arrived() {
        let early = HistoryEntry::new(999, "zz", message("a"), HOUR);
        let later = HistoryEntry::new(1_000, "aa", message("b"), HOUR);
        assert!(early.id < later.id, "{} < {}", early.id, later.id);
        assert_eq!(later.expires_at_ms, 1_000 + 3_600_000);
    }

    #[tokio::test]
    async fn the_ring_answers_the_newest_first_within_its_limit() {
        let history = MemoryHistory::new(2);
        for (at, text) in [(1, "one"), (2, "two"), (3, "three")] {
            let entry = HistoryEntry::new(at, "r", message(text), HOUR);
            history.append(entry).await.unwrap();
        }
        assert_eq!(history.len(), 2, "the oldest goes once the ring is full");
        let newest = history.newest(5, 10).await.unwrap();
        assert_eq!(texts(&history_frame(newest)), ["two", "three"]);
        let one = history.newest(1, 10).await.unwrap();
        assert_eq!(texts(&history_frame(one)), ["three"]);
    }

    #[tokio::test]
    async fn expired_entries_are_not_answered() {
        let history = MemoryHistory::new(10);
        history
            .append(HistoryEntry::new(0, "r", message("old"), HOUR))
            .await
            .unwrap();
        history
            .append(HistoryEntry::new(3_000_000, "r", message("new"), HOUR))
            .await
            .unwrap();
        let at_one_hour = history.newest(10, 3_600_000).await.unwrap();
        assert_eq!(texts(&history_frame(at_one_hour)), ["new"]);
    }

    #[tokio::test]
    async fn the_ring_keeps_no_more_bytes_than_one_answer_can_hold() {
        let history = MemoryHistory::new(200);
        let big = "x".repeat(40 * 1024);
        for at in 0..10 {
            let entry = HistoryEntry::new(at, "r", message(&big), HOUR);
            history.append(entry).await.unwrap();
        }
        assert_eq!(
            history.len(),
            3,
            "three 40 KiB messages fit in 128 KiB, four do not"
        );
    }

    /// One message of about 128 KB used to push every older one out of the ring, and could
    /// not be answered itself: newcomers got an empty history.
    #[tokio::test]
    async fn one_message_too_large_for_any_answer_empties_nothing() {
        let history = MemoryHistory::new(50);
        for (at, text) in [(1, "one"), (2, "two")] {
            let entry = HistoryEntry::new(at, "r", message(text), HOUR);
            history.append(entry).await.unwrap();
        }
        let huge = message(&"x".repeat(MAX_POST_BYTES - 100));
        assert!(!fits_in_an_answer(&huge));
        history
            .append(HistoryEntry::new(3, "r", huge.clone(), HOUR))
            .await
            .unwrap();
        let newest = history.newest(50, 10).await.unwrap();
        assert_eq!(texts(&history_frame(newest)), ["one", "two"]);

        // A store that kept it anyway (DynamoDB, written before this rule) is read past it.
        let newest_first = vec![
            HistoryEntry::new(3, "r", huge, HOUR),
            HistoryEntry::new(2, "r", message("two"), HOUR),
        ];
        assert_eq!(texts(&history_frame(newest_first)), ["two"]);
    }

    #[test]
    fn an_answer_never_exceeds_one_post() {
        let big = "x".repeat(50 * 1024);
        let newest_first = (0..5)
            .rev()
            .map(|at| HistoryEntry::new(at, "r", message(&format!("{at}{big}")), HOUR))
            .collect();
        let frame = history_frame(newest_first);
        assert!(frame.to_json().len() <= MAX_POST_BYTES);
        let kept: Vec<String> = texts(&frame).iter().map(|t| t[..1].to_owned()).collect();
        assert_eq!(kept, ["3", "4"], "the newest that fit, oldest first");
    }
}
