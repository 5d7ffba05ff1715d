//! A warm function's last listings of its room and channels, each kept under the version it
//! was read at: a message reads one version row (a GetItem) and, when nobody came, went,
//! subscribed or unsubscribed since, posts to the listing it already holds instead of reading
//! the whole table again. Bounded in bytes: a listing that would not fit is not kept.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::store::Recipients;

/// What a listing of a room costs in memory, per recipient beyond its strings: the two
/// `String`s' headers, the `Option`, and the allocator's share.
const PER_RECIPIENT_BYTES: usize = 64;

#[derive(Debug)]
pub struct ListingCache {
    most_bytes: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    room: Option<Kept>,
    channels: HashMap<String, Kept>,
    bytes: usize,
}

#[derive(Debug, Clone)]
struct Kept {
    version: i64,
    recipients: Recipients,
    bytes: usize,
}

/// Which listing: the whole room's, or one channel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing<'a> {
    Room,
    Channel(&'a str),
}

impl ListingCache {
    pub fn new(most_bytes: usize) -> Self {
        Self {
            most_bytes,
            state: Mutex::default(),
        }
    }

    /// The listing kept at exactly `version`, if any.
    pub fn at(&self, listing: Listing<'_>, version: i64) -> Option<Recipients> {
        let state = self.lock();
        let kept = match listing {
            Listing::Room => state.room.as_ref(),
            Listing::Channel(name) => state.channels.get(name),
        };
        kept.filter(|k| k.version == version)
            .map(|k| k.recipients.clone())
    }

    /// Keeps `recipients` as the listing at `version`, in place of any earlier one. At the
    /// bound every channel's listing is dropped first; a listing larger than the bound is not
    /// kept at all.
    pub fn keep(&self, listing: Listing<'_>, version: i64, recipients: &Recipients) {
        let bytes = size_of_listing(recipients);
        let mut state = self.lock();
        let replaced = match listing {
            Listing::Room => state.room.take(),
            Listing::Channel(name) => state.channels.remove(name),
        };
        state.bytes -= replaced.map_or(0, |k| k.bytes);
        if bytes > self.most_bytes {
            return;
        }
        if state.bytes + bytes > self.most_bytes {
            // Channels come and go; the room's listing is the one every room message needs.
            let freed: usize = state.channels.drain().map(|(_, k)| k.bytes).sum();
            state.bytes -= freed;
            if state.bytes + bytes > self.most_bytes {
                return;
            }
        }
        let kept = Kept {
            version,
            recipients: recipients.clone(),
            bytes,
        };
        state.bytes += bytes;
        match listing {
            Listing::Room => state.room = Some(kept),
            Listing::Channel(name) => {
                state.channels.insert(name.to_owned(), kept);
            }
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the state whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn size_of_listing(recipients: &Recipients) -> usize {
    recipients
        .iter()
        .map(|r| r.id.len() + r.display_name.as_ref().map_or(0, String::len) + PER_RECIPIENT_BYTES)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Recipient;

    fn listing(ids: &[&str]) -> Recipients {
        ids.iter().map(|id| Recipient::unnamed(*id)).collect()
    }

    #[test]
    fn a_listing_is_used_only_at_its_own_version() {
        let cache = ListingCache::new(1 << 20);
        let room = listing(&["a", "b"]);
        cache.keep(Listing::Room, 7, &room);
        assert!(cache.at(Listing::Room, 7).is_some());
        assert!(cache.at(Listing::Room, 8).is_none());
        assert!(cache.at(Listing::Channel("x"), 7).is_none());
        cache.keep(Listing::Channel("x"), 3, &listing(&["a"]));
        assert_eq!(cache.at(Listing::Channel("x"), 3).unwrap().len(), 1);
        cache.keep(Listing::Room, 8, &listing(&["a"]));
        assert_eq!(cache.at(Listing::Room, 8).unwrap().len(), 1);
        assert_eq!(cache.bytes(), 2 * (1 + PER_RECIPIENT_BYTES));
    }

    #[test]
    fn the_bound_drops_channels_for_the_room_and_keeps_nothing_too_large() {
        let one = 1 + PER_RECIPIENT_BYTES;
        let cache = ListingCache::new(3 * one);
        cache.keep(Listing::Channel("x"), 1, &listing(&["a", "b"]));
        cache.keep(Listing::Room, 1, &listing(&["a", "b"]));
        assert!(
            cache.at(Listing::Channel("x"), 1).is_none(),
            "dropped for the room"
        );
        assert!(cache.at(Listing::Room, 1).is_some());
        cache.keep(Listing::Room, 2, &listing(&["a", "b", "c", "d"]));
        assert!(cache.at(Listing::Room, 2).is_none(), "too large to keep");
        assert_eq!(cache.bytes(), 0);
    }
}
