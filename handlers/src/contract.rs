//! What the operator and the room function agree on, written once: the environment the operator
//! gives the function, the connection table's attribute names and TTL, and the frames clients
//! receive. The operator builds the function and its table from these constants; the Lambda
//! shell reads them. No feature gate: the operator depends on this crate without `aws`.

use std::time::Duration;

pub use crate::frames::{ChatFrame, Inbound};

/// Environment variables of the room function.
pub mod env {
    /// The items of a list variable (`AUTH_AUDIENCES`, `BACKEND_ROUTES`, …): written joined
    /// by commas, read back trimmed, empty items dropped.
    pub fn list_items(raw: &str) -> Vec<String> {
        raw.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The room's connection table (required).
    pub const TABLE_NAME: &str = "TABLE_NAME";
    /// The custom route that broadcasts (default `onMessage`).
    pub const MESSAGE_ROUTE: &str = "MESSAGE_ROUTE";
    /// The API's route selection expression, to tell clients what a message looks like.
    pub const ROUTE_SELECTION_EXPRESSION: &str = "ROUTE_SELECTION_EXPRESSION";
    /// The `@connections` endpoint when it is not `https://{domainName}/{stage}` (custom
    /// domains, local testing).
    pub const CALLBACK_URL: &str = "CALLBACK_URL";
    /// Most posts in flight during one broadcast (1–1000, default 64).
    pub const BROADCAST_CONCURRENCY: &str = "BROADCAST_CONCURRENCY";
    /// The room's history table; unset, the room keeps no history.
    pub const HISTORY_TABLE: &str = "HISTORY_TABLE";
    /// The most messages a `history` answer holds (1–200; required with `HISTORY_TABLE`).
    pub const HISTORY_MESSAGES: &str = "HISTORY_MESSAGES";
    /// How long a message stays in the history, in seconds (required with `HISTORY_TABLE`).
    pub const HISTORY_RETENTION_SECONDS: &str = "HISTORY_RETENTION_SECONDS";
    /// `namespace/name` of the room: the history table's partition key.
    pub const ROOM: &str = "ROOM";
    /// The JWT issuer a room with auth trusts; unset, the room has no auth and the function
    /// answers no authorizer events.
    pub const AUTH_ISSUER: &str = "AUTH_ISSUER";
    /// The audiences a token may be for, comma-separated (required with `AUTH_ISSUER`).
    pub const AUTH_AUDIENCES: &str = "AUTH_AUDIENCES";
    /// Where the issuer's signing keys are (required with `AUTH_ISSUER`).
    pub const AUTH_JWKS_URI: &str = "AUTH_JWKS_URI";
    /// `querystring.<name>` (default `querystring.token`) or `header.<name>`.
    pub const AUTH_IDENTITY_SOURCE: &str = "AUTH_IDENTITY_SOURCE";
    /// The claim that names the sender (default `name`, else `sub`).
    pub const AUTH_NAME_CLAIM: &str = "AUTH_NAME_CLAIM";
    /// The room's channel table; unset, the room has no channels.
    pub const CHANNEL_TABLE: &str = "CHANNEL_TABLE";
    /// The most channels a connection may hold (1–100; default 10), with `CHANNEL_TABLE`.
    pub const CHANNELS_PER_CONNECTION: &str = "CHANNELS_PER_CONNECTION";
    /// The most `@connections` posts a second one broadcast of the room makes, across every
    /// invocation posting a page of it (default 5,000, half an account's default rate).
    pub const FANOUT_POSTS_PER_SECOND: &str = "FANOUT_POSTS_PER_SECOND";
    /// The room's own backend (`spec.backend.url`); unset, the room has none.
    pub const BACKEND_URL: &str = "BACKEND_URL";
    /// The custom routes whose messages go to the backend, comma-separated.
    pub const BACKEND_ROUTES: &str = "BACKEND_ROUTES";
    /// `connect`, `disconnect` or both, comma-separated: the arrivals and departures it hears of.
    pub const BACKEND_EVENTS: &str = "BACKEND_EVENTS";
    /// The key every request to the backend is signed with; unset, requests go unsigned
    /// (a loopback backend only).
    pub const BACKEND_SECRET: &str = "BACKEND_SECRET";
    /// How long the backend has to answer, in whole seconds (default 5).
    pub const BACKEND_TIMEOUT_SECONDS: &str = "BACKEND_TIMEOUT_SECONDS";
}

/// What the room's authorizer puts in its context, which API Gateway hands every event of an
/// allowed connection as `requestContext.authorizer`.
pub mod authorizer_context {
    /// The display name from the token's name claim.
    pub const NAME: &str = "name";
    /// The token's subject.
    pub const SUB: &str = "sub";
}

/// Routes every room has besides the message route; a message route may not take their names.
pub mod routes {
    /// `{"action":"who"}`: the sender is told every connection's name.
    pub const WHO: &str = "who";
    /// `{"action":"history"}`: the sender gets the room's last messages (rooms with history).
    pub const HISTORY: &str = "history";
    /// `{"action":"subscribe","channel":"c"}` (rooms with channels).
    pub const SUBSCRIBE: &str = "subscribe";
    /// `{"action":"unsubscribe","channel":"c"}` (rooms with channels).
    pub const UNSUBSCRIBE: &str = "unsubscribe";
}

/// The history table: one row per message broadcast, newest read first.
pub mod history_table {
    /// Partition key (string): the room, `namespace/name`.
    pub const ROOM: &str = "room";
    /// Sort key (string): time-ordered, see `HistoryEntry::new`.
    pub const MESSAGE_ID: &str = "messageId";
    /// The message frame as broadcast (string, JSON).
    pub const FRAME: &str = "frame";
    /// The table's TTL attribute, epoch seconds (number), from the room's retention.
    pub const EXPIRES_AT: &str = "expiresAt";
}

/// The connection table: one row per open connection.
pub mod table {
    /// Partition key (string): API Gateway's connection id.
    pub const KEY: &str = "connectionId";
    /// The display name given at `$connect`, if any (string).
    pub const DISPLAY_NAME: &str = "displayName";
    /// `requestContext.connectedAt`, epoch milliseconds (number).
    pub const CONNECTED_AT: &str = "connectedAt";
    /// The table's TTL attribute, epoch seconds (number): DynamoDB deletes rows whose
    /// `$disconnect` never came.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// The channels the connection is subscribed to (string set), in a room with channels.
    pub const CHANNELS: &str = "channels";
    /// The key of the row whose `version` (number) every arrival and departure bumps, so that a
    /// function can tell whether the listing it holds is still the room. No connection id has
    /// a `#`; listings skip every row whose key starts with one.
    pub const VERSION_ROW: &str = "#version";
    pub const VERSION: &str = "version";
    /// `#fanout#{slot}`: which parts of a recent large broadcast were posted, so that a part
    /// Lambda delivers twice is posted once (`aws/fanout_marks.rs`).
    pub const FANOUT_ROW_PREFIX: &str = "#fanout#";
    /// The fan-out row's set of handled parts (`{page}@{offset}`, strings).
    pub const HANDLED: &str = "handled";
}

/// Past this many recipients a broadcast is handed, a page of at most this many to each, to
/// asynchronous invocations of the room's own function; up to it, the invocation that got the
/// message posts it. A page's ids fit well inside Lambda's 1 MB asynchronous payload beside a
/// 128 KB message.
pub const FANOUT_PAGE_RECIPIENTS: usize = 1_000;

/// The room's posting budget unless `spec.fanout.postsPerSecond` says otherwise: half the
/// account's default 10,000 requests a second, which every API of the account shares.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html>
pub const DEFAULT_FANOUT_POSTS_PER_SECOND: u32 = 5_000;

/// The channel table: one row per subscription, a channel's rows spread over
/// [`CHANNEL_SHARDS`](channel_table::SHARDS) partitions.
pub mod channel_table {
    /// Partition key (string): `{channel}#{shard}`, the shard from the connection id.
    pub const PARTITION: &str = "channelShard";
    /// Sort key (string): the subscriber's connection id, named as in the connection table.
    pub const CONNECTION: &str = super::table::KEY;
    /// The subscriber's display name, if any (string), so that a channel's listing is one read.
    pub const DISPLAY_NAME: &str = super::table::DISPLAY_NAME;
    /// As the connection table's: a subscription whose `$disconnect` was lost expires with it.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// Partitions per channel. DynamoDB serves one partition at most 3,000 reads and 1,000
    /// writes a second; eight of them let a channel take 8,000 subscriptions a second and be read
    /// with eight Queries in parallel.
    pub const SHARDS: u32 = 8;

