//! When each room is reconciled next: exponential backoff after failures, a resync after
//! success that is spread with jitter and stretched to fit the provider's rate limit, and the
//! rule that a room converged at its current generation is not converged again before its
//! resync is due — however many watch events (its own status writes, label edits) arrive.
//!
//! # Guarantees
//! - A failing room waits 2 s, doubling per failure, up to [`MAX_BACKOFF`].
//! - A converged room is next converged after its resync (or earlier for a new generation).
//! - The fleet's steady state takes at most half of the scarcest rate limit.
//!
//! # Caveats
//! - The memory kept is one entry per room, removed when the room is deleted.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest a failing room waits before its next try.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Resyncs are spread by up to a tenth either way.
pub const RESYNC_JITTER: f64 = 0.1;

#[derive(Default)]
pub struct Schedule {
    rooms: Mutex<HashMap<String, RoomState>>,
}

#[derive(Clone, Copy, Debug)]
enum RoomState {
    Failing {
        failures: u32,
    },
    /// Converged at `generation`; not due again before `due`.
    Converged {
        generation: Option<i64>,
        due: Instant,
    },
}

impl Schedule {
    /// The next delay for a room that failed again: 2 s doubling per failure, capped.
    pub fn failed(&self, room: &str) -> Duration {
        let mut rooms = self.lock();
        let failures = match rooms.get(room) {
            Some(RoomState::Failing { failures }) => failures.saturating_add(1),
            _ => 1,
        };
        rooms.insert(room.to_owned(), RoomState::Failing { failures });
        Duration::from_secs(2u64.saturating_pow(failures.min(16))).min(MAX_BACKOFF)
    }

    /// Notes that `room` converged at `generation`; it is due again after `resync`.
    pub fn converged(&self, room: &str, generation: Option<i64>, resync: Duration) {
        let due = Instant::now() + resync;
        self.lock()
            .insert(room.to_owned(), RoomState::Converged { generation, due });
    }

    /// How long until `room` is due, if it converged at this `generation` and is not due yet.
    pub fn not_due(&self, room: &str, generation: Option<i64>) -> Option<Duration> {
        match self.lock().get(room) {
            Some(RoomState::Converged {
                generation: converged,
                due,
            }) if *converged == generation => {
                let left = due.saturating_duration_since(Instant::now());
                (!left.is_zero()).then_some(left)
            }
            _ => None,
        }
    }

    /// The room is gone.
    pub fn forget(&self, room: &str) {
        self.lock().remove(room);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoomState>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shortest resync at which a fleet whose steady state costs `fleet_cost` of the scarcest
/// rate limit uses half of it.
pub fn steady_state_floor(fleet_cost: Duration) -> Duration {
    fleet_cost.saturating_mul(2)
}

/// `resync` scaled into [1 - jitter, 1 + jitter) by `unit` in [0, 1).
pub fn spread(resync: Duration, jitter: f64, unit: f64) -> Duration {
    resync.mul_f64(1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially_up_to_a_cap_and_success_resets() {
        let schedule = Schedule::default();
        let delays: Vec<Duration> = (0..12).map(|_| schedule.failed("a")).collect();
        assert_eq!(delays[0], Duration::from_secs(2));
        assert_eq!(delays[1], Duration::from_secs(4));
        assert_eq!(delays[11], MAX_BACKOFF);
        schedule.converged("a", Some(1), Duration::from_secs(60));
        assert_eq!(schedule.failed("a"), Duration::from_secs(2));
    }

    #[test]
    fn a_converged_room_is_not_due_again_before_its_resync_unless_its_generation_moves() {
        let schedule = Schedule::default();
        assert_eq!(schedule.not_due("a", Some(1)), None, "never converged");
        schedule.converged("a", Some(1), Duration::from_secs(60));
        let left = schedule.not_due("a", Some(1)).expect("not due yet");
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        assert_eq!(
            schedule.not_due("a", Some(2)),
            None,
            "a new generation is due now"
        );
        schedule.converged("b", Some(1), Duration::ZERO);
        assert_eq!(schedule.not_due("b", Some(1)), None, "its resync has come");
        schedule.forget("a");
        assert_eq!(schedule.not_due("a", Some(1)), None);
    }

    #[test]
    fn a_large_fleet_resyncs_no_faster_than_half_the_rate_allows() {
        // 4 API Gateway requests per room at 5 per second: 0.8 s of the budget per room.
        let per_room = Duration::from_millis(800);
        assert_eq!(steady_state_floor(per_room * 40), Duration::from_secs(64));
        assert_eq!(steady_state_floor(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            Duration::from_secs(300).max(steady_state_floor(per_room * 100)),
            Duration::from_secs(300),
            "100 rooms fit the default 5 min resync"
        );
    }

    #[test]
    fn resyncs_spread_over_a_fifth_of_the_period() {
        let resync = Duration::from_secs(300);
        assert_eq!(spread(resync, RESYNC_JITTER, 0.0), Duration::from_secs(270));
        assert_eq!(spread(resync, RESYNC_JITTER, 0.5), Duration::from_secs(300));
        assert!(spread(resync, RESYNC_JITTER, 0.999_999) < Duration::from_secs(330));
        assert_eq!(spread(resync, 0.0, 0.7), resync, "no jitter, no spread");
        let drawn: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| spread(resync, RESYNC_JITTER, rand::random::<f64>()))
            .collect();
        assert!(drawn.len() > 40, "rooms get different delays");
        assert!(
            drawn
                .iter()
                .all(|d| (Duration::from_secs(270)..Duration::from_secs(330)).contains(d))
        );
    }
}
