//! chatroom-operator: turns `ChatRoom` resources into real-time WebSocket chat rooms, on AWS or
//! on the embedded local gateway.
//!
//! The binary calls [`commands::run`]. What else is public is what the tests drive: the API
//! types, the controller's reconcile, the providers and the gateway.

pub mod cli;
pub mod commands;
pub mod controller;
pub mod crd;
mod election;
pub mod files;
pub mod gateway;
pub mod providers;
pub mod reconcile;
pub mod report;
pub mod secrets;
pub mod status;
mod telemetry;
mod token_bucket;
pub mod validate;
