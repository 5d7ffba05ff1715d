//! The function's log group, `/aws/lambda/{function}`, made by the operator with the spec's
//! retention and the room's tags, so that the function's role needs only to write to it (not
//! CreateLogGroup, which CloudWatch Logs authorises against a resource other than the group
//! itself), and so that it goes with the room instead of living on for ever.

use std::collections::HashMap;

use aws_sdk_cloudwatchlogs::Client;

use super::change::{Change, Converged, Removal, claim, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};
use super::{RoomContext, Tags};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredLogGroup {
    pub name: String,
    pub retention_days: i32,
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedLogGroup {
    /// Without the `:*` that DescribeLogGroups appends to `arn`.
    pub arn: String,
    pub retention_days: Option<i32>,
    pub tags: HashMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogGroupField {
    Retention,
}

pub fn desired(name: &str, retention_days: i32, tags: &Tags) -> DesiredLogGroup {
    DesiredLogGroup {
        name: name.to_owned(),
        retention_days,
        tags: tags.clone(),
    }
}

/// A new group is created, then given its retention (CreateLogGroup takes none).
pub fn diff(
    observed: Option<&ObservedLogGroup>,
    desired: &DesiredLogGroup,
) -> Vec<Change<LogGroupField>> {
    let Some(group) = observed else {
        return vec![Change::Create, Change::Update(LogGroupField::Retention)];
    };
    let what = format!("log group {}", desired.name);
    let mut changes = match claim(&group.tags, &desired.tags, &what) {
        Ok(changes) => changes,
        Err(conflict) => return conflict,
    };
    if group.retention_days != Some(desired.retention_days) {
        changes.push(Change::Update(LogGroupField::Retention));
    }
    changes
}

/// The function's log group.
pub async fn converge(room: &RoomContext<'_>) -> Result<Converged<()>, AwsError> {
    let retention = room.spec.function.log_retention_days;
    let desired = desired(&room.names.log_group(), retention, &room.tags);
    converge_group(room, Step::LogGroup, &desired).await
}

/// The stage's access log group, for a room with `spec.accessLog`; its output is the group's
/// ARN as a stage's access log destination names it (without the `:*`).
pub async fn converge_access_log(
    room: &RoomContext<'_>,
    retention_days: i32,
) -> Result<Converged<String>, AwsError> {
    let name = room.names.access_log_group();
    let desired = desired(&name, retention_days, &room.tags);
    let converged = converge_group(room, Step::AccessLog, &desired).await?;
    Ok(Converged {
        output: format!(
            "arn:{}:logs:{}:{}:log-group:{name}",
            room.partition(),
            room.region,
            room.caller.account
        ),
        outcome: converged.outcome,
    })
}

async fn converge_group(
    room: &RoomContext<'_>,
    step: Step,
    desired: &DesiredLogGroup,
) -> Result<Converged<()>, AwsError> {
    let logs = &room.clients.logs;
    let observed = observe(logs, &desired.name).await?;
    let changes = diff(observed.as_ref(), desired);
    let fail = On::new(step, &desired.name);
    for change in &changes {
        match change {
            Change::Create => {
                let create = logs.create_log_group().log_group_name(&desired.name);
                let create = create.set_tags(Some(desired.tags.clone().into_iter().collect()));
                create.send().await.map_err(|e| fail.err(e))?;
            }
            Change::Update(LogGroupField::Retention) => {
                let put = logs.put_retention_policy().log_group_name(&desired.name);
                let put = put.retention_in_days(desired.retention_days);
                put.send().await.map_err(|e| fail.err(e))?;
            }
            Change::Adopt => {
                let arn = observed
                    .as_ref()
                    .map(|g| g.arn.as_str())
                    .unwrap_or_default();
                let tag = logs.tag_resource().resource_arn(arn);
                let tag = tag.set_tags(Some(desired.tags.clone().into_iter().collect()));
                tag.send().await.map_err(|e| fail.err(e))?;
            }
            Change::Conflict(whose) => return Err(fail.conflict(whose.clone())),
            Change::Replace(_) | Change::Remove => {
                return Err(fail.unexpected(format!("diff asked for {change:?}")));
            }
        }
    }
    Ok(Converged {
        output: (),
        outcome: outcome(&changes),
    })
}

/// The group of exactly this name, its retention and its tags.
pub async fn observe(logs: &Client, name: &str) -> Result<Option<ObservedLogGroup>, AwsError> {
    let fail = On::new(Step::LogGroup, name);
    let found = logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    let Some(group) = found
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
    else {
        return Ok(None);
    };
    let arn = group
        .log_group_arn()
        .or_else(|| group.arn().map(|arn| arn.trim_end_matches(":*")))
        .unwrap_or_default()
        .to_owned();
    let listed = logs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await;
    let tags = absent_if_not_found(listed.map_err(|e| fail.err(e)))?
        .and_then(|listed| listed.tags)
        .unwrap_or_default();
    Ok(Some(ObservedLogGroup {
        arn,
        retention_days: group.retention_in_days(),
        tags,
    }))
}

/// Deletes the function's log group; another owner's group of that name is left alone.
pub async fn delete(room: &RoomContext<'_>) -> Result<Removal, AwsError> {
    delete_group(room, &room.names.log_group()).await
}

/// Deletes the room's access log group, if it ever had one.
pub async fn delete_access_log(room: &RoomContext<'_>) -> Result<Removal, AwsError> {
    delete_group(room, &room.names.access_log_group()).await
}

async fn delete_group(room: &RoomContext<'_>, name: &str) -> Result<Removal, AwsError> {
    let logs = &room.clients.logs;
    let name = name.to_owned();
    let found = observe(logs, &name).await?;
    if let Some(skip) = Removal::skip_reason(found.as_ref().map(|g| &g.tags), &room.tags) {
        return Ok(skip);
    }
    let deleted = logs.delete_log_group().log_group_name(&name).send().await;
    let fail = On::new(Step::LogGroup, &name);
    let deleted = absent_if_not_found(deleted.map_err(|e| fail.err(e)))?;
    Ok(deleted.map_or(Removal::Absent, |_| Removal::Deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> DesiredLogGroup {
        let tags = Tags::from([
            ("chatroom.dev/managed-by".into(), "chatroom-operator".into()),
            ("chatroom.dev/cluster".into(), "prod".into()),
            ("chatroom.dev/namespace".into(), "default".into()),
            ("chatroom.dev/name".into(), "lobby".into()),
        ]);
        desired("/aws/lambda/chatroom-default-lobby-x", 14, &tags)
    }

    #[test]
    fn a_new_group_is_created_then_given_its_retention() {
        assert_eq!(
            diff(None, &wanted()),
            [Change::Create, Change::Update(LogGroupField::Retention)]
        );
    }

    #[test]
    fn a_changed_or_missing_retention_is_restored_and_a_foreign_group_left_alone() {
        let wanted = wanted();
        let mut found = ObservedLogGroup {
            arn: "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/x".into(),
            retention_days: Some(14),
            tags: wanted.tags.clone().into_iter().collect(),
        };
        assert_eq!(diff(Some(&found), &wanted), []);
        found.retention_days = None;
        assert_eq!(
            diff(Some(&found), &wanted),
            [Change::Update(LogGroupField::Retention)]
        );
        found.tags.clear();
        assert!(matches!(
            diff(Some(&found), &wanted)[..],
            [Change::Conflict(_)]
        ));
    }
}
