use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::listing_cache::{Listing, ListingCache};
use crate::channels::Subscription;
use crate::contract::expires_at_seconds;
use crate::contract::table::{CONNECTED_AT, DISPLAY_NAME as NAME, EXPIRES_AT, KEY as ID};
use crate::store::{Connection, ConnectionStore, Recipient, Recipients, StoreError};

/// A room's connections in its DynamoDB table (partition key `connectionId`).
#[derive(Clone, Debug)]
pub struct DynamoDbStore {
    pub(super) client: Client,
    pub(super) table: String,
    page_size: Option<i32>,
    /// The room's channel table, in a room with channels.
    pub(super) channel_table: Option<String>,
    /// Listings kept between messages, shared by every clone of this store.
    pub(super) listings: Arc<ListingCache>,
}

/// The listings a store keeps unless told otherwise: a room of 100,000 is about 10 MB.
pub const DEFAULT_LISTING_CACHE_BYTES: usize = 32 * 1024 * 1024;

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            page_size: None,
            channel_table: None,
            listings: Arc::new(ListingCache::new(DEFAULT_LISTING_CACHE_BYTES)),
        }
    }

    /// Keeps at most `bytes` of listings between messages (0 keeps none).
    pub fn with_listing_cache_bytes(mut self, bytes: usize) -> Self {
        self.listings = Arc::new(ListingCache::new(bytes));
        self
    }

    /// Keeps subscriptions in `table` (see `channel_store.rs`).
    pub fn with_channel_table(mut self, table: impl Into<String>) -> Self {
        self.channel_table = Some(table.into());
        self
    }

    /// Caps the rows per Scan page (DynamoDB's own cap is 1 MB); for tests of paging.
    pub fn with_page_size(mut self, rows: i32) -> Self {
        self.page_size = Some(rows);
        self
    }
}

/// A DynamoDB call's failure, with the whole chain of causes the SDK reports.
pub(super) fn failed(
    operation: &'static str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::new(operation, DisplayErrorContext(error).to_string())
}

/// The connection a row of either table names (both call the id `connectionId` and the name
/// `displayName`); a row without an id is skipped.
pub(super) fn recipient(row: &HashMap<String, AttributeValue>) -> Option<Recipient> {
    let Some(AttributeValue::S(id)) = row.get(ID) else {
        return None;
    };
    // The room's own rows (its version), which no connection id can name.
    if id.starts_with('#') {
        return None;
    }
    let display_name = match row.get(NAME) {
        Some(AttributeValue::S(name)) => Some(name.clone()),
        _ => None,
    };
    Some(Recipient {
        id: id.clone(),
        display_name,
    })
}

impl ConnectionStore for DynamoDbStore {
    async fn put(&self, connection: Connection) -> Result<(), StoreError> {
        let expires_at = expires_at_seconds(connection.connected_at_ms);
        let mut item = HashMap::from([
            (ID.to_owned(), AttributeValue::S(connection.id)),
            (
                CONNECTED_AT.to_owned(),
                AttributeValue::N(connection.connected_at_ms.to_string()),
            ),
            (
                EXPIRES_AT.to_owned(),
                AttributeValue::N(expires_at.to_string()),
            ),
        ]);
        if let Some(name) = connection.display_name {
            item.insert(NAME.to_owned(), AttributeValue::S(name));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| failed("put", e))?;
        self.bump(Listing::Room, "put").await
    }

