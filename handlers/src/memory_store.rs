use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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
}

impl State {
    fn changed(&mut self) {
        self.listing = None;
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
        let mut state = self.lock();
        let removed = state.connections.remove(connection_id);
        if removed.is_some() {
            state.changed();
        }
        Ok(removed.map(|c| Recipient {
            id: c.id,
            display_name: c.display_name,
        }))
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
            state.connections.remove(connection_id);
            state.changed();
        }
        Ok(settled)
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
}
