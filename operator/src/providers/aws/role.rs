//! The function's execution role: trusted by Lambda only, with one inline policy scoped to this
//! room — its table, its API stage's `@connections`, its own log group. No `*` resource.

use serde_json::{Value, json};

use super::errors::{AwsError, On, Step};
use super::naming::INLINE_POLICY;
use super::{Outcome, RoomContext};

/// What the policy is scoped to.
pub struct PolicyScope<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub table_arn: &'a str,
    pub api_id: &'a str,
    pub stage: &'a str,
    pub log_group: &'a str,
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

/// Exactly what the handlers use: PutItem / DeleteItem / Scan on the table, PostToConnection
/// on this stage, and writing the function's own logs.
pub fn room_policy(scope: &PolicyScope<'_>) -> Value {
    let PolicyScope {
        partition,
        region,
        account,
        table_arn,
        api_id,
        stage,
        log_group,
    } = scope;
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectionTable",
                "Effect": "Allow",
                "Action": ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"],
                "Resource": table_arn
            },
            {
                "Sid": "PostToConnections",
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": format!("arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/POST/@connections/*")
            },
            {
                "Sid": "FunctionLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": format!("arn:{partition}:logs:{region}:{account}:log-group:{log_group}:*")
            },
            {
                "Sid": "FunctionLogGroup",
                "Effect": "Allow",
                "Action": "logs:CreateLogGroup",
                "Resource": format!("arn:{partition}:logs:{region}:{account}:log-group:{log_group}")
            }
        ]
    })
}

/// Observes or creates the role; returns its ARN.
pub async fn converge_role(room: &RoomContext<'_>) -> Result<(String, Outcome), AwsError> {
    let iam = &room.clients.iam;
    let name = &room.names.role;
    let fail = On::new(Step::Role, name);
    match iam.get_role().role_name(name).send().await {
        Ok(found) => {
            return Ok((
                found.role.map(|r| r.arn).unwrap_or_default(),
                Outcome::Unchanged,
            ));
        }
        Err(e) => {
            let error = fail.err(e);
            if !error.is_not_found() {
                return Err(error);
            }
        }
    }
    let tags = room
        .tags
        .iter()
        .filter_map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect();
    let created = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust_policy().to_string())
        .description(format!(
            "chatroom-operator: function role of ChatRoom {}",
            room.display
        ))
        .set_permissions_boundary(room.settings.permissions_boundary.clone())
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    Ok((
        created.role.map(|r| r.arn).unwrap_or_default(),
        Outcome::Created,
    ))
}

/// Writes the inline policy when it is missing or differs from `wanted`.
pub async fn converge_policy(room: &RoomContext<'_>, wanted: &Value) -> Result<Outcome, AwsError> {
    let iam = &room.clients.iam;
    let name = &room.names.role;
    let fail = On::new(Step::Role, name);
    let current = match iam
        .get_role_policy()
        .role_name(name)
        .policy_name(INLINE_POLICY)
        .send()
        .await
    {
        Ok(found) => Some(parse_policy(found.policy_document())),
        Err(e) => {
            let error = fail.err(e);
            if !error.is_not_found() {
                return Err(error);
            }
            None
        }
    };
    if current.as_ref() == Some(wanted) {
        return Ok(Outcome::Unchanged);
    }
    iam.put_role_policy()
        .role_name(name)
        .policy_name(INLINE_POLICY)
        .policy_document(wanted.to_string())
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    Ok(if current.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    })
}

/// IAM returns policy documents URL-encoded (RFC 3986: `+` is a plus, not a space).
fn parse_policy(document: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(Value::Null)
}

pub async fn delete(room: &RoomContext<'_>) -> Result<bool, AwsError> {
    let iam = &room.clients.iam;
    let name = &room.names.role;
    let gone = |result: Result<(), AwsError>| match result {
        Err(error) if error.is_not_found() => Ok(false),
        Err(error) => Err(error),
        Ok(()) => Ok(true),
    };
    let fail = On::new(Step::Role, name);
    gone(
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(INLINE_POLICY)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail.err(e)),
    )?;
    gone(
        iam.delete_role()
            .role_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail.err(e)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_no_wildcard_resource() {
        let policy = room_policy(&PolicyScope {
            partition: "aws",
            region: "eu-west-1",
            account: "123456789012",
            table_arn: "arn:aws:dynamodb:eu-west-1:123456789012:table/chatroom-default-lobby-x",
            api_id: "abc123",
            stage: "dev",
            log_group: "/aws/lambda/chatroom-default-lobby-x",
        });
        for statement in policy["Statement"].as_array().unwrap() {
            let resource = statement["Resource"].as_str().unwrap();
            assert_ne!(resource, "*");
            assert!(resource.contains("123456789012"), "{resource}");
        }
        assert_eq!(
            policy["Statement"][1]["Resource"],
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/dev/POST/@connections/*"
        );
    }

    #[test]
    fn iam_documents_are_url_decoded() {
        assert_eq!(parse_policy("%7B%22a%22%3A1%7D"), json!({"a": 1}));
        assert_eq!(parse_policy(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(
            parse_policy("%7B%22r%22%3A%22a+b%22%7D"),
            json!({"r": "a+b"})
        );
    }
}
