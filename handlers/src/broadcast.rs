use bytes::Bytes;
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;

use crate::sender::{SendError, Sender};
use crate::store::{ConnectionStore, Recipient, StoreError};

/// What happened to one broadcast; the broadcast itself never fails.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BroadcastReport {
    pub delivered: usize,
    /// Connections that answered 410 Gone and were removed from the store.
    pub gone: Vec<String>,
    /// Connections whose post failed for another reason; they stay in the store.
    pub failed: Vec<String>,
}

/// Posts `payload` to every recipient with at most `concurrency` posts in flight, then removes
/// exactly the connections that answered Gone. Returns only when every post has finished.
pub async fn broadcast<S, T>(
    store: &S,
    sender: &T,
    recipients: &[Recipient],
    payload: Bytes,
    concurrency: usize,
) -> BroadcastReport
where
    S: ConnectionStore,
    T: Sender,
{
    let concurrency = concurrency.max(1);
    let mut report = BroadcastReport::default();
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
        match outcome {
            Ok(()) => report.delivered += 1,
            Err(SendError::Gone) => report.gone.push(recipient.id.clone()),
            Err(SendError::Failed(reason)) => {
                tracing::warn!(connection_id = %recipient.id, %reason, "post to connection failed");
                report.failed.push(recipient.id.clone());
            }
        }
    }

    for batch in report.gone.chunks(concurrency) {
        for (id, removal) in join_all(batch.iter().map(|id| remove(store, id))).await {
            if let Err(error) = removal {
                // The row stays; the next broadcast meets the same 410 and tries again.
                tracing::warn!(connection_id = %id, %error, "could not remove a gone connection");
            }
        }
    }
    report.gone.sort();
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
) -> (&'a str, Result<(), StoreError>) {
    (id, store.remove(id).await)
}
