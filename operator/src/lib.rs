//! chatroom-operator: turns `ChatRoom` resources into real-time WebSocket chat rooms, on AWS or
//! on the embedded local gateway.

pub mod cli;
pub mod crd;
pub mod files;
pub mod gateway;
pub mod local_command;
pub mod providers;
pub mod status;
pub mod telemetry;
pub mod validate;
