//! The chat logic of a chatroom-operator room, written once.
//!
//! Two shells run it: the Lambda `bootstrap` (DynamoDB + API Gateway Management API) and the
//! operator's embedded local gateway (an in-process store and sender). Both hand
//! [`Chat::handle`] the same `aws_lambda_events` API Gateway WebSocket event and get back the
//! same proxy response, so the behaviour a developer sees locally is the behaviour on AWS.

pub mod auth;
pub mod backend;
mod broadcast;
pub mod channels;
mod chat;
pub mod contract;
mod display_name;
pub mod fnv;
mod frames;
mod history;
#[cfg(any(feature = "auth", feature = "backend"))]
mod https_client;
mod memory_store;
mod route_selection;
mod sender;
mod store;

pub use broadcast::{BroadcastReport, Fanout, broadcast};
pub use chat::{Chat, ChatConfig, ChatError};
pub use display_name::{DISPLAY_NAME_MAX_CHARS, display_name};
pub use frames::{ChatFrame, Inbound, PresenceEvent};
pub use history::{
    HistoryEntry, HistorySettings, HistoryStore, MAX_HISTORY_MESSAGES, MemoryHistory, history_frame,
};
pub use memory_store::MemoryStore;
pub use route_selection::{InvalidExpression, RouteSelectionExpression, sorted_keys};
pub use sender::{HandOff, SendError, Sender};
pub use store::{Connection, ConnectionStore, Recipient, Recipients, StoreError, anonymous_label};

/// Re-exported so that shells build events and responses with the exact types this crate reads.
pub use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

#[cfg(feature = "aws")]
pub mod aws;
