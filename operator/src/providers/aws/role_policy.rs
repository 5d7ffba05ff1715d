//! The execution role's one inline policy, scoped to this room: its table, its API stage's
//! `@connections`, its own log group. No `*` resource.

use aws_sdk_iam::Client;
use serde_json::{Value, json};

use super::RoomContext;
use super::change::{Change, Converged, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};
use super::naming::INLINE_POLICY;

/// What the policy is scoped to.
pub struct PolicyScope<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub table_arn: &'a str,
    /// The history table, for a room that keeps history.
    pub history_table_arn: Option<&'a str>,
    /// The channel table, for a room with channels.
    pub channel_table_arn: Option<&'a str>,
    pub api_id: &'a str,
    pub stage: &'a str,
    pub log_group: &'a str,
    /// The room's own function, which hands pages of a large broadcast to copies of itself.
    pub function: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyField {
    Document,
}

/// Exactly what the handlers use: PutItem / DeleteItem / Scan / GetItem / UpdateItem on the
/// table (PutItem and Query on the history table, when there is one; the table's five but Scan
/// on the channel table, Query instead, when the room has channels), PostToConnection on this
/// stage, invoking the room's own function (a large broadcast's pages), and writing to the
/// function's own log group, which the operator creates.
pub fn desired(scope: &PolicyScope<'_>) -> Value {
    let PolicyScope {
        partition,
        region,
        account,
        table_arn,
        history_table_arn,
        channel_table_arn,
        api_id,
        stage,
        log_group,
        function,
    } = scope;
    // GetItem and UpdateItem: the room's version row, read by every message and bumped by
    // every arrival and departure (and a connection's set of channels).
    let mut statements = vec![json!({
        "Sid": "ConnectionTable",
        "Effect": "Allow",
        "Action": ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:GetItem", "dynamodb:UpdateItem"],
        "Resource": table_arn
    })];
    if let Some(channel_table_arn) = channel_table_arn {
        statements.push(json!({
            "Sid": "ChannelTable",
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:GetItem", "dynamodb:UpdateItem"],
            "Resource": channel_table_arn
        }));
    }
    if let Some(history_table_arn) = history_table_arn {
        statements.push(json!({
            "Sid": "HistoryTable",
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem", "dynamodb:Query"],
            "Resource": history_table_arn
        }));
    }
    statements.push(json!({
        "Sid": "PostToConnections",
        "Effect": "Allow",
        "Action": "execute-api:ManageConnections",
        "Resource": format!("arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/POST/@connections/*")
    }));
    statements.push(json!({
        "Sid": "FanoutToItself",
        "Effect": "Allow",
        "Action": "lambda:InvokeFunction",
        "Resource": format!("arn:{partition}:lambda:{region}:{account}:function:{function}")
    }));
    statements.push(json!({
        "Sid": "FunctionLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": format!("arn:{partition}:logs:{region}:{account}:log-group:{log_group}:*")
    }));
    json!({
        "Version": "2012-10-17",
        "Statement": statements
    })
}

pub fn diff(observed: Option<&Value>, desired: &Value) -> Vec<Change<PolicyField>> {
    match observed {
        None => vec![Change::Create],
        Some(current) if current != desired => vec![Change::Update(PolicyField::Document)],
        Some(_) => Vec::new(),
    }
}

/// Writes the policy when it is missing or differs from what the room needs.
pub async fn converge(
    room: &RoomContext<'_>,
    scope: &PolicyScope<'_>,
) -> Result<Converged<()>, AwsError> {
    let iam = &room.clients.iam;
    let role = &room.names.role;
    let desired = desired(scope);
    let observed = observe(iam, role).await?;
    let changes = diff(observed.as_ref(), &desired);
    if !changes.is_empty() {
        iam.put_role_policy()
            .role_name(role)
            .policy_name(INLINE_POLICY)
            .policy_document(desired.to_string())
            .send()
            .await
            .map_err(|e| On::new(Step::Role, role).err(e))?;
    }
    Ok(Converged {
        output: (),
        outcome: outcome(&changes),
    })
}

