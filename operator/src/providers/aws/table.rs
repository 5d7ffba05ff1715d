//! The room's DynamoDB tables: its connections (billing mode and point-in-time recovery from
//! the spec) and, when the room keeps history, its messages (on demand). Keys and TTL
//! attributes are the handlers' contract.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as AwsBilling, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, PointInTimeRecoveryStatus, ProvisionedThroughput,
    ScalarAttributeType, TableDescription, TableStatus, Tag, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use chatroom_handlers::contract::{channel_table, history_table, table as connection_table};

use super::change::{Change, Converged, Removal, claim, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};
use super::tags::tag_map;
use super::{RoomContext, Tags};
use crate::crd::{BillingMode, ConnectionTableSpec};

/// How long a new or changed table may take to become ACTIVE.
const ACTIVE_WITHIN: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Billing {
    PayPerRequest,
    Provisioned { read: i64, write: i64 },
}

/// Which of the room's tables, and so its key schema and TTL attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// Partition key `connectionId`.
    Connections,
    /// Partition key `room`, sort key `messageId`.
    History,
    /// Partition key `channelShard`, sort key `connectionId`.
    Channels,
}

impl TableKind {
    fn keys(self) -> &'static [(&'static str, KeyType)] {
        match self {
            Self::Connections => &[(connection_table::KEY, KeyType::Hash)],
            Self::History => &[
                (history_table::ROOM, KeyType::Hash),
                (history_table::MESSAGE_ID, KeyType::Range),
            ],
            Self::Channels => &[
                (channel_table::PARTITION, KeyType::Hash),
                (channel_table::CONNECTION, KeyType::Range),
            ],
        }
    }

    fn expires_attribute(self) -> &'static str {
        match self {
            Self::Connections => connection_table::EXPIRES_AT,
            Self::History => history_table::EXPIRES_AT,
            Self::Channels => channel_table::EXPIRES_AT,
        }
    }

    fn step(self) -> Step {
        match self {
            Self::Connections => Step::Table,
            Self::History => Step::HistoryTable,
            Self::Channels => Step::ChannelTable,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredTable {
    pub kind: TableKind,
    pub name: String,
    pub billing: Billing,
    pub point_in_time_recovery: bool,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTable {
    pub arn: String,
    pub tags: HashMap<String, String>,
    pub active: bool,
    pub billing: Billing,
    /// TTL is enabled (or being enabled) on the contract's attribute.
    pub expires_rows: bool,
    /// Read only when the spec asks for point-in-time recovery.
    pub point_in_time_recovery: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableField {
    Billing,
    TimeToLive,
    PointInTimeRecovery,
}

pub fn desired(spec: &ConnectionTableSpec, name: &str, tags: &Tags) -> DesiredTable {
    let billing = match spec.billing_mode {
        BillingMode::PayPerRequest => Billing::PayPerRequest,
        // Validation requires both capacities with PROVISIONED.
        BillingMode::Provisioned => Billing::Provisioned {
            read: spec.read_capacity.unwrap_or(1),
            write: spec.write_capacity.unwrap_or(1),
        },
    };
    DesiredTable {
        kind: TableKind::Connections,
        name: name.to_owned(),
        billing,
        point_in_time_recovery: spec.point_in_time_recovery,
        tags: tags.clone(),
    }
}

/// The history table: on demand (its writes follow the room's messages, not a capacity plan),
/// without point-in-time recovery (every row expires within 30 days anyway).
pub fn desired_history(name: &str, tags: &Tags) -> DesiredTable {
    on_demand(TableKind::History, name, tags)
}

/// The channel table: on demand (its writes follow subscriptions), without point-in-time
/// recovery (a subscription lives no longer than its connection).
pub fn desired_channels(name: &str, tags: &Tags) -> DesiredTable {
    on_demand(TableKind::Channels, name, tags)
}

fn on_demand(kind: TableKind, name: &str, tags: &Tags) -> DesiredTable {
    DesiredTable {
        kind,
        name: name.to_owned(),
        billing: Billing::PayPerRequest,
        point_in_time_recovery: false,
        tags: tags.clone(),
    }
}

/// A new table needs TTL (and PITR when asked) after it is created; an existing one only what
/// drifted. A table made with PITR off keeps it off: PITR is only ever turned on.
pub fn diff(observed: Option<&ObservedTable>, desired: &DesiredTable) -> Vec<Change<TableField>> {
    let Some(table) = observed else {
        let mut changes = vec![Change::Create, Change::Update(TableField::TimeToLive)];
        if desired.point_in_time_recovery {
            changes.push(Change::Update(TableField::PointInTimeRecovery));
        }
        return changes;
    };
    let what = format!("table {}", desired.name);
    let mut changes = match claim(&table.tags, &desired.tags, &what) {
        Ok(changes) => changes,
        Err(conflict) => return conflict,
    };
    if table.billing != desired.billing {
        changes.push(Change::Update(TableField::Billing));
    }
    if !table.expires_rows {
        changes.push(Change::Update(TableField::TimeToLive));
    }
    if desired.point_in_time_recovery && table.point_in_time_recovery != Some(true) {
        changes.push(Change::Update(TableField::PointInTimeRecovery));
    }
    changes
}

/// What the table step hands on: the table's ARN, and a setting AWS would not take yet.
#[derive(Debug)]
pub struct TableOutput {
    pub arn: String,
    /// TTL or point-in-time recovery that AWS refused for now. The table works without them,
    /// so the room converges on, and the room is not Ready until a later reconcile sets them.
    pub deferred: Option<AwsError>,
}

pub async fn converge(room: &RoomContext<'_>) -> Result<Converged<TableOutput>, AwsError> {
    let desired = desired(&room.spec.connection_table, &room.names.table, &room.tags);
    converge_table(room, &desired).await
}

/// The history table, for a room that keeps history.
pub async fn converge_history(room: &RoomContext<'_>) -> Result<Converged<TableOutput>, AwsError> {
    let desired = desired_history(&room.names.history_table, &room.tags);
    converge_table(room, &desired).await
}

/// The channel table, for a room with channels.
pub async fn converge_channels(room: &RoomContext<'_>) -> Result<Converged<TableOutput>, AwsError> {
    let desired = desired_channels(&room.names.channel_table, &room.tags);
    converge_table(room, &desired).await
}

async fn converge_table(
    room: &RoomContext<'_>,
    desired: &DesiredTable,
) -> Result<Converged<TableOutput>, AwsError> {
    let client = &room.clients.dynamodb;
    let desired = desired.clone();
    let observed = observe(client, &desired).await?;
    let changes = diff(observed.as_ref(), &desired);
    let acted = act(client, &desired, observed.as_ref(), &changes).await?;
    let arn = acted
        .created_arn
        .or(observed.map(|table| table.arn))
        .unwrap_or_default();
    Ok(Converged {
        output: TableOutput {
            arn,
            deferred: acted.deferred,
        },
        outcome: outcome(&changes),
    })
}

/// DescribeTable, its tags, its TTL, and (only when wanted) its continuous backups.
pub async fn observe(
    client: &Client,
    desired: &DesiredTable,
) -> Result<Option<ObservedTable>, AwsError> {
    let name = &desired.name;
    let fail = On::new(desired.kind.step(), name);
    let described = client.describe_table().table_name(name).send().await;
    let Some(table) =
        absent_if_not_found(described.map_err(|e| fail.err(e)))?.and_then(|found| found.table)
    else {
        return Ok(None);
    };
    let arn = table.table_arn().unwrap_or_default();
    let listed = client
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    let tags = tag_map(listed.tags().iter().map(|t| (t.key(), t.value())));
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    let expires_rows = ttl.time_to_live_description().is_some_and(|d| {
        matches!(
            d.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) && d.attribute_name() == Some(desired.kind.expires_attribute())
    });
    let point_in_time_recovery = if desired.point_in_time_recovery {
        let backups = client
            .describe_continuous_backups()
            .table_name(name)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        let status = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status());
        Some(status == Some(&PointInTimeRecoveryStatus::Enabled))
    } else {
        None
    };
    let mut observed = observed_table(&table, expires_rows, point_in_time_recovery);
    observed.tags = tags;
    Ok(Some(observed))
}

fn observed_table(
    table: &TableDescription,
    expires_rows: bool,
    point_in_time_recovery: Option<bool>,
) -> ObservedTable {
    // Tables created before on-demand billing existed have no billing summary: provisioned.
    let mode = table
        .billing_mode_summary()
        .and_then(|b| b.billing_mode().cloned())
        .unwrap_or(AwsBilling::Provisioned);
    let billing = match mode {
        AwsBilling::PayPerRequest => Billing::PayPerRequest,
        _ => {
            let throughput = table.provisioned_throughput();
            Billing::Provisioned {
                read: throughput
                    .and_then(|t| t.read_capacity_units())
                    .unwrap_or(0),
                write: throughput
                    .and_then(|t| t.write_capacity_units())
                    .unwrap_or(0),
            }
        }
    };
    ObservedTable {
        arn: table.table_arn().unwrap_or_default().to_owned(),
        tags: HashMap::new(),
        active: table.table_status() == Some(&TableStatus::Active),
        billing,
        expires_rows,
        point_in_time_recovery,
    }
}

#[derive(Debug, Default)]
struct Acted {
    created_arn: Option<String>,
    deferred: Option<AwsError>,
}

/// Carries out `changes` in order. A transient refusal to turn on TTL or point-in-time
/// recovery is deferred, not fatal: the table serves the room without either.
async fn act(
    client: &Client,
    desired: &DesiredTable,
    observed: Option<&ObservedTable>,
    changes: &[Change<TableField>],
) -> Result<Acted, AwsError> {
    let fail = On::new(desired.kind.step(), &desired.name);
    let mut acted = Acted::default();
    // Every change but a creation needs an ACTIVE table: one just created, or one a crash
    // left CREATING, is waited for first.
    let mut active = observed.is_some_and(|table| table.active);
    for change in changes {
        if !matches!(change, Change::Create) && !active {
            wait_active(client, desired).await?;
            active = true;
        }
        match change {
            Change::Create => {
                acted.created_arn = Some(create(client, desired).await?);
                active = false;
            }
            Change::Update(TableField::Billing) => {
                let (mode, throughput) = billing_request(&desired.billing, &fail)?;
                client
                    .update_table()
                    .table_name(&desired.name)
                    .billing_mode(mode)
                    .set_provisioned_throughput(throughput)
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
                active = false;
            }
            Change::Update(TableField::TimeToLive) => {
                defer_if_transient(&mut acted, enable_ttl(client, desired).await)?;
            }
            Change::Update(TableField::PointInTimeRecovery) => {
                defer_if_transient(&mut acted, enable_pitr(client, desired).await)?;
            }
            Change::Adopt => {
                let arn = observed.map(|table| table.arn.as_str()).unwrap_or_default();
                client
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags(desired, &fail)?))
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
            }
            Change::Conflict(whose) => return Err(fail.conflict(whose.clone())),
            Change::Replace(_) | Change::Remove => {
                return Err(fail.unexpected(format!("diff asked for {change:?}")));
            }
        }
    }
    if !active {
        wait_active(client, desired).await?;
    }
    Ok(acted)
}

fn defer_if_transient(acted: &mut Acted, result: Result<(), AwsError>) -> Result<(), AwsError> {
    match result {
        Err(error) if error.is_transient_answer() => {
            tracing::info!(%error, "AWS will not take this table setting yet; deferred");
            acted.deferred.get_or_insert(error);
            Ok(())
        }
        other => other,
    }
}

async fn create(client: &Client, desired: &DesiredTable) -> Result<String, AwsError> {
    let fail = On::new(desired.kind.step(), &desired.name);
    let (mode, throughput) = billing_request(&desired.billing, &fail)?;
    let mut attributes = Vec::new();
    let mut keys = Vec::new();
    for (name, kind) in desired.kind.keys() {
        let attribute = AttributeDefinition::builder()
            .attribute_name(*name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| fail.unexpected(e))?;
        let key = KeySchemaElement::builder()
            .attribute_name(*name)
            .key_type(kind.clone())
            .build()
            .map_err(|e| fail.unexpected(e))?;
        attributes.push(attribute);
        keys.push(key);
    }
    let created = client
        .create_table()
        .table_name(&desired.name)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(keys))
        .billing_mode(mode)
        .set_provisioned_throughput(throughput)
        .set_tags(Some(tags(desired, &fail)?))
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    Ok(created
        .table_description
        .and_then(|t| t.table_arn)
        .unwrap_or_default())
}

