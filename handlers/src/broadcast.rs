use bytes::Bytes;
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;

use crate::contract::CONNECT_WINDOW;
use crate::sender::{SendError, Sender};
use crate::store::{ConnectionStore, Recipient, StoreError};

/// What one broadcast may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// Most posts in flight at once.
    pub concurrency: usize,
    /// A connection that answers 410 is removed only if it was made before this instant
    /// (epoch milliseconds): a younger one may still be inside its `$connect`.
    pub settled_before_ms: i64,
    /// Names the message for whoever posts a page of it elsewhere, so that a page delivered
    /// twice is posted once (0: not named).
    pub message: u64,
}

impl Fanout {
    /// A broadcast at `now_ms`: connections older than the connect window count as settled.
    pub fn at(now_ms: i64, concurrency: usize) -> Self {
        let window = i64::try_from(CONNECT_WINDOW.as_millis()).unwrap_or(i64::MAX);
        Self {
            concurrency,
            settled_before_ms: now_ms.saturating_sub(window),
            message: 0,
        }
    }

    /// The same broadcast, named by the id API Gateway gave its request.
    pub fn for_request(mut self, request_id: &str) -> Self {
        self.message = crate::fnv::fnv1a(request_id);
        self
    }
}

/// What happened to one broadcast; the broadcast itself never fails.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BroadcastReport {
    pub delivered: usize,
    /// Connections that answered 410 Gone and were removed from the store.
    pub gone: Vec<String>,
    /// Connections that answered 410 inside their connect window; they stay in the store.
    pub connecting: Vec<String>,
    /// Connections whose post failed for another reason; they stay in the store.
    pub failed: Vec<String>,
    /// Pages of recipients handed to other posters, who report on their own.
    pub handed_off: usize,
}

/// Posts `payload` to every recipient with at most `fanout.concurrency` posts in flight, then
/// removes exactly the settled connections that answered Gone. Returns only when every post
/// has finished.
pub async fn broadcast<S, T>(
    store: &S,
    sender: &T,
    recipients: &[Recipient],
    payload: Bytes,
    fanout: Fanout,
) -> BroadcastReport
where
    S: ConnectionStore,
    T: Sender,
{
    let concurrency = fanout.concurrency.max(1);
    let mut report = BroadcastReport::default();
    let mut answered_gone = Vec::new();
    let mut record = |recipient: &Recipient, outcome: Result<(), SendError>| match outcome {
        Ok(()) => report.delivered += 1,
        Err(SendError::Gone) => answered_gone.push(recipient.id.clone()),
        Err(SendError::Failed(reason)) => {
            tracing::warn!(connection_id = %recipient.id, %reason, "post to connection failed");
            report.failed.push(recipient.id.clone());
        }
    };
    let handed = sender.hand_off(recipients, &payload, &fanout).await;
    let recipients = match &handed {
        Some(handed) => {
            report.handed_off = handed.pages;
            &handed.left[..]
        }
        None => recipients,
    };
    if let Some(outcomes) = sender.post_now(recipients, &payload) {
        for (recipient, outcome) in recipients.iter().zip(outcomes) {
            record(recipient, outcome);
        }
    } else {
        let mut waiting = recipients.iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < concurrency {
                let Some(recipient) = waiting.next() else {
                    break;
                };
                in_flight.push(post(sender, recipient, payload.clone()));
            }
            let Some((recipient, outcome)) = in_flight.next().await else {
                break;
            };
            record(recipient, outcome);
        }
    }

    for batch in answered_gone.chunks(concurrency) {
        let removals = batch
            .iter()
            .map(|id| remove(store, id, fanout.settled_before_ms));
        for (id, removal) in join_all(removals).await {
            match removal {
                Ok(true) => report.gone.push(id.to_owned()),
                Ok(false) => report.connecting.push(id.to_owned()),
                Err(error) => {
                    // The row stays; the next broadcast meets the same 410 and tries again.
                    tracing::warn!(connection_id = %id, %error, "could not remove a gone connection");
                    report.failed.push(id.to_owned());
                }
            }
        }
    }
    report.gone.sort();
    report.connecting.sort();
    report.failed.sort();
    report
}

async fn post<'a, T: Sender>(
    sender: &T,
    recipient: &'a Recipient,
    payload: Bytes,
) -> (&'a Recipient, Result<(), SendError>) {
    (recipient, sender.post(&recipient.id, payload).await)
}

async fn remove<'a, S: ConnectionStore>(
    store: &S,
    id: &'a str,
    cutoff_ms: i64,
) -> (&'a str, Result<bool, StoreError>) {
    (id, store.remove_if_connected_before(id, cutoff_ms).await)
}
