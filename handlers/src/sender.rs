use std::future::Future;

use bytes::Bytes;

use crate::store::Recipient;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection no longer exists (API Gateway answers `410 GoneException`).
    #[error("connection is gone")]
    Gone,
    #[error("could not post to the connection: {0}")]
    Failed(String),
}

/// Posts data to one connection, as the API Gateway Management API's `PostToConnection` does.
pub trait Sender: Send + Sync {
    fn post(
        &self,
        connection_id: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Posts to every recipient at once, when that needs no waiting (the local gateway queues
    /// in memory): the outcome for each, in order. `None` — the default, and what a sender
    /// over the network answers — has each post go out on its own, a bounded number at once.
    fn post_now(
        &self,
        _recipients: &[Recipient],
        _payload: &Bytes,
    ) -> Option<Vec<Result<(), SendError>>> {
        None
    }
}
