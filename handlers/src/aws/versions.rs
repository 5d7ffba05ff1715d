//! The version rows: one for the room (in its connection table) and one per channel (in its
//! channel table). Every change to who is in the room or a channel adds one to its row after
//! the change is written, so a function that reads an unchanged number knows its listing is
//! still whole.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::dynamodb_store::{DynamoDbStore, failed};
use super::listing_cache::Listing;
use crate::contract::channel_table;
use crate::contract::table::{KEY as ID, VERSION, VERSION_ROW};
use crate::store::StoreError;

/// The sort key of a channel's version row.
const CHANNEL_VERSION_SORT_KEY: &str = "#";

impl DynamoDbStore {
    fn version_key(
        &self,
        listing: Listing<'_>,
        operation: &'static str,
    ) -> Result<(&str, HashMap<String, AttributeValue>), StoreError> {
        Ok(match listing {
            Listing::Room => (
                self.table.as_str(),
                HashMap::from([(ID.to_owned(), AttributeValue::S(VERSION_ROW.to_owned()))]),
            ),
            Listing::Channel(channel) => (
                self.channel_table
                    .as_deref()
                    .ok_or_else(|| StoreError::new(operation, "the room has no channel table"))?,
                HashMap::from([
                    (
                        channel_table::PARTITION.to_owned(),
                        AttributeValue::S(channel_table::version_partition(channel)),
                    ),
                    (
                        channel_table::CONNECTION.to_owned(),
                        AttributeValue::S(CHANNEL_VERSION_SORT_KEY.to_owned()),
                    ),
                ]),
            ),
        })
    }

    /// The listing's version now (0 before its first change): a strongly consistent GetItem,
    /// so that a change written before the read is never missed. Errors name `operation`, the
    /// caller's.
    pub(super) async fn version(
        &self,
        listing: Listing<'_>,
        operation: &'static str,
    ) -> Result<i64, StoreError> {
        let (table, key) = self.version_key(listing, operation)?;
        let found = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .projection_expression("#version")
            .expression_attribute_names("#version", VERSION)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed(operation, e))?;
        Ok(match found.item.as_ref().and_then(|row| row.get(VERSION)) {
            Some(AttributeValue::N(number)) => number.parse().unwrap_or(0),
            _ => 0,
        })
    }

    /// Adds one to the listing's version, after the change it counts is written.
    pub(super) async fn bump(
        &self,
        listing: Listing<'_>,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        let (table, key) = self.version_key(listing, operation)?;
        self.client
            .update_item()
            .table_name(table)
            .set_key(Some(key))
            .update_expression("ADD #version :one")
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .send()
            .await
            .map_err(|e| failed(operation, e))?;
        Ok(())
    }
}
