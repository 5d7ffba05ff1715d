use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::dynamodb_store::failed;
use crate::contract::history_table::{EXPIRES_AT, FRAME, MESSAGE_ID, ROOM};
use crate::history::{HistoryEntry, HistoryStore};
use crate::store::StoreError;

/// A room's history in its DynamoDB history table: partition key the room, sort key the
/// time-ordered message id, TTL on `expiresAt`.
#[derive(Clone, Debug)]
pub struct DynamoDbHistory {
    client: Client,
    table: String,
    room: String,
}

impl DynamoDbHistory {
    pub fn new(client: Client, table: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            room: room.into(),
        }
    }
}

impl HistoryStore for DynamoDbHistory {
    async fn append(&self, entry: HistoryEntry) -> Result<(), StoreError> {
        let item = HashMap::from([
            (ROOM.to_owned(), AttributeValue::S(self.room.clone())),
            (MESSAGE_ID.to_owned(), AttributeValue::S(entry.id)),
            (FRAME.to_owned(), AttributeValue::S(entry.frame)),
            (
                EXPIRES_AT.to_owned(),
                AttributeValue::N(entry.expires_at_ms.div_euclid(1000).to_string()),
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| failed("keep a message", e))?;
        Ok(())
    }

    /// One Query, newest first, `limit` rows: never a scan. DynamoDB's TTL deletes late, so
    /// expired rows are filtered here (a filter runs after the limit; the rows it drops are
    /// older than every row it keeps, so nothing newer is missed).
    async fn newest(&self, limit: usize, now_ms: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#room = :room")
            .filter_expression("#expires > :now")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":room", AttributeValue::S(self.room.clone()))
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now_ms.div_euclid(1000).to_string()),
            )
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| failed("read the history", e))?;
        Ok(page
            .items()
            .iter()
            .filter_map(|item| {
                let (Some(AttributeValue::S(id)), Some(AttributeValue::S(frame))) =
                    (item.get(MESSAGE_ID), item.get(FRAME))
                else {
                    return None;
                };
                let expires_at_ms = match item.get(EXPIRES_AT) {
                    Some(AttributeValue::N(seconds)) => {
                        seconds.parse::<i64>().unwrap_or(0).saturating_mul(1000)
                    }
                    _ => 0,
                };
                Some(HistoryEntry {
                    id: id.clone(),
                    frame: frame.clone(),
                    expires_at_ms,
                })
            })
            .collect())
    }
}
