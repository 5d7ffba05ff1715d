//! Subscriptions in DynamoDB. A connection's row in the connection table holds the set of its
//! channels (so the limit per connection is one conditional UpdateItem, and `$disconnect`
//! learns them from the row it deletes); the channel table holds one row per subscriber, its
//! partition `{channel}#{shard}`, so that a channel is read with one Query per shard.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use futures::future::{join_all, try_join_all};

use super::dynamodb_store::{DynamoDbStore, failed, recipient};
use super::listing_cache::Listing;
use crate::channels::Subscription;
use crate::contract::channel_table::{self, CONNECTION, DISPLAY_NAME, EXPIRES_AT, PARTITION};
use crate::contract::expires_at_seconds;
use crate::contract::table::{CHANNELS, CONNECTED_AT, DISPLAY_NAME as NAME, KEY as ID};
use crate::store::{Recipient, Recipients, StoreError};

type Row = HashMap<String, AttributeValue>;

impl DynamoDbStore {
    fn channel_table(&self, operation: &'static str) -> Result<&str, StoreError> {
        self.channel_table
            .as_deref()
            .ok_or_else(|| StoreError::new(operation, "the room has no channel table"))
    }

    /// Adds the channel to the connection's set unless the set is full, then writes the
    /// subscriber's row. The row is written even for a channel already held, which mends a
    /// subscribe that stopped between the two writes.
    pub(super) async fn subscribe_to(
        &self,
        connection_id: &str,
        channel: &str,
        most: usize,
    ) -> Result<Subscription, StoreError> {
        let channel_table = self.channel_table("subscribe")?;
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(connection_id.to_owned()))
            .update_expression("ADD #channels :channel")
            .condition_expression(
                "attribute_exists(#id) AND (attribute_not_exists(#channels) OR size(#channels) < :most OR contains(#channels, :name))",
            )
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#channels", CHANNELS)
            .expression_attribute_values(":channel", AttributeValue::Ss(vec![channel.to_owned()]))
            .expression_attribute_values(":name", AttributeValue::S(channel.to_owned()))
            .expression_attribute_values(":most", AttributeValue::N(most.to_string()))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old_row = match updated {
            Ok(updated) => updated.attributes.unwrap_or_default(),
            Err(error) => {
                let refused = error
                    .as_service_error()
                    .and_then(|e| match e {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(refused) => Some(refused),
                        _ => None,
                    });
                return match refused {
                    // The row it found, if any: full, or no row at all.
                    Some(refused) if refused.item.as_ref().is_some_and(|row| !row.is_empty()) => {
                        Ok(Subscription::TooMany)
                    }
                    Some(_) => Ok(Subscription::NotConnected),
                    None => Err(failed("subscribe", error)),
                };
            }
        };
        let already = matches!(old_row.get(CHANNELS), Some(AttributeValue::Ss(held)) if held.iter().any(|c| c == channel));
        let mut row = Row::from([
            (
                PARTITION.to_owned(),
                AttributeValue::S(channel_table::partition(channel, connection_id)),
            ),
            (
                CONNECTION.to_owned(),
                AttributeValue::S(connection_id.to_owned()),
            ),
        ]);
        if let Some(AttributeValue::N(connected_at)) = old_row.get(CONNECTED_AT)
            && let Ok(connected_at_ms) = connected_at.parse::<i64>()
        {
            let expires_at = expires_at_seconds(connected_at_ms);
            row.insert(
                EXPIRES_AT.to_owned(),
                AttributeValue::N(expires_at.to_string()),
            );
        }
        if let Some(name @ AttributeValue::S(_)) = old_row.get(NAME) {
            row.insert(DISPLAY_NAME.to_owned(), name.clone());
        }
        self.client
            .put_item()
            .table_name(channel_table)
            .set_item(Some(row))
            .send()
            .await
            .map_err(|e| failed("subscribe", e))?;
        if !already {
            self.bump(Listing::Channel(channel), "subscribe").await?;
        }
        Ok(if already {
            Subscription::AlreadySubscribed
        } else {
            Subscription::Subscribed
        })
    }

    pub(super) async fn unsubscribe_from(
        &self,
        connection_id: &str,
        channel: &str,
    ) -> Result<bool, StoreError> {
        let channel_table = self.channel_table("unsubscribe")?;
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(connection_id.to_owned()))
            .update_expression("DELETE #channels :channel")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#channels", CHANNELS)
            .expression_attribute_values(":channel", AttributeValue::Ss(vec![channel.to_owned()]))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        let held = match updated {
            Ok(updated) => matches!(
                updated.attributes.as_ref().and_then(|row| row.get(CHANNELS)),
                Some(AttributeValue::Ss(held)) if held.iter().any(|c| c == channel)
            ),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                false
            }
            Err(error) => return Err(failed("unsubscribe", error)),
        };
        self.delete_subscription(channel_table, channel, connection_id)
            .await?;
        if held {
            self.bump(Listing::Channel(channel), "unsubscribe").await?;
        }
        Ok(held)
    }

    /// Deletes the subscriber rows of every channel the deleted connection row held.
    pub(super) async fn leave_channels(
        &self,
        connection_id: &str,
        old_row: &Row,
    ) -> Result<(), StoreError> {
        let (Some(channel_table), Some(AttributeValue::Ss(channels))) =
            (self.channel_table.as_deref(), old_row.get(CHANNELS))
        else {
            return Ok(());
        };
        // At most the room's channels per connection (100 at the most): one round of deletes.
        let deletes = channels.iter().map(|channel| async move {
            self.delete_subscription(channel_table, channel, connection_id)
                .await?;
            self.bump(Listing::Channel(channel), "remove").await
        });
        join_all(deletes).await.into_iter().collect()
    }

    async fn delete_subscription(
        &self,
        channel_table: &str,
        channel: &str,
        connection_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(channel_table)
            .key(
                PARTITION,
                AttributeValue::S(channel_table::partition(channel, connection_id)),
            )
            .key(CONNECTION, AttributeValue::S(connection_id.to_owned()))
            .send()
            .await
            .map_err(|e| failed("unsubscribe", e))?;
        Ok(())
    }

    /// Every subscriber: the listing this function holds when the channel's version has not
    /// moved, else one paged, strongly consistent Query per shard, the shards read at once.
    pub(super) async fn subscribers_of(&self, channel: &str) -> Result<Recipients, StoreError> {
        let channel_table = self.channel_table("list a channel")?;
        let version = self
            .version(Listing::Channel(channel), "list a channel")
            .await?;
        if let Some(kept) = self.listings.at(Listing::Channel(channel), version) {
            return Ok(kept);
        }
        let shards = (0..channel_table::SHARDS)
            .map(|shard| self.query_shard(channel_table, format!("{channel}#{shard}")));
        let pages = try_join_all(shards).await?;
        let listing: Recipients = pages.into_iter().flatten().collect();
        self.listings
            .keep(Listing::Channel(channel), version, &listing);
        Ok(listing)
    }

    async fn query_shard(
        &self,
        channel_table: &str,
        partition: String,
    ) -> Result<Vec<Recipient>, StoreError> {
        let mut subscribers = Vec::new();
        let mut start_key = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(channel_table)
                .key_condition_expression("#partition = :partition")
                .projection_expression("#id, #name")
                .expression_attribute_names("#partition", PARTITION)
                .expression_attribute_names("#id", CONNECTION)
                .expression_attribute_names("#name", DISPLAY_NAME)
                .expression_attribute_values(":partition", AttributeValue::S(partition.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| failed("list a channel", e))?;
            subscribers.extend(page.items().iter().filter_map(recipient));
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(subscribers),
            }
        }
    }
}