fn tags(desired: &DesiredTable, fail: &On<'_>) -> Result<Vec<Tag>, AwsError> {
    desired
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail.unexpected(e))
}

fn billing_request(
    billing: &Billing,
    fail: &On<'_>,
) -> Result<(AwsBilling, Option<ProvisionedThroughput>), AwsError> {
    match billing {
        Billing::PayPerRequest => Ok((AwsBilling::PayPerRequest, None)),
        Billing::Provisioned { read, write } => {
            let throughput = ProvisionedThroughput::builder()
                .read_capacity_units(*read)
                .write_capacity_units(*write)
                .build()
                .map_err(|e| fail.unexpected(e))?;
            Ok((AwsBilling::Provisioned, Some(throughput)))
        }
    }
}

/// Lets DynamoDB delete rows whose `$disconnect` never came, and messages past the room's
/// retention. Within an hour of a TTL change AWS answers every further UpdateTimeToLive with
/// ValidationException: later, not never.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTimeToLive.html>
async fn enable_ttl(client: &Client, desired: &DesiredTable) -> Result<(), AwsError> {
    let name = &desired.name;
    let fail = On::new(desired.kind.step(), name);
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(desired.kind.expires_attribute())
        .build()
        .map_err(|e| fail.unexpected(e))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| match fail.err(e) {
            error if error.reason() == "ValidationException" => error.retry_later(),
            error => error,
        })?;
    Ok(())
}