    /// DeleteItem returning the old row (`ReturnValues: ALL_OLD`), for its display name.
    async fn remove(&self, connection_id: &str) -> Result<Option<Recipient>, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(connection_id.to_owned()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| failed("remove", e))?;
        let old_row = deleted.attributes.filter(|row| !row.is_empty());
        if let Some(row) = &old_row {
            self.bump(Listing::Room, "remove").await?;
            self.leave_channels(connection_id, row).await?;
        }
        Ok(old_row.map(|row| Recipient {
            id: connection_id.to_owned(),
            display_name: match row.get(NAME) {
                Some(AttributeValue::S(name)) => Some(name.clone()),
                _ => None,
            },
        }))
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Recipient>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(connection_id.to_owned()))
            .projection_expression("#id, #name")
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#name", NAME)
            .send()
            .await
            .map_err(|e| failed("get", e))?;
        Ok(found
            .item
            .filter(|row| !row.is_empty())
            .map(|row| Recipient {
                id: connection_id.to_owned(),
                display_name: match row.get(NAME) {
                    Some(AttributeValue::S(name)) => Some(name.clone()),
                    _ => None,
                },
            }))
    }

    /// A conditional DeleteItem: the row goes only if `connectedAt` is older than `cutoff_ms`
    /// (or missing, as no row this store writes is: no connect window can be known for it).
    async fn remove_if_connected_before(
        &self,
        connection_id: &str,
        cutoff_ms: i64,
    ) -> Result<bool, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(connection_id.to_owned()))
            .condition_expression("attribute_not_exists(#connected) OR #connected < :cutoff")
            .expression_attribute_names("#connected", CONNECTED_AT)
            .expression_attribute_values(":cutoff", AttributeValue::N(cutoff_ms.to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match deleted {
            Ok(deleted) => {
                // Deleting a row that was already gone succeeds too: only a row this call
                // deleted changes the room.
                if let Some(row) = deleted.attributes.filter(|row| !row.is_empty()) {
                    self.bump(Listing::Room, "remove").await?;
                    self.leave_channels(connection_id, &row).await?;
                }
                Ok(true)
            }
            // Too young, or already gone: either way the row is not this broadcast's to remove.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(failed("remove", error)),
        }
    }

    /// The listing this function holds when the room's version has not moved since it was
    /// read (one GetItem); otherwise a strongly consistent scan of every page, kept for the
    /// next message.
    async fn list(&self) -> Result<Recipients, StoreError> {
        let version = self.version(Listing::Room, "list").await?;
        if let Some(kept) = self.listings.at(Listing::Room, version) {
            return Ok(kept);
        }
        let listing = self.scan(None).await?.unwrap_or_default();
        self.listings.keep(Listing::Room, version, &listing);
        Ok(listing)
    }

    /// Scans with `Limit` one past `most`: a large room costs one bounded page, not a scan of
    /// the whole table.
    async fn list_at_most(&self, most: usize) -> Result<Option<Recipients>, StoreError> {
        self.scan(Some(most)).await
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        channel: &str,
        most: usize,
    ) -> Result<Subscription, StoreError> {
        self.subscribe_to(connection_id, channel, most).await
    }

    async fn unsubscribe(&self, connection_id: &str, channel: &str) -> Result<bool, StoreError> {
        self.unsubscribe_from(connection_id, channel).await
    }

    async fn list_channel(&self, channel: &str) -> Result<Recipients, StoreError> {
        self.subscribers_of(channel).await
    }
}

impl DynamoDbStore {
    /// Every row, or (`most`) every row unless there are more than `most`: `None` then.
    async fn scan(&self, most: Option<usize>) -> Result<Option<Recipients>, StoreError> {
        let mut recipients = Vec::new();
        let mut start_key = None;
        loop {
            // One past the most wanted tells a room that is too large without reading it.
            let wanted = most
                .map(|m| i32::try_from(m.saturating_sub(recipients.len()) + 1).unwrap_or(i32::MAX));
            let limit = match (wanted, self.page_size) {
                (Some(w), Some(p)) => Some(w.min(p)),
                (w, p) => w.or(p),
            };
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#id, #name")
                .expression_attribute_names("#id", ID)
                .expression_attribute_names("#name", NAME)
                // A listing read after a version must hold every change that version counts.
                .consistent_read(true)
                .set_limit(limit)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| failed("list", e))?;
            recipients.extend(page.items().iter().filter_map(recipient));
            if most.is_some_and(|m| recipients.len() > m) {
                return Ok(None);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(Some(recipients.into())),
            }
        }
    }
}
