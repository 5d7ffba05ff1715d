//! The room's DynamoDB table of connections: partition key `connectionId`, billing mode and
//! point-in-time recovery from the spec, TTL on `expiresAt`.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as AwsBilling, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, ProvisionedThroughput, ScalarAttributeType, TableStatus, Tag,
    TimeToLiveSpecification, TimeToLiveStatus,
};

use super::errors::{AwsError, On, Step};
use super::{Outcome, RoomContext};
use crate::crd::{BillingMode, ConnectionTableSpec};

const KEY: &str = "connectionId";
const TTL_ATTRIBUTE: &str = "expiresAt";

pub async fn converge(room: &RoomContext<'_>) -> Result<(String, Outcome), AwsError> {
    let client = &room.clients.dynamodb;
    let name = &room.names.table;
    let fail = On::new(Step::Table, name);
    let spec = &room.spec.connection_table;

    let described = match client.describe_table().table_name(name).send().await {
        Ok(found) => found.table,
        Err(e) => {
            let error = fail.err(e);
            if !error.is_not_found() {
                return Err(error);
            }
            None
        }
    };
    let Some(table) = described else {
        let (billing, throughput) = billing(spec);
        let created = client
            .create_table()
            .table_name(name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_error)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build_error)?,
            )
            .billing_mode(billing)
            .set_provisioned_throughput(throughput)
            .set_tags(Some(
                room.tags
                    .iter()
                    .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        let arn = created
            .table_description
            .and_then(|t| t.table_arn)
            .unwrap_or_default();
        wait_active(room, name).await?;
        enable_ttl(room).await?;
        if spec.point_in_time_recovery {
            set_pitr(room, true).await?;
        }
        return Ok((arn, Outcome::Created));
    };

    let mut outcome = Outcome::Unchanged;
    let current_billing = table
        .billing_mode_summary()
        .and_then(|b| b.billing_mode().cloned())
        .unwrap_or(AwsBilling::Provisioned);
    let (wanted_billing, throughput) = billing(spec);
    let current_capacity = table
        .provisioned_throughput()
        .map(|t| (t.read_capacity_units(), t.write_capacity_units()));
    let wanted_capacity = throughput
        .as_ref()
        .map(|t| (Some(t.read_capacity_units), Some(t.write_capacity_units)));
    if current_billing != wanted_billing
        || (wanted_billing == AwsBilling::Provisioned && current_capacity != wanted_capacity)
    {
        client
            .update_table()
            .table_name(name)
            .billing_mode(wanted_billing)
            .set_provisioned_throughput(throughput)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        wait_active(room, name).await?;
        outcome = Outcome::Updated;
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    let ttl_on = ttl.time_to_live_description().is_some_and(|d| {
        matches!(
            d.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) && d.attribute_name() == Some(TTL_ATTRIBUTE)
    });
    if !ttl_on {
        enable_ttl(room).await?;
        outcome = Outcome::Updated;
    }
    // Point-in-time recovery is read only when the spec asks for it; a table made with it off
    // keeps it off, and costs no read per reconcile.
    if spec.point_in_time_recovery {
        let backups = client
            .describe_continuous_backups()
            .table_name(name)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        let on = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .is_some_and(|s| s.as_str() == "ENABLED");
        if !on {
            set_pitr(room, true).await?;
            outcome = Outcome::Updated;
        }
    }
    Ok((table.table_arn().unwrap_or_default().to_owned(), outcome))
}

fn billing(spec: &ConnectionTableSpec) -> (AwsBilling, Option<ProvisionedThroughput>) {
    match spec.billing_mode {
        BillingMode::PayPerRequest => (AwsBilling::PayPerRequest, None),
        BillingMode::Provisioned => (
            AwsBilling::Provisioned,
            ProvisionedThroughput::builder()
                .read_capacity_units(spec.read_capacity.unwrap_or(1))
                .write_capacity_units(spec.write_capacity.unwrap_or(1))
                .build()
                .ok(),
        ),
    }
}

/// Lets DynamoDB delete rows whose `$disconnect` never came (`expiresAt`, epoch seconds).
async fn enable_ttl(room: &RoomContext<'_>) -> Result<(), AwsError> {
    let name = &room.names.table;
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
        .map_err(build_error)?;
    room.clients
        .dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| On::new(Step::Table, name).err(e))?;
    Ok(())
}

async fn set_pitr(room: &RoomContext<'_>, enabled: bool) -> Result<(), AwsError> {
    let name = &room.names.table;
    room.clients
        .dynamodb
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(enabled)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(Step::Table, name, e.into_service_error()))?;
    Ok(())
}

/// Waits (bounded) until the table is ACTIVE, as every later call on it needs.
async fn wait_active(room: &RoomContext<'_>, name: &str) -> Result<(), AwsError> {
    for _ in 0..120 {
        let described = room
            .clients
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(Step::Table, name, e.into_service_error()))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(AwsError::new(
        Step::Table,
        name,
        "Timeout",
        "the table did not become ACTIVE within 2 minutes",
    ))
}

pub async fn delete(room: &RoomContext<'_>) -> Result<bool, AwsError> {
    let name = &room.names.table;
    match room
        .clients
        .dynamodb
        .delete_table()
        .table_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => {
            let error = AwsError::from_sdk(Step::Table, name, e.into_service_error());
            if error.is_not_found() {
                Ok(false)
            } else {
                Err(error)
            }
        }
    }
}

fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> AwsError {
    AwsError::new(Step::Table, "", "BuildError", error.to_string())
}
