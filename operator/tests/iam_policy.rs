//! docs/iam-policy.json grants every AWS action the operator performs: the provider runs every
//! path it has (create, steady state, drift repair, new code, PITR, provisioned capacity,
//! delete) against moto, the SDK interceptor records each call, and each call's IAM actions
//! must be in the policy.

mod aws_support;

use std::collections::BTreeSet;

use aws_support::{provider, provider_with_zip, room, sdk};
use chatroom_operator::crd::BillingMode;
use chatroom_operator::providers::aws::Call;

/// The IAM actions one API call needs. API Gateway v2 authorises by HTTP verb; creating with
/// tags needs the service's tagging action too; CreateFunction passes the role.
fn actions(call: &Call) -> Vec<String> {
    let op = call.operation.as_str();
    match call.service.as_str() {
        "DynamoDB" => {
            let mut actions = vec![format!("dynamodb:{op}")];
            if op == "CreateTable" {
                actions.push("dynamodb:TagResource".into());
            }
            actions
        }
        "Lambda" => {
            let mut actions = vec![format!("lambda:{op}")];
            if op == "CreateFunction" {
                actions.extend(["lambda:TagResource".into(), "iam:PassRole".into()]);
            }
            if op == "UpdateFunctionConfiguration" {
                actions.push("iam:PassRole".into());
            }
            actions
        }
        "IAM" => {
            let mut actions = vec![format!("iam:{op}")];
            if op == "CreateRole" {
                actions.push("iam:TagRole".into());
            }
            actions
        }
        "ApiGatewayV2" => {
            let verb = if op.starts_with("Get") {
                "GET"
            } else if op.starts_with("Create") {
                "POST"
            } else if op.starts_with("Update") {
                "PATCH"
            } else if op.starts_with("Delete") {
                "DELETE"
            } else {
                panic!("no HTTP verb known for ApiGatewayV2 {op}")
            };
            let mut actions = vec![format!("apigateway:{verb}")];
            if op == "CreateApi" {
                actions.push("apigateway:TagResource".into());
            }
            actions
        }
        other => {
            panic!("the operator called a service the policy test does not know: {other} {op}")
        }
    }
}

fn granted() -> BTreeSet<String> {
    let path = chatroom_testkit::repo_root().join("docs/iam-policy.json");
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut granted = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        let resources = match &statement["Resource"] {
            serde_json::Value::String(one) => vec![one.clone()],
            many => many
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect(),
        };
        assert!(
            resources.iter().all(|r| r != "*"),
            "a bare * resource in {statement}"
        );
        match &statement["Action"] {
            serde_json::Value::String(one) => {
                granted.insert(one.clone());
            }
            many => granted.extend(
                many.as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned()),
            ),
        }
    }
    granted
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn the_policy_grants_every_action_the_operator_performs() {
    let first = provider().await;
    let mut room = room("iam");
    room.spec.connection_table.point_in_time_recovery = true;
    assert!(first.converge(&room).await.failure().is_none());
    assert!(first.converge(&room).await.failure().is_none());

    // Drift of every kind the provider repairs.
    let sdk = sdk().await;
    let names = aws_support::names(&room);
    aws_sdk_lambda::Client::new(&sdk)
        .delete_function()
        .function_name(&names.function)
        .send()
        .await
        .unwrap();
    room.spec.message_route = "say".into();
    room.spec.function.memory_mb = 256;
    room.spec.connection_table.billing_mode = BillingMode::Provisioned;
    room.spec.connection_table.read_capacity = Some(2);
    room.spec.connection_table.write_capacity = Some(2);
    room.spec.route_selection_expression = "$request.body.kind".into();
    room.spec.stage = "prod".into();
    assert!(
        first.converge(&room).await.failure().is_none(),
        "{:?}",
        first.converge(&room).await.failure()
    );
    let upgraded = provider_with_zip(b"new code").await;
    assert!(upgraded.converge(&room).await.failure().is_none());
    upgraded.delete(&room).await.unwrap();

    let granted = granted();
    let mut performed: BTreeSet<String> = BTreeSet::new();
    for call in first
        .calls()
        .calls()
        .iter()
        .chain(upgraded.calls().calls().iter())
    {
        performed.extend(actions(call));
    }
    let missing: Vec<&String> = performed.iter().filter(|a| !granted.contains(*a)).collect();
    assert!(missing.is_empty(), "docs/iam-policy.json lacks {missing:?}");
    assert!(
        performed.len() >= 30,
        "the test exercised {} actions: {performed:?}",
        performed.len()
    );
}
