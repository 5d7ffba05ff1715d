//! Token-bucket quotas (governor) from the rates and bursts people write: requests per second
//! as a decimal, and how many may come at once.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;

/// The slowest rate a bucket keeps: one an hour. The gateway refuses to start with a slower
/// account rate; a room's `spec.throttling` slower than this is held to it.
pub const MIN_RATE_PER_SECOND: f64 = 1.0 / 3600.0;

/// A bucket that refills at `per_second` and holds `burst` tokens (at least one). Rates
/// outside one an hour and one a nanosecond are held to those.
pub fn quota(per_second: f64, burst: u32) -> Quota {
    let per_second = if per_second.is_finite() {
        per_second.clamp(MIN_RATE_PER_SECOND, 1e9)
    } else {
        1e9
    };
    let interval = Duration::from_secs_f64(1.0 / per_second).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use governor::RateLimiter;
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn a_burst_goes_through_then_the_rate_refills() {
        let clock = FakeRelativeClock::default();
        let bucket = RateLimiter::direct_with_clock(quota(2.0, 3), clock.clone());
        let allowed = (0..5).filter(|_| bucket.check().is_ok()).count();
        assert_eq!(allowed, 3, "the burst");
        clock.advance(Duration::from_millis(500));
        assert!(
            bucket.check().is_ok(),
            "one more after half a second at 2/s"
        );
        assert!(bucket.check().is_err());
    }

    #[test]
    fn extreme_rates_still_make_a_bucket() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let bucket = RateLimiter::direct(quota(rate, 1));
            assert!(bucket.check().is_ok(), "{rate}");
        }
    }
}
