//! Which parts of a large broadcast were posted, so that a part Lambda delivers again is
//! skipped. Kept in one of 256 slot rows of the connection table (`#fanout#{slot}`, the slot
//! from the message id), which the next large broadcast landing on the slot takes over: the
//! table never holds more than 256 such rows, so listings (which skip every key starting with
//! `#`) never read more, however many broadcasts the room makes. A duplicate is recognised as
//! long as fewer than 256 other large broadcasts landed on its slot since — minutes at a
//! broadcast a second, past the few minutes within which Lambda retries a failed event.

use aws_sdk_dynamodb::types::AttributeValue;

use super::dynamodb_store::{DynamoDbStore, failed};
use crate::contract::table::{FANOUT_ROW_PREFIX, HANDLED, KEY as ID};
use crate::store::StoreError;

/// Slot rows per room.
pub const FANOUT_SLOTS: u64 = 256;

/// The attribute naming the broadcast a slot row is about (string).
const MESSAGE: &str = "message";

impl DynamoDbStore {
    fn fanout_slot(message: &str) -> AttributeValue {
        let slot = u64::from_str_radix(message, 16).unwrap_or(0) % FANOUT_SLOTS;
        AttributeValue::S(format!("{FANOUT_ROW_PREFIX}{slot:02x}"))
    }

    /// Whether `segment` of `message` was posted already (one strongly consistent GetItem).
    pub async fn fanout_handled(&self, message: &str, segment: &str) -> Result<bool, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ID, Self::fanout_slot(message))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("read a fan-out", e))?;
        let Some(row) = found.item else {
            return Ok(false);
        };
        let same_message = matches!(row.get(MESSAGE), Some(AttributeValue::S(m)) if m == message);
        Ok(same_message
            && matches!(row.get(HANDLED), Some(AttributeValue::Ss(handled)) if handled.iter().any(|s| s == segment)))
    }

    /// Records `segment` of `message` as posted: added to its slot's set when the slot is
    /// about `message`, else the slot is taken over.
    pub async fn fanout_mark(&self, message: &str, segment: &str) -> Result<(), StoreError> {
        let slot = Self::fanout_slot(message);
        let added = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, slot.clone())
            .update_expression("ADD #handled :segment")
            .condition_expression("#message = :message")
            .expression_attribute_names("#handled", HANDLED)
            .expression_attribute_names("#message", MESSAGE)
            .expression_attribute_values(":segment", AttributeValue::Ss(vec![segment.to_owned()]))
            .expression_attribute_values(":message", AttributeValue::S(message.to_owned()))
            .send()
            .await;
        match added {
            Ok(_) => return Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(error) => return Err(failed("record a fan-out", error)),
        }
        // A slot about another broadcast, or none yet: this one takes it over. Two parts of
        // one new broadcast racing here may each write a set of one; the loser's part is then
        // not recognised if delivered again, and is posted again.
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ID, slot)
            .update_expression("SET #message = :message, #handled = :segment")
            .expression_attribute_names("#handled", HANDLED)
            .expression_attribute_names("#message", MESSAGE)
            .expression_attribute_values(":segment", AttributeValue::Ss(vec![segment.to_owned()]))
            .expression_attribute_values(":message", AttributeValue::S(message.to_owned()))
            .send()
            .await
            .map_err(|e| failed("record a fan-out", e))?;
        Ok(())
    }
}
