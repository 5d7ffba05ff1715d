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

    /// Hands a broadcast too large for one poster to others (the Lambda shell invokes copies
    /// of its function, each with a page of recipients), when this sender can: which
    /// recipients it could not hand off, to be posted here. `None` — the default — hands off
    /// nothing.
    fn hand_off(
        &self,
        _recipients: &[Recipient],
        _payload: &Bytes,
        _fanout: &crate::broadcast::Fanout,
    ) -> impl Future<Output = Option<HandOff>> + Send {
        async { None }
    }
}

/// What a hand-off did: how many pages others now post, and who is left to post here.
#[derive(Debug, Default)]
pub struct HandOff {
    pub pages: usize,
    pub left: Vec<Recipient>,
}
