//! Lets API Gateway invoke the function, from this API only.

use serde_json::Value;

use super::errors::{AwsError, On, Step};
use super::{Outcome, RoomContext};

pub const STATEMENT_ID: &str = "chatroom-apigateway-invoke";

pub fn source_arn(partition: &str, region: &str, account: &str, api_id: &str) -> String {
    format!("arn:{partition}:execute-api:{region}:{account}:{api_id}/*")
}

pub async fn converge(room: &RoomContext<'_>, source_arn: &str) -> Result<Outcome, AwsError> {
    let lambda = &room.clients.lambda;
    let name = &room.names.function;
    let fail = On::new(Step::Permission, name);
    let policy = match lambda.get_policy().function_name(name).send().await {
        Ok(found) => found
            .policy
            .and_then(|p| serde_json::from_str::<Value>(&p).ok()),
        Err(e) => {
            let error = fail.err(e);
            if !error.is_not_found() {
                return Err(error);
            }
            None
        }
    };
    let statement = policy
        .as_ref()
        .and_then(|p| p["Statement"].as_array())
        .and_then(|statements| {
            statements
                .iter()
                .find(|s| s["Sid"] == STATEMENT_ID)
                .cloned()
        });
    if let Some(statement) = &statement {
        if statement.to_string().contains(source_arn) {
            return Ok(Outcome::Unchanged);
        }
        lambda
            .remove_permission()
            .function_name(name)
            .statement_id(STATEMENT_ID)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
    }
    lambda
        .add_permission()
        .function_name(name)
        .statement_id(STATEMENT_ID)
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(source_arn)
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    Ok(if statement.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    })
}
