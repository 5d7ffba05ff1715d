//! Where rooms run. Each provider turns a validated ChatRoom into running infrastructure and
//! reports what it made as the room's status.

pub mod aws;
pub mod local;
