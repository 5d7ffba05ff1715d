//! Channels: a room's connections subscribe to named channels, and a message sent to a
//! channel goes only to its subscribers. One message then costs one post per subscriber, not
//! one per connection of the room — what keeps a room of 100,000 within API Gateway's
//! account-wide 10,000 posts a second.

use serde::Deserialize;

/// The longest channel name, in bytes (names are ASCII).
pub const MAX_CHANNEL_NAME_BYTES: usize = 64;

/// The characters a channel name may hold. No `#`: the DynamoDB store joins names and shards
/// with it.
pub const CHANNEL_NAME_PATTERN: &str = r"^[A-Za-z0-9_.:-]{1,64}$";

/// The default and the most channels one connection may be subscribed to at once: each
/// subscription is a row, and a connection's `$disconnect` deletes every one of them.
pub const DEFAULT_CHANNELS_PER_CONNECTION: usize = 10;
pub const MAX_CHANNELS_PER_CONNECTION: usize = 100;

/// What a room with channels allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSettings {
    pub max_per_connection: usize,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            max_per_connection: DEFAULT_CHANNELS_PER_CONNECTION,
        }
    }
}

/// The body of `subscribe` and `unsubscribe`; the route selection key sits beside it.
#[derive(Debug, Deserialize)]
pub struct ChannelRequest {
    pub channel: String,
}

/// What became of a `subscribe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    Subscribed,
    /// Subscribing again changes nothing.
    AlreadySubscribed,
    /// The connection holds as many channels as it may.
    TooMany,
    /// The store has no such connection (it left, or a broadcast found it gone).
    NotConnected,
}

/// Why a channel name is refused, said so that a client can fix it; `None` when it is fine.
pub fn channel_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_CHANNEL_NAME_BYTES {
        return Some(format!(
            "A channel name is 1 to {MAX_CHANNEL_NAME_BYTES} characters; this one has {}.",
            name.chars().count()
        ));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
    if !name.bytes().all(allowed) {
        return Some(
            "A channel name may hold only letters A-Z and a-z, digits and _ . : -".to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        assert_eq!(channel_name_problem("orders:42"), None);
        assert_eq!(channel_name_problem(&"a".repeat(64)), None);
        assert!(channel_name_problem("").is_some());
        assert!(
            channel_name_problem(&"a".repeat(65))
                .unwrap()
                .contains("65")
        );
        for bad in ["a#b", "a b", "é", "a/b", "a\u{0}"] {
            assert!(channel_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