/// Right after a table becomes ACTIVE, AWS answers ContinuousBackupsUnavailableException for
/// some minutes while it sets up backups.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateContinuousBackups.html>
async fn enable_pitr(client: &Client, desired: &DesiredTable) -> Result<(), AwsError> {
    let name = &desired.name;
    let fail = On::new(desired.kind.step(), name);
    let pitr = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .map_err(|e| fail.unexpected(e))?;
    client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(pitr)
        .send()
        .await
        .map_err(|e| match fail.err(e) {
            error if error.reason() == "ContinuousBackupsUnavailableException" => {
                error.retry_later()
            }
            error => error,
        })?;
    Ok(())
}

/// Waits (bounded) until the table is ACTIVE, as every later call on it needs.
async fn wait_active(client: &Client, desired: &DesiredTable) -> Result<(), AwsError> {
    let name = &desired.name;
    let fail = On::new(desired.kind.step(), name);
    let poll = Duration::from_secs(1);
    for _ in 0..ACTIVE_WITHIN.as_secs() {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(poll).await;
    }
    Err(fail.timeout("ACTIVE", ACTIVE_WITHIN))
}

/// Deletes the room's table of connections; another owner's table of that name is left alone.
pub async fn delete(room: &RoomContext<'_>) -> Result<Removal, AwsError> {
    let mut desired = desired(&room.spec.connection_table, &room.names.table, &room.tags);
    desired.point_in_time_recovery = false;
    delete_table(room, &desired).await
}

