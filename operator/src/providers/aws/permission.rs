//! Lets API Gateway invoke the function, from this API only: one statement in the function's
//! resource policy.

use aws_sdk_lambda::Client;
use serde_json::Value;

use super::RoomContext;
use super::change::{Change, Converged, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};

pub const STATEMENT_ID: &str = "chatroom-apigateway-invoke";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredPermission {
    /// `arn:{partition}:execute-api:{region}:{account}:{apiId}/*`
    pub source_arn: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermissionField {
    SourceArn,
}

pub fn desired(partition: &str, region: &str, account: &str, api_id: &str) -> DesiredPermission {
    DesiredPermission {
        source_arn: format!("arn:{partition}:execute-api:{region}:{account}:{api_id}/*"),
    }
}

/// `observed` is the operator's statement in the function's policy, if there is one. A
/// statement for another source (an API the room had before) cannot be edited: it is replaced.
pub fn diff(observed: Option<&Value>, desired: &DesiredPermission) -> Vec<Change<PermissionField>> {
    match observed {
        None => vec![Change::Create],
        Some(statement) if statement.to_string().contains(&desired.source_arn) => Vec::new(),
        Some(_) => vec![Change::Replace(PermissionField::SourceArn)],
    }
}

pub async fn converge(
    room: &RoomContext<'_>,
    desired: &DesiredPermission,
) -> Result<Converged<()>, AwsError> {
    let lambda = &room.clients.lambda;
    let function = &room.names.function;
    let fail = On::new(Step::Permission, function);
    let observed = observe(lambda, function).await?;
    let changes = diff(observed.as_ref(), desired);
    for change in &changes {
        if matches!(change, Change::Replace(_)) {
            lambda
                .remove_permission()
                .function_name(function)
                .statement_id(STATEMENT_ID)
                .send()
                .await
                .map_err(|e| fail.err(e))?;
        }
        lambda
            .add_permission()
            .function_name(function)
            .statement_id(STATEMENT_ID)
            .action("lambda:InvokeFunction")
            .principal("apigateway.amazonaws.com")
            .source_arn(&desired.source_arn)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
    }
    Ok(Converged {
        output: (),
        outcome: outcome(&changes),
    })
}

/// The operator's statement in the function's resource policy.
pub async fn observe(lambda: &Client, function: &str) -> Result<Option<Value>, AwsError> {
    let fail = On::new(Step::Permission, function);
    let found = lambda.get_policy().function_name(function).send().await;
    let policy = absent_if_not_found(found.map_err(|e| fail.err(e)))?
        .and_then(|found| found.policy)
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    Ok(policy.and_then(|policy| {
        policy["Statement"]
            .as_array()?
            .iter()
            .find(|statement| statement["Sid"] == STATEMENT_ID)
            .cloned()
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_missing_permission_is_added_and_one_for_another_api_replaced() {
        let wanted = desired("aws", "eu-west-1", "123456789012", "abc123");
        assert_eq!(
            wanted.source_arn,
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/*"
        );
        assert_eq!(diff(None, &wanted), [Change::Create]);
        let statement = |source: &str| {
            json!({
                "Sid": STATEMENT_ID,
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Condition": {"ArnLike": {"AWS:SourceArn": source}}
            })
        };
        assert_eq!(diff(Some(&statement(&wanted.source_arn)), &wanted), []);
        assert_eq!(
            diff(
                Some(&statement(
                    "arn:aws:execute-api:eu-west-1:123456789012:old/*"
                )),
                &wanted
            ),
            [Change::Replace(PermissionField::SourceArn)]
        );
    }
}
