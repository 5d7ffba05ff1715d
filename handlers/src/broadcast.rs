use bytes::Bytes;
use futures::{StreamExt, stream};

use crate::sender::{SendError, Sender};
use crate::store::{Connection, ConnectionStore};

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
    recipients: &[Connection],
    payload: Bytes,
    concurrency: usize,
) -> BroadcastReport
where
    S: ConnectionStore,
    T: Sender,
{
    let outcomes = stream::iter(recipients)
        .map(|recipient| {
            let payload = payload.clone();
            async move { (recipient, sender.post(&recipient.id, payload).await) }
        })
        .buffer_unordered(concurrency.max(1));

    let mut report = outcomes
        .fold(BroadcastReport::default(), |mut report, (recipient, outcome)| async move {
            match outcome {
                Ok(()) => report.delivered += 1,
                Err(SendError::Gone) => report.gone.push(recipient.id.clone()),
                Err(SendError::Failed(reason)) => {
                    tracing::warn!(connection_id = %recipient.id, %reason, "post to connection failed");
                    report.failed.push(recipient.id.clone());
                }
            }
            report
        })
        .await;

    let removals = stream::iter(&report.gone)
        .map(|id| async move { (id, store.remove(id).await) })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for (id, removal) in removals {
        if let Err(error) = removal {
            // The row stays; the next broadcast meets the same 410 and tries again.
            tracing::warn!(connection_id = %id, %error, "could not remove a gone connection");
        }
    }
    report.gone.sort();
    report.failed.sort();
    report
}
