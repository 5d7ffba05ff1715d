//! chatroom-operator: turns `ChatRoom` resources into real-time WebSocket chat rooms, on AWS or
//! on the embedded local gateway.

pub mod crd;
pub mod files;
pub mod validate;
