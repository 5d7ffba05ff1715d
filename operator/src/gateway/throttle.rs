//! API Gateway's throttling, as token buckets: the account's (every request of every room),
//! a stage's (`spec.throttling`: every route of that room, `$connect` included), and the
//! account's new connections per second.
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-protect.html>
//!
//! # Guarantees
//! - A request over any of its buckets is refused before it reaches a route: a message gets
//!   API Gateway's error frame back, a handshake 429; nothing is queued, so a spammer costs
//!   the others no memory.
//!
//! # Caveats
//! - `$disconnect` is never throttled: it reports a close that already happened.

use governor::{DefaultDirectRateLimiter, RateLimiter};

use crate::token_bucket::quota;

/// One token bucket.
#[derive(Debug)]
pub struct Throttle(DefaultDirectRateLimiter);

impl Throttle {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self(RateLimiter::direct(quota(per_second, burst)))
    }

    /// Takes a token, or says there is none.
    pub fn allows(&self) -> bool {
        self.0.check().is_ok()
    }
}

/// A stage's throttling from `spec.throttling`, as API Gateway applies its default route
/// settings: burst and steady rate.
pub fn stage_throttle(burst_limit: i32, rate_limit: f64) -> Throttle {
    Throttle::new(rate_limit, u32::try_from(burst_limit).unwrap_or(1))
}

/// The buckets a request must pass: the account's, then its room's when the room has one.
pub fn allowed(account: &Throttle, room: Option<&Throttle>) -> bool {
    account.allows() && room.is_none_or(Throttle::allows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_needs_a_token_of_the_account_and_of_its_room() {
        let account = Throttle::new(0.01, 3);
        let room = stage_throttle(1, 0.01);
        assert!(allowed(&account, Some(&room)));
        assert!(!allowed(&account, Some(&room)), "the room's burst is spent");
        assert!(allowed(&account, None), "a room without throttling");
        assert!(!allowed(&account, None), "the account's burst is spent");
    }
}