    /// The partition of the channel's version row (`{channel}#version`, sort key `#`): no shard
    /// number is `version`.
    pub fn version_partition(channel: &str) -> String {
        format!("{channel}#version")
    }

    /// The partition a connection's subscription to `channel` lives in.
    pub fn partition(channel: &str, connection_id: &str) -> String {
        let hash = connection_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        format!("{channel}#{}", hash % SHARDS)
    }
}

/// API Gateway closes every WebSocket connection after two hours.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table>
pub const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);

/// Slack beyond that before a row whose `$disconnect` was lost may expire.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(15 * 60);

/// How long after `$connect` begins a connection may still be opening. API Gateway answers
/// `410 GoneException` to posts for a connection whose `$connect` has not finished, and the
/// integration may take up to its 29 s timeout; a 410 from a younger connection is no proof it
/// is gone, so its row stays.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table>
pub const CONNECT_WINDOW: Duration = Duration::from_secs(30);

/// Joins and leaves are announced only while a room has at most this many other connections:
/// each announcement is a post to every one of them, and a room this large would spend more
/// on arrivals than on messages. `who` still answers in rooms of any size.
pub const MAX_PRESENCE_AUDIENCE: usize = 200;

/// The most data one `PostToConnection` may carry (API Gateway: 128 KB); a chat frame larger
/// than this cannot be delivered to anyone.
pub const MAX_POST_BYTES: usize = 128 * 1024;

/// `expiresAt` for a connection made at `connected_at_ms`: no connection outlives API
/// Gateway's limit, so its row may go once the limit and a margin have passed.
pub fn expires_at_seconds(connected_at_ms: i64) -> i64 {
    let lifetime = (MAX_CONNECTION_LIFETIME + EXPIRY_MARGIN).as_secs();
    connected_at_ms.div_euclid(1000) + i64::try_from(lifetime).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_expires_two_hours_and_a_quarter_after_its_connection() {
        assert_eq!(
            expires_at_seconds(1_700_000_000_999),
            1_700_000_000 + 2 * 3600 + 15 * 60
        );
    }
}
