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
        /// The channel it was sent to; absent for a message to the whole room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    /// The answer to `subscribe`: messages to the channel now reach this connection.
    Subscribed {
        channel: String,
    },
    /// The answer to `unsubscribe`.
    Unsubscribed {
        channel: String,
    },
    /// Someone joined or left; sent to everyone else in the room.
    Presence {
        event: PresenceEvent,
        name: String,
        at: String,
    },
    /// The answer to `who`: every connection's name, as many as fit in one post; `more` counts
    /// those left out (absent when none were).
    Who {
        online: Vec<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        more: usize,
    },
    /// The answer to `history`: the room's last messages, oldest first, as they were sent.
    History {
        messages: Vec<ChatFrame>,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PresenceEvent {
    Join,
    Leave,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ChatFrame {
    pub fn to_json(&self) -> String {
        // A frame holds only strings and lists of them, which always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The part of a message-route body the chat reads; the route selection key sits beside it.
#[derive(Debug, Deserialize)]
pub struct Inbound {
    pub message: String,
    /// Send only to this channel's subscribers (the sender must be one).
    #[serde(default)]
    pub channel: Option<String>,
}
