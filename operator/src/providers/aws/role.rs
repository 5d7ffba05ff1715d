//! The function's execution role, trusted by Lambda only (unless the spec brings its own role).
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
    pub permissions_boundary: Option<String>,
    pub description: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRole {
    pub arn: String,
    pub tags: HashMap<String, String>,
}

/// Nothing of an existing role drifts that the operator repairs; its policy is a step of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleField {}

pub fn desired(
    name: &str,
    room: &str,
    permissions_boundary: Option<&str>,
    tags: &Tags,
) -> DesiredRole {
    DesiredRole {
        name: name.to_owned(),
        trust_policy: trust_policy(),
        permissions_boundary: permissions_boundary.map(str::to_owned),
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
    match observed {
        None => vec![Change::Create],
        Some(role) => claim(&role.tags, &desired.tags, &format!("role {}", desired.name))
            .unwrap_or_else(|conflict| conflict),
    }
}

/// Observes or creates the role; its output is the role's ARN.
pub async fn converge(room: &RoomContext<'_>) -> Result<Converged<String>, AwsError> {
    let iam = &room.clients.iam;
    let desired = desired(
        &room.names.role,
        &room.display,
        room.settings.permissions_boundary.as_deref(),
        &room.tags,
    );
    let observed = observe(iam, &desired.name).await?;
    let changes = diff(observed.as_ref(), &desired);
    let fail = On::new(Step::Role, &desired.name);
    let arn = match (observed, changes.first()) {
        (_, Some(Change::Conflict(whose))) => return Err(fail.conflict(whose.clone())),
        (Some(role), Some(Change::Adopt)) => {
            iam.tag_role()
                .role_name(&desired.name)
                .set_tags(Some(tags(&desired, &fail)?))
                .send()
                .await
                .map_err(|e| fail.err(e))?;
            role.arn
        }
        (Some(role), None) => role.arn,
        _ => create(iam, &desired).await?,
    };
    Ok(Converged {
        output: arn,
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
        .set_permissions_boundary(desired.permissions_boundary.clone())
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

    #[test]
    fn only_lambda_may_assume_the_role_and_the_boundary_is_set_when_given() {
        let role = desired(
            "r",
            "default/lobby",
            Some("arn:aws:iam::1:policy/b"),
            &Tags::new(),
        );
        assert_eq!(
            role.trust_policy["Statement"][0]["Principal"]["Service"],
            "lambda.amazonaws.com"
        );
        assert_eq!(role.trust_policy["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(
            role.permissions_boundary.as_deref(),
            Some("arn:aws:iam::1:policy/b")
        );
        assert_eq!(diff(None, &role), [Change::Create]);
        let found = ObservedRole {
            arn: "arn:aws:iam::1:role/r".into(),
            tags: HashMap::new(),
        };
        assert!(
            matches!(diff(Some(&found), &role)[..], [Change::Conflict(_)]),
            "a role without the room's tags is not taken"
        );
    }
}
