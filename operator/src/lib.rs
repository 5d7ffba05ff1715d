//! chatroom-operator: turns `ChatRoom` resources into real-time WebSocket chat rooms, on AWS or
//! on the embedded local gateway.

pub mod cli;
pub mod controller;
pub mod crd;
pub mod election;
pub mod files;
pub mod gateway;
pub mod local_command;
pub mod one_shot;
pub mod providers;
pub mod reconcile;
pub mod run_command;
pub mod status;
pub mod telemetry;
pub mod validate;
