//! The chat logic of a chatroom-operator room, written once.
//!
//! Two shells run it: the Lambda `bootstrap` (DynamoDB + API Gateway Management API) and the
//! operator's embedded local gateway (an in-process store and sender). Both hand
//! [`Chat::handle`] the same `aws_lambda_events` API Gateway WebSocket event and get back the
//! same proxy response, so the behaviour a developer sees locally is the behaviour on AWS.

mod broadcast;
mod chat;
pub mod contract;
mod frames;
mod memory_store;
mod route_selection;
mod sender;
mod store;

pub use broadcast::{BroadcastReport, Fanout, broadcast};
pub use chat::{Chat, ChatConfig, ChatError, DISPLAY_NAME_MAX_CHARS};
pub use frames::{ChatFrame, Inbound};
pub use memory_store::MemoryStore;
pub use route_selection::{InvalidExpression, RouteSelectionExpression, sorted_keys};
pub use sender::{SendError, Sender};
pub use store::{Connection, ConnectionStore, Recipient, StoreError};

/// Re-exported so that shells build events and responses with the exact types this crate reads.
pub use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

#[cfg(feature = "aws")]
pub mod aws;
