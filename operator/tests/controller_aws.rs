//! The controller with the AWS provider, against moto and an in-process API server.

mod aws_support;
mod kube_support;

use std::sync::Arc;

use aws_support::{Inventory, provider, room};
use chatroom_operator::controller::reconcile_room;
use chatroom_operator::crd::{ChatRoom, DeletionPolicy};
use chatroom_operator::reconcile::Provider;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_support::{context, status_patch, with_finalizer};

fn deleting(mut room: ChatRoom) -> ChatRoom {
    room.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    room
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_room_is_created_reported_ready_and_torn_down_on_deletion() {
    let provider = Provider::Aws(Arc::new(provider().await));
    let room = with_finalizer(room("controller"));
    let (ctx, api) = context(provider.clone(), &room);

    reconcile_room(Arc::new(room.clone()), ctx.clone())
        .await
        .unwrap();

    let metrics = ctx.metrics.encode();
    for call in [
        r#"service="DynamoDB",operation="CreateTable",outcome="success""#,
        r#"service="Lambda",operation="CreateFunction",outcome="success""#,
    ] {
        assert!(
            metrics.contains(&format!("chatroom_aws_requests_total{{{call}}} 1")),
            "{call} in:\n{metrics}"
        );
    }
    let sent = api.settled().await;
    let status = &status_patch(&sent).body["status"];
    assert!(
        status["websocketUrl"]
            .as_str()
            .unwrap()
            .starts_with("wss://"),
        "{status}"
    );
    for part in ["Ready", "TableReady", "FunctionReady", "ApiReady"] {
        let condition = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == part)
            .unwrap();
        assert_eq!(condition["status"], "True", "{part}: {condition}");
    }
    let reasons: Vec<&str> = sent
        .iter()
        .filter(|s| s.is_event())
        .map(|s| s.body["reason"].as_str().unwrap())
        .collect();
    // Table, API, role (its policy folds into the role's Event), log group, function,
    // integration, routes, permission, stage.
    assert_eq!(
        reasons.iter().filter(|r| **r == "Created").count(),
        9,
        "one Event per created part: {reasons:?}"
    );
    assert_eq!(reasons.last(), Some(&"Ready"));
    Inventory::of(&room).await.assert_complete("onMessage");

    let (ctx, api) = context(provider, &room);
    reconcile_room(Arc::new(deleting(room.clone())), ctx)
        .await
        .unwrap();
    assert!(
        Inventory::of(&room).await.is_empty(),
        "{:#?}",
        Inventory::of(&room).await
    );
    let sent = api.settled().await;
    assert!(
        sent.last().unwrap().is_object_patch(),
        "the finalizer goes last: {sent:#?}"
    );
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn with_retain_the_table_survives_the_rooms_deletion() {
    let provider = Provider::Aws(Arc::new(provider().await));
    let mut room = with_finalizer(room("controller-retain"));
    room.spec.connection_table.deletion_policy = DeletionPolicy::Retain;
    let (ctx, _api) = context(provider.clone(), &room);
    reconcile_room(Arc::new(room.clone()), ctx).await.unwrap();

    let (ctx, _api) = context(provider, &room);
    reconcile_room(Arc::new(deleting(room.clone())), ctx)
        .await
        .unwrap();

    let left = Inventory::of(&room).await;
    assert!(
        left.table && left.apis.is_empty() && !left.function && !left.role,
        "{left:#?}"
    );
    let sdk = aws_support::sdk().await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .delete_table()
        .table_name(aws_support::names(&room).table)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn an_aws_error_shows_in_the_condition_message() {
    let provider = Provider::Aws(Arc::new(provider().await));
    let mut room = with_finalizer(room("controller-error"));
    room.spec.function.role_arn = Some("arn:aws:iam::123456789012:role/chatroom-not-there".into());
    let (ctx, api) = context(provider.clone(), &room);

    reconcile_room(Arc::new(room.clone()), ctx).await.unwrap();

    let sent = api.settled().await;
    let status = &status_patch(&sent).body["status"];
    let function = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "FunctionReady")
        .unwrap();
    assert_eq!(function["status"], "False");
    assert_eq!(function["reason"], "InvalidParameterValueException");
    assert!(
        function["message"]
            .as_str()
            .unwrap()
            .contains("cannot be assumed by Lambda"),
        "{function}"
    );
    let warning = sent
        .iter()
        .find(|s| s.is_event() && s.body["type"] == "Warning")
        .expect("a warning");
    assert_eq!(warning.body["reason"], "InvalidParameterValueException");
    let (ctx, _api) = context(provider, &room);
    reconcile_room(Arc::new(deleting(room)), ctx).await.unwrap();
}
