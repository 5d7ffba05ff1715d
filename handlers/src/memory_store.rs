use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::store::{Connection, ConnectionStore, Recipient, StoreError};

/// The in-process stand-in for a room's DynamoDB table.
#[derive(Debug, Default)]
pub struct MemoryStore {
    connections: Mutex<HashMap<String, Connection>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
        // The map stays consistent even if a holder panicked: every critical section is a
        // single insert, remove or clone.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConnectionStore for MemoryStore {
    async fn put(&self, connection: Connection) -> Result<(), StoreError> {
        self.lock().insert(connection.id.clone(), connection);
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<Recipient>, StoreError> {
        Ok(self.lock().remove(connection_id).map(|c| Recipient {
            id: c.id,
            display_name: c.display_name,
        }))
    }

    async fn remove_if_connected_before(
        &self,
        connection_id: &str,
        cutoff_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut connections = self.lock();
        let settled = connections
            .get(connection_id)
            .is_some_and(|c| c.connected_at_ms < cutoff_ms);
        if settled {
            connections.remove(connection_id);
        }
        Ok(settled)
    }

    async fn list(&self) -> Result<Vec<Recipient>, StoreError> {
        let connections = self.lock();
        Ok(connections
            .values()
            .map(|c| Recipient {
                id: c.id.clone(),
                display_name: c.display_name.clone(),
            })
            .collect())
    }
}
