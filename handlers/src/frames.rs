use serde::{Deserialize, Serialize};

/// What the chat sends to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ChatFrame {
    #[serde(rename_all = "camelCase")]
    Message {
        from: String,
        message: String,
        sent_at: String,
    },
    Error {
        message: String,
    },
}

impl ChatFrame {
    pub fn to_json(&self) -> String {
        // A frame holds only strings, which always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The part of a message-route body the chat reads; the route selection key sits beside it.
#[derive(Debug, Deserialize)]
pub struct Inbound {
    pub message: String,
}