pub async fn observe(iam: &Client, role: &str) -> Result<Option<Value>, AwsError> {
    let fail = On::new(Step::Role, role);
    let found = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(INLINE_POLICY)
        .send()
        .await;
    Ok(absent_if_not_found(found.map_err(|e| fail.err(e)))?
        .map(|found| parse_policy(found.policy_document())))
}

/// IAM returns policy documents URL-encoded (RFC 3986: `+` is a plus, not a space).
fn parse_policy(document: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(Value::Null)
}

pub async fn delete(room: &RoomContext<'_>) -> Result<bool, AwsError> {
    let role = &room.names.role;
    let deleted = room
        .clients
        .iam
        .delete_role_policy()
        .role_name(role)
        .policy_name(INLINE_POLICY)
        .send()
        .await;
    Ok(absent_if_not_found(deleted.map_err(|e| On::new(Step::Role, role).err(e)))?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> PolicyScope<'static> {
        PolicyScope {
            partition: "aws",
            region: "eu-west-1",
            account: "123456789012",
            table_arn: "arn:aws:dynamodb:eu-west-1:123456789012:table/chatroom-default-lobby-x",
            history_table_arn: None,
            channel_table_arn: None,
            api_id: "abc123",
            stage: "dev",
            log_group: "/aws/lambda/chatroom-default-lobby-x",
            function: "chatroom-default-lobby-x",
        }
    }

    #[test]
    fn the_policy_names_no_wildcard_resource() {
        let policy = desired(&scope());
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
    fn a_room_with_history_may_write_and_query_its_history_table_only() {
        let history =
            "arn:aws:dynamodb:eu-west-1:123456789012:table/chatroom-default-lobby-x-history";
        let policy = desired(&PolicyScope {
            history_table_arn: Some(history),
            ..scope()
        });
        let statement = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "HistoryTable")
            .expect("a statement for the history table");
        assert_eq!(statement["Resource"], history);
        assert_eq!(
            statement["Action"],
            json!(["dynamodb:PutItem", "dynamodb:Query"])
        );
        let without = desired(&scope());
        assert!(
            !without.to_string().contains("HistoryTable"),
            "no history, no statement"
        );
    }

    #[test]
    fn a_room_with_channels_may_update_its_connections_and_use_its_channel_table_only() {
        let channels =
            "arn:aws:dynamodb:eu-west-1:123456789012:table/chatroom-default-lobby-x-channels";
        let policy = desired(&PolicyScope {
            channel_table_arn: Some(channels),
            ..scope()
        });
        let statement = |sid: &str| {
            policy["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["Sid"] == sid)
                .cloned()
                .unwrap_or_else(|| panic!("no {sid} statement"))
        };
        assert_eq!(statement("ChannelTable")["Resource"], channels);
        assert_eq!(
            statement("ChannelTable")["Action"],
            json!([
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem"
            ])
        );
        let without = desired(&scope());
        assert!(!without.to_string().contains("ChannelTable"));
    }

    #[test]
    fn the_function_may_invoke_itself_and_no_other() {
        let policy = desired(&scope());
        let invoking: Vec<&Value> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s.to_string().contains("lambda:"))
            .collect();
        assert_eq!(invoking.len(), 1);
        assert_eq!(invoking[0]["Action"], "lambda:InvokeFunction");
        assert_eq!(
            invoking[0]["Resource"],
            "arn:aws:lambda:eu-west-1:123456789012:function:chatroom-default-lobby-x"
        );
    }

    #[test]
    fn a_missing_or_edited_policy_is_written_again() {
        let wanted = desired(&scope());
        assert_eq!(diff(None, &wanted), [Change::Create]);
        assert_eq!(diff(Some(&wanted), &wanted), []);
        let mut edited = wanted.clone();
        edited["Statement"][0]["Resource"] = json!("*");
        assert_eq!(
            diff(Some(&edited), &wanted),
            [Change::Update(PolicyField::Document)]
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
