//! The function's execution role, trusted by Lambda only (unless the spec brings its own role),
//! always under the permissions boundary the operator's own policy insists on: whoever holds
//! the operator's credentials cannot make a role that can do more than a room function needs.
//! Its one inline policy is [`super::role_policy`].

use std::collections::HashMap;

use aws_sdk_iam::Client;
use serde_json::{Value, json};

use super::change::{Change, Converged, Removal, claim, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};
use super::tags::tag_map;
use super::{RoomContext, Tags};

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredRole {
    pub name: String,
    pub trust_policy: Value,
    pub permissions_boundary: String,
    pub description: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRole {
    pub arn: String,
    pub permissions_boundary: Option<String>,
    pub tags: HashMap<String, String>,
}

/// The role's boundary is restored; its policy is a step of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleField {
    PermissionsBoundary,
}

pub fn desired(name: &str, room: &str, permissions_boundary: &str, tags: &Tags) -> DesiredRole {
    DesiredRole {
        name: name.to_owned(),
        trust_policy: trust_policy(),
        permissions_boundary: permissions_boundary.to_owned(),
        description: format!("chatroom-operator: function role of ChatRoom {room}"),
        tags: tags.clone(),
    }
}

pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    })
}

pub fn diff(observed: Option<&ObservedRole>, desired: &DesiredRole) -> Vec<Change<RoleField>> {
    let Some(role) = observed else {
        return vec![Change::Create];
    };
    let what = format!("role {}", desired.name);
    let mut changes = match claim(&role.tags, &desired.tags, &what) {
        Ok(changes) => changes,
        Err(conflict) => return conflict,
    };
    if role.permissions_boundary.as_deref() != Some(&desired.permissions_boundary) {
        changes.push(Change::Update(RoleField::PermissionsBoundary));
    }
    changes
}

/// Observes or creates the role; its output is the role's ARN.
pub async fn converge(
    room: &RoomContext<'_>,
    permissions_boundary: &str,
) -> Result<Converged<String>, AwsError> {
    let iam = &room.clients.iam;
    let desired = desired(
        &room.names.role,
        &room.display,
        permissions_boundary,
        &room.tags,
    );
    let observed = observe(iam, &desired.name).await?;
    let changes = diff(observed.as_ref(), &desired);
    let fail = On::new(Step::Role, &desired.name);
    let mut arn = observed.map(|role| role.arn);
    for change in &changes {
        match change {
            Change::Create => arn = Some(create(iam, &desired).await?),
            Change::Adopt => {
                let tag = iam.tag_role().role_name(&desired.name);
                let tag = tag.set_tags(Some(tags(&desired, &fail)?));
                tag.send().await.map_err(|e| fail.err(e))?;
            }
            Change::Update(RoleField::PermissionsBoundary) => {
                let put = iam.put_role_permissions_boundary().role_name(&desired.name);
                let put = put.permissions_boundary(&desired.permissions_boundary);
                put.send().await.map_err(|e| fail.err(e))?;
            }
            Change::Conflict(whose) => return Err(fail.conflict(whose.clone())),
            Change::Replace(_) | Change::Remove => {
                return Err(fail.unexpected(format!("diff asked for {change:?}")));
            }
        }
    }
    Ok(Converged {
        output: arn.unwrap_or_default(),
        outcome: outcome(&changes),
    })
}

pub async fn observe(iam: &Client, name: &str) -> Result<Option<ObservedRole>, AwsError> {
    let fail = On::new(Step::Role, name);
    let found = iam.get_role().role_name(name).send().await;
    Ok(absent_if_not_found(found.map_err(|e| fail.err(e)))?
        .and_then(|found| found.role)
        .map(|role| ObservedRole {
            tags: tag_map(role.tags().iter().map(|t| (t.key(), t.value()))),
            permissions_boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_owned),
            arn: role.arn,
        }))
}

fn tags(desired: &DesiredRole, fail: &On<'_>) -> Result<Vec<aws_sdk_iam::types::Tag>, AwsError> {
    desired
        .tags
        .iter()
        .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail.unexpected(e))
}

async fn create(iam: &Client, desired: &DesiredRole) -> Result<String, AwsError> {
    let fail = On::new(Step::Role, &desired.name);
    let created = iam
        .create_role()
        .role_name(&desired.name)
        .assume_role_policy_document(desired.trust_policy.to_string())
        .description(&desired.description)
        .permissions_boundary(&desired.permissions_boundary)
        .set_tags(Some(tags(desired, &fail)?))
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    created
        .role
        .map(|role| role.arn)
        .ok_or_else(|| fail.unexpected("CreateRole answered without the role"))
}

/// Deletes the role's inline policy, then the role; another owner's role is left alone.
pub async fn delete(room: &RoomContext<'_>) -> Result<Removal, AwsError> {
    let iam = &room.clients.iam;
    let name = &room.names.role;
    let found = observe(iam, name).await?;
    if let Some(skip) = Removal::skip_reason(found.as_ref().map(|r| &r.tags), &room.tags) {
        return Ok(skip);
    }
    super::role_policy::delete(room).await?;
    let deleted = iam.delete_role().role_name(name).send().await;
    let deleted = absent_if_not_found(deleted.map_err(|e| On::new(Step::Role, name).err(e)))?;
    Ok(deleted.map_or(Removal::Absent, |_| Removal::Deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::aws::tags::lobby_tags;

    const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/chatroom-room-boundary";

    fn wanted() -> DesiredRole {
        desired("r", "default/lobby", BOUNDARY, &lobby_tags())
    }

    fn ours() -> ObservedRole {
        ObservedRole {
            arn: "arn:aws:iam::123456789012:role/r".into(),
            permissions_boundary: Some(BOUNDARY.into()),
            tags: lobby_tags().into_iter().collect(),
        }
    }

    #[test]
    fn only_lambda_may_assume_the_role_and_it_is_bounded() {
        let role = wanted();
        assert_eq!(
            role.trust_policy["Statement"][0]["Principal"]["Service"],
            "lambda.amazonaws.com"
        );
        assert_eq!(role.trust_policy["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(role.permissions_boundary, BOUNDARY);
        assert_eq!(diff(None, &role), [Change::Create]);
        assert_eq!(diff(Some(&ours()), &role), []);
    }

    #[test]
    fn a_lifted_or_changed_boundary_is_put_back() {
        for found in [None, Some("arn:aws:iam::123456789012:policy/wide-open")] {
            let role = ObservedRole {
                permissions_boundary: found.map(str::to_owned),
                ..ours()
            };
            assert_eq!(
                diff(Some(&role), &wanted()),
                [Change::Update(RoleField::PermissionsBoundary)]
            );
        }
    }

    #[test]
    fn a_role_without_the_rooms_tags_is_not_taken() {
        let role = ObservedRole {
            tags: HashMap::new(),
            ..ours()
        };
        assert!(matches!(
            diff(Some(&role), &wanted())[..],
            [Change::Conflict(_)]
        ));
    }
}
