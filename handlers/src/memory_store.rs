use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::channels::Subscription;
use crate::store::{Connection, ConnectionStore, Recipient, Recipients, StoreError};

/// The in-process stand-in for a room's DynamoDB table.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    connections: HashMap<String, Connection>,
    /// The last listing, until a connection comes or goes: messages outnumber arrivals, and
    /// every message lists the room.
    listing: Option<Recipients>,
    /// Each connection's channels, and each channel's subscribers: a message to a channel
    /// reads only its own.
    channels_of: HashMap<String, BTreeSet<String>>,
    subscribers: HashMap<String, BTreeSet<String>>,
    /// A channel's last listing, until someone subscribes to it or leaves it.
    channel_listings: HashMap<String, Recipients>,
}

impl State {
    fn changed(&mut self) {
        self.listing = None;
    }

    fn remove_connection(&mut self, connection_id: &str) -> Option<Connection> {
        let removed = self.connections.remove(connection_id)?;
        self.changed();
        for channel in self.channels_of.remove(connection_id).unwrap_or_default() {
            self.leave(&channel, connection_id);
        }
        Some(removed)
    }

    fn leave(&mut self, channel: &str, connection_id: &str) {
        if let Some(members) = self.subscribers.get_mut(channel) {
            members.remove(connection_id);
            if members.is_empty() {
                self.subscribers.remove(channel);
            }
        }
        self.channel_listings.remove(channel);
    }

    fn recipient(&self, connection_id: &str) -> Option<Recipient> {
        self.connections.get(connection_id).map(|c| Recipient {
            id: c.id.clone(),
            display_name: c.display_name.clone(),
        })
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.lock().connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every critical section is a
        // single insert, remove or listing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConnectionStore for MemoryStore {
    async fn put(&self, connection: Connection) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.connections.insert(connection.id.clone(), connection);
        state.changed();
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<Recipient>, StoreError> {
        let removed = self.lock().remove_connection(connection_id);
        Ok(removed.map(|c| Recipient {
            id: c.id,
            display_name: c.display_name,
        }))
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Recipient>, StoreError> {
        Ok(self.lock().recipient(connection_id))
    }

    async fn remove_if_connected_before(
        &self,
        connection_id: &str,
        cutoff_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let settled = state
            .connections
            .get(connection_id)
            .is_some_and(|c| c.connected_at_ms < cutoff_ms);
        if settled {
            state.remove_connection(connection_id);
        }
        Ok(settled)
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        channel: &str,
        most: usize,
    ) -> Result<Subscription, StoreError> {
        let mut state = self.lock();
        if !state.connections.contains_key(connection_id) {
            return Ok(Subscription::NotConnected);
        }
        let held = state
            .channels_of
            .entry(connection_id.to_owned())
            .or_default();
        if held.contains(channel) {
            return Ok(Subscription::AlreadySubscribed);
        }
        if held.len() >= most {
            return Ok(Subscription::TooMany);
        }
        held.insert(channel.to_owned());
        state
            .subscribers
            .entry(channel.to_owned())
            .or_default()
            .insert(connection_id.to_owned());
        state.channel_listings.remove(channel);
        Ok(Subscription::Subscribed)
    }

    async fn unsubscribe(&self, connection_id: &str, channel: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(channels) = state.channels_of.get_mut(connection_id) else {
            return Ok(false);
        };
        let held = channels.remove(channel);
        if channels.is_empty() {
            state.channels_of.remove(connection_id);
        }
        if held {
            state.leave(channel, connection_id);
        }
        Ok(held)
    }

    async fn list_channel(&self, channel: &str) -> Result<Recipients, StoreError> {
        let mut state = self.lock();
        if let Some(listing) = state.channel_listings.get(channel) {
            return Ok(listing.clone());
        }
        let listing: Recipients = state
            .subscribers
            .get(channel)
            .into_iter()
            .flatten()
            .filter_map(|id| state.recipient(id))
            .collect();
        // Only channels someone is in are kept: a listing of nobody costs nothing to redo.
        if !listing.is_empty() {
            state
                .channel_listings
                .insert(channel.to_owned(), listing.clone());
        }
        Ok(listing)
    }

    /// Knows its size: a large room is not listed at all.
    async fn list_at_most(&self, most: usize) -> Result<Option<Recipients>, StoreError> {
        if self.len() > most {
            return Ok(None);
        }
        self.list().await.map(Some)
    }

    async fn list(&self) -> Result<Recipients, StoreError> {
        let mut state = self.lock();
        if let Some(listing) = &state.listing {
            return Ok(listing.clone());
        }
        let listing: Recipients = state
            .connections
            .values()
            .map(|c| Recipient {
                id: c.id.clone(),
                display_name: c.display_name.clone(),
            })
            .collect();
        state.listing = Some(listing.clone());
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(id: &str) -> Connection {
        Connection {
            id: id.into(),
            display_name: None,
            connected_at_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_listing_is_kept_until_a_connection_comes_or_goes() {
        let store = MemoryStore::new();
        store.put(connection("a")).await.unwrap();
        let first = store.list().await.unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &store.list().await.unwrap()));
        store.put(connection("b")).await.unwrap();
        assert_eq!(store.list().await.unwrap().len(), 2);
        store.remove("a").await.unwrap();
        assert_eq!(store.list().await.unwrap().len(), 1);
        assert!(store.remove_if_connected_before("b", 1).await.unwrap());
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_channel_holds_its_subscribers_until_they_leave_it_or_the_room() {
        let store = MemoryStore::new();
        for id in ["a", "b", "c"] {
            store.put(connection(id)).await.unwrap();
        }
        assert_eq!(
            store.subscribe("a", "x", 2).await.unwrap(),
            Subscription::Subscribed
        );
        assert_eq!(
            store.subscribe("a", "x", 2).await.unwrap(),
            Subscription::AlreadySubscribed
        );
        store.subscribe("b", "x", 2).await.unwrap();
        store.subscribe("a", "y", 2).await.unwrap();
        assert_eq!(
            store.subscribe("a", "z", 2).await.unwrap(),
            Subscription::TooMany
        );
        assert_eq!(
            store.subscribe("gone", "x", 2).await.unwrap(),
            Subscription::NotConnected
        );
        let ids = |listing: Recipients| -> Vec<String> {
            let mut ids: Vec<String> = listing.iter().map(|r| r.id.clone()).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(store.list_channel("x").await.unwrap()), ["a", "b"]);
        assert!(store.unsubscribe("b", "x").await.unwrap());
        assert!(!store.unsubscribe("b", "x").await.unwrap());
        assert_eq!(ids(store.list_channel("x").await.unwrap()), ["a"]);
        store.remove("a").await.unwrap();
        assert!(store.list_channel("x").await.unwrap().is_empty());
        assert!(store.list_channel("y").await.unwrap().is_empty());
        let state = store.lock();
        assert!(state.subscribers.is_empty() && state.channels_of.is_empty());
    }
}
