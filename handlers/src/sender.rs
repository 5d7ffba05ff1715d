use std::future::Future;

use bytes::Bytes;

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
}