/// Deletes the room's history table, whether or not the spec still asks for history.
pub async fn delete_history(room: &RoomContext<'_>) -> Result<Removal, AwsError> {
    let desired = desired_history(&room.names.history_table, &room.tags);
    delete_table(room, &desired).await
}

/// Deletes the room's channel table, whether or not the spec still asks for channels.
pub async fn delete_channels(room: &RoomContext<'_>) -> Result<Removal, AwsError> {
    let desired = desired_channels(&room.names.channel_table, &room.tags);
    delete_table(room, &desired).await
}

async fn delete_table(room: &RoomContext<'_>, desired: &DesiredTable) -> Result<Removal, AwsError> {
    let client = &room.clients.dynamodb;
    let found = observe(client, desired).await?;
    if let Some(skip) = Removal::skip_reason(found.as_ref().map(|t| &t.tags), &room.tags) {
        return Ok(skip);
    }
    let name = &desired.name;
    let deleted = client.delete_table().table_name(name).send().await;
    let fail = On::new(desired.kind.step(), name);
    let deleted = absent_if_not_found(deleted.map_err(|e| fail.err(e)))?;
    Ok(deleted.map_or(Removal::Absent, |_| Removal::Deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ChatRoomSpec;
    use crate::providers::aws::tags::lobby_tags;

    fn room_table(spec: &ConnectionTableSpec) -> DesiredTable {
        desired(spec, "chatroom-default-lobby-0123456789", &lobby_tags())
    }

    /// What a converged table of `desired` looks like in AWS.
    fn converged(desired: &DesiredTable) -> ObservedTable {
        ObservedTable {
            arn: "arn:aws:dynamodb:eu-west-1:123456789012:table/t".into(),
            tags: desired.tags.clone().into_iter().collect(),
            active: true,
            billing: desired.billing.clone(),
            expires_rows: true,
            point_in_time_recovery: desired.point_in_time_recovery.then_some(true),
        }
    }

    #[test]
    fn the_default_table_is_on_demand_without_pitr() {
        let table = room_table(&ChatRoomSpec::default().connection_table);
        assert_eq!(table.billing, Billing::PayPerRequest);
        assert!(!table.point_in_time_recovery);
    }

    #[test]
    fn a_provisioned_table_carries_its_capacities() {
        let spec = ConnectionTableSpec {
            billing_mode: BillingMode::Provisioned,
            read_capacity: Some(5),
            write_capacity: Some(3),
            point_in_time_recovery: true,
            ..ConnectionTableSpec::default()
        };
        let table = room_table(&spec);
        assert_eq!(table.billing, Billing::Provisioned { read: 5, write: 3 });
        assert!(table.point_in_time_recovery);
    }

    #[test]
    fn a_missing_table_is_created_then_given_ttl_and_pitr_when_asked() {
        let mut spec = ConnectionTableSpec::default();
        assert_eq!(
            diff(None, &room_table(&spec)),
            [Change::Create, Change::Update(TableField::TimeToLive)]
        );
        spec.point_in_time_recovery = true;
        assert_eq!(
            diff(None, &room_table(&spec)),
            [
                Change::Create,
                Change::Update(TableField::TimeToLive),
                Change::Update(TableField::PointInTimeRecovery)
            ]
        );
    }

    #[test]
    fn a_converged_table_needs_nothing() {
        let table = room_table(&ConnectionTableSpec::default());
        assert_eq!(diff(Some(&converged(&table)), &table), []);
    }

    #[test]
    fn changed_billing_mode_or_capacity_is_restored() {
        let wanted = room_table(&ConnectionTableSpec::default());
        let mut found = converged(&wanted);
        found.billing = Billing::Provisioned { read: 1, write: 1 };
        assert_eq!(
            diff(Some(&found), &wanted),
            [Change::Update(TableField::Billing)]
        );

        let provisioned = ConnectionTableSpec {
            billing_mode: BillingMode::Provisioned,
            read_capacity: Some(2),
            write_capacity: Some(2),
            ..ConnectionTableSpec::default()
        };
        let wanted = room_table(&provisioned);
        let mut found = converged(&wanted);
        found.billing = Billing::Provisioned { read: 2, write: 9 };
        assert_eq!(
            diff(Some(&found), &wanted),
            [Change::Update(TableField::Billing)]
        );
    }

    #[test]
    fn ttl_turned_off_and_pitr_turned_off_are_turned_back_on() {
        let spec = ConnectionTableSpec {
            point_in_time_recovery: true,
            ..ConnectionTableSpec::default()
        };
        let wanted = room_table(&spec);
        let mut found = converged(&wanted);
        found.expires_rows = false;
        found.point_in_time_recovery = Some(false);
        assert_eq!(
            diff(Some(&found), &wanted),
            [
                Change::Update(TableField::TimeToLive),
                Change::Update(TableField::PointInTimeRecovery)
            ]
        );
    }

    #[test]
    fn an_on_demand_table_ignores_the_zero_capacity_aws_reports() {
        let table = TableDescription::builder()
            .table_arn("arn:aws:dynamodb:eu-west-1:123456789012:table/t")
            .table_status(TableStatus::Active)
            .billing_mode_summary(
                aws_sdk_dynamodb::types::BillingModeSummary::builder()
                    .billing_mode(AwsBilling::PayPerRequest)
                    .build(),
            )
            .provisioned_throughput(
                aws_sdk_dynamodb::types::ProvisionedThroughputDescription::builder()
                    .read_capacity_units(0)
                    .write_capacity_units(0)
                    .build(),
            )
            .build();
        let wanted = room_table(&ConnectionTableSpec::default());
        let mut observed = observed_table(&table, true, None);
        observed.tags = wanted.tags.clone().into_iter().collect();
        assert_eq!(diff(Some(&observed), &wanted), []);
    }

    mod canned_answers {
        use aws_smithy_mocks::{mock, mock_client};

        use super::*;
        use crate::providers::aws::canned::json_error;

        fn converged_without(
            edit: impl FnOnce(&mut ObservedTable),
        ) -> (DesiredTable, ObservedTable) {
            let spec = ConnectionTableSpec {
                point_in_time_recovery: true,
                ..ConnectionTableSpec::default()
            };
            let wanted = room_table(&spec);
            let mut found = converged(&wanted);
            edit(&mut found);
            (wanted, found)
        }

        #[tokio::test]
        async fn ttl_refused_within_an_hour_of_a_change_is_deferred_and_retried() {
            // "Any additional UpdateTimeToLive calls for the same table during this one hour
            // duration result in a ValidationException."
            let refused = mock!(Client::update_time_to_live).then_http_response(|| {
                json_error(
                    400,
                    "ValidationException",
                    "Time to live has been modified multiple times within a fixed interval",
                )
            });
            let client = mock_client!(aws_sdk_dynamodb, [&refused]);
            let (wanted, found) = converged_without(|t| t.expires_rows = false);
            let changes = diff(Some(&found), &wanted);

            let acted = act(&client, &wanted, Some(&found), &changes).await.unwrap();

            let deferred = acted.deferred.expect("the refusal is kept for the status");
            assert_eq!(deferred.reason(), "ValidationException");
            assert!(
                !deferred.is_permanent(),
                "retried, not left waiting for a spec change"
            );
            assert_eq!(refused.num_calls(), 1);
        }

        #[tokio::test]
        async fn pitr_unavailable_right_after_creation_is_deferred_and_retried() {
            let unavailable = mock!(Client::update_continuous_backups).then_http_response(|| {
                json_error(
                    400,
                    "ContinuousBackupsUnavailableException",
                    "Backups are being enabled for the table: t. Please retry later",
                )
            });
            let client = mock_client!(aws_sdk_dynamodb, [&unavailable]);
            let (wanted, found) = converged_without(|t| t.point_in_time_recovery = Some(false));
            let changes = diff(Some(&found), &wanted);

            let acted = act(&client, &wanted, Some(&found), &changes).await.unwrap();

            let deferred = acted.deferred.expect("deferred");
            assert_eq!(deferred.reason(), "ContinuousBackupsUnavailableException");
            assert!(!deferred.is_permanent());
        }

        #[tokio::test]
        async fn a_denied_ttl_change_is_not_deferred_but_fails_the_step() {
            let denied = mock!(Client::update_time_to_live).then_http_response(|| {
                json_error(
                    400,
                    "AccessDeniedException",
                    "not authorized to perform: dynamodb:UpdateTimeToLive",
                )
            });
            let client = mock_client!(aws_sdk_dynamodb, [&denied]);
            let (wanted, found) = converged_without(|t| t.expires_rows = false);
            let changes = diff(Some(&found), &wanted);

            let error = act(&client, &wanted, Some(&found), &changes)
                .await
                .unwrap_err();

            assert!(error.is_permanent(), "{error}");
        }
    }
}
