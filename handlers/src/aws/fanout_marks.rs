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
    /// about `message`, else the slot is taken over — only from another message, so that of
    /// the parts of a new broadcast that finish together one takes the slot and the rest add
    /// to it, and none is lost.
    pub async fn fanout_mark(&self, message: &str, segment: &str) -> Result<(), StoreError> {
        let slot = Self::fanout_slot(message);
        // Each round fails only when another part (or another broadcast) changed the slot
        // between the two writes; three are plenty.
        for _ in 0..3 {
            let added = self
                .write_mark(
                    &slot,
                    message,
                    segment,
                    "ADD #handled :segment",
                    "#message = :message",
                )
                .await?;
            if added {
                return Ok(());
            }
            let taken = self
                .write_mark(
                    &slot,
                    message,
                    segment,
                    "SET #message = :message, #handled = :segment",
                    "attribute_not_exists(#message) OR #message <> :message",
                )
                .await?;
            if taken {
                return Ok(());
            }
        }
        Err(StoreError::new(
            "record a fan-out",
            format!("the slot of message {message} kept changing hands"),
        ))
    }

    /// One conditional write of a mark: whether its condition held.
    async fn write_mark(
        &self,
        slot: &AttributeValue,
        message: &str,
        segment: &str,
        update: &str,
        condition: &str,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, slot.clone())
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#handled", HANDLED)
            .expression_attribute_names("#message", MESSAGE)
            .expression_attribute_values(":segment", AttributeValue::Ss(vec![segment.to_owned()]))
            .expression_attribute_values(":message", AttributeValue::S(message.to_owned()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(failed("record a fan-out", error)),
        }
    }
}
