//! The AWS provider against moto: a fresh apply creates exactly the room's resources, a second
//! apply changes nothing, drift is repaired, new handler code rolls out, delete leaves nothing.

mod aws_support;

use std::collections::BTreeSet;

use aws_support::{
    Inventory, function_environment, names, provider, provider_with_zip, room, sdk, status_of,
};
use chatroom_operator::crd::{
    BackendEvent, BackendSpec, ChannelsSpec, DeletionPolicy, HistorySpec, SecretKeyRef,
};
use chatroom_operator::providers::aws::{AwsProvider, HandlerZip, Removal, Settings};

const TABLE_READY: &str = "TableReady";
const FUNCTION_READY: &str = "FunctionReady";

fn condition<'a>(
    status: &'a chatroom_operator::crd::ChatRoomStatus,
    kind: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {status:#?}"))
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn apply_creates_exactly_the_rooms_resources_with_urls_tags_and_a_scoped_policy() {
    let provider = provider().await;
    let room = room("inventory");

    let converged = provider.converge(&room).await;

    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    let inventory = Inventory::of(&room).await;
    inventory.assert_complete("onMessage");
    let api_id = &inventory.apis[0];
    let status = &status_of(&converged);
    assert_eq!(
        status.websocket_url.as_deref(),
        Some(format!("wss://{api_id}.execute-api.us-east-1.amazonaws.com/dev").as_str())
    );
    assert_eq!(
        status.callback_url.as_deref(),
        Some(
            format!("https://{api_id}.execute-api.us-east-1.amazonaws.com/dev/@connections")
                .as_str()
        )
    );
    assert_eq!(
        status.table_name.as_deref(),
        Some(names(&room).table.as_str())
    );
    assert_eq!(condition(status, "Ready").status, "True");
    for part in [TABLE_READY, FUNCTION_READY, "ApiReady"] {
        assert_eq!(condition(status, part).status, "True", "{part}");
    }

    let policy = inventory.policy.unwrap();
    let resources: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Resource"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        resources
            .iter()
            .all(|r| r != "*" && r.contains("123456789012")),
        "{resources:?}"
    );
    assert!(
        resources
            .iter()
            .any(|r| r.ends_with(&format!("table/{}", names(&room).table))),
        "{resources:?}"
    );
    assert!(
        resources
            .iter()
            .any(|r| r.contains(&format!("{api_id}/dev/POST/@connections/*"))),
        "{resources:?}"
    );

    let apis = aws_sdk_apigatewayv2::Client::new(&sdk().await)
        .get_apis()
        .send()
        .await
        .unwrap();
    let tags = apis
        .items()
        .iter()
        .find(|a| a.api_id() == Some(api_id.as_str()))
        .unwrap()
        .tags()
        .unwrap()
        .clone();
    assert_eq!(tags["chatroom.dev/namespace"], "default");
    assert_eq!(
        tags["chatroom.dev/name"],
        room.metadata.name.clone().unwrap()
    );
    assert_eq!(tags["chatroom.dev/cluster"], "test-cluster");
    provider.delete(&room).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_second_apply_makes_no_mutating_call_and_reads_each_resource_once() {
    let provider = provider().await;
    let mut room = room("steady");
    let first = provider.converge(&room).await;
    assert!(first.failure().is_none());
    // As the controller does: the next reconcile sees the status the first one wrote, and
    // finds the API by the id recorded there instead of listing every API.
    room.status = Some(status_of(&first));
    provider.calls().clear();

    let converged = provider.converge(&room).await;

    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    assert!(converged.applied.is_empty(), "{:?}", converged.applied);
    assert_eq!(
        provider.calls().mutating(),
        [],
        "a steady-state apply mutates nothing"
    );
    let reads: Vec<String> = provider
        .calls()
        .calls()
        .iter()
        .map(|c| c.operation.clone())
        .collect();
    let unique: BTreeSet<&String> = reads.iter().collect();
    assert_eq!(
        unique.len(),
        reads.len(),
        "each resource is read once: {reads:?}"
    );
    assert_eq!(
        unique.into_iter().cloned().collect::<Vec<_>>(),
        [
            "DescribeLogGroups",
            "DescribeTable",
            "DescribeTimeToLive",
            "GetApi",
            "GetFunction",
            "GetIntegrations",
            "GetPolicy",
            "GetRole",
            "GetRolePolicy",
            "GetRoutes",
            "GetStages",
            "ListTagsForResource",
            "ListTagsOfResource"
        ]
    );
    provider.delete(&room).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn resources_deleted_behind_its_back_are_restored() {
    let provider = provider().await;
    let room = room("drift");
    assert!(provider.converge(&room).await.failure().is_none());
    let sdk = sdk().await;
    let names = names(&room);
    let apigw = aws_sdk_apigatewayv2::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);

    let api_id = Inventory::of(&room).await.apis[0].clone();
    let routes = apigw.get_routes().api_id(&api_id).send().await.unwrap();
    let default_route = routes
        .items()
        .iter()
        .find(|r| r.route_key() == Some("$default"))
        .unwrap();
    apigw
        .delete_route()
        .api_id(&api_id)
        .route_id(default_route.route_id().unwrap())
        .send()
        .await
        .unwrap();
    assert!(provider.converge(&room).await.failure().is_none());
    Inventory::of(&room).await.assert_complete("onMessage");

    lambda
        .remove_permission()
        .function_name(&names.function)
        .statement_id("chatroom-apigateway-invoke")
        .send()
        .await
        .unwrap();
    assert!(provider.converge(&room).await.failure().is_none());
    Inventory::of(&room).await.assert_complete("onMessage");

    lambda
        .delete_function()
        .function_name(&names.function)
        .send()
        .await
        .unwrap();
    assert!(provider.converge(&room).await.failure().is_none());
    Inventory::of(&room).await.assert_complete("onMessage");

    dynamodb
        .delete_table()
        .table_name(&names.table)
        .send()
        .await
        .unwrap();
    assert!(provider.converge(&room).await.failure().is_none());
    let inventory = Inventory::of(&room).await;
    inventory.assert_complete("onMessage");
    assert_eq!(
        inventory.apis,
        [api_id],
        "the same API throughout: never a second one"
    );
    provider.delete(&room).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn changing_the_message_route_replaces_the_old_route() {
    let provider = provider().await;
    let mut room = room("reroute");
    assert!(provider.converge(&room).await.failure().is_none());
    room.spec.message_route = "sendMessage".into();
    room.metadata.generation = Some(2);

    let converged = provider.converge(&room).await;

    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    Inventory::of(&room).await.assert_complete("sendMessage");
    let environment = function_environment(&names(&room).function).await;
    assert_eq!(environment["MESSAGE_ROUTE"], "sendMessage");
    provider.delete(&room).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn new_handler_code_rolls_out_and_the_same_code_does_not() {
    let room = room("rollout");
    let first = provider_with_zip(b"bootstrap.zip v1").await;
    assert!(first.converge(&room).await.failure().is_none());

    let same = provider_with_zip(b"bootstrap.zip v1").await;
    assert!(same.converge(&room).await.failure().is_none());
    assert!(
        !same
            .calls()
            .mutating()
            .iter()
            .any(|c| c.operation == "UpdateFunctionCode")
    );

    let upgraded = provider_with_zip(b"bootstrap.zip v2").await;
    assert!(upgraded.converge(&room).await.failure().is_none());
    let updates: Vec<String> = upgraded
        .calls()
        .mutating()
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert_eq!(updates, ["UpdateFunctionCode"]);
    upgraded.delete(&room).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_room_with_history_gets_its_table_routes_and_policy_and_loses_them_when_it_stops() {
    let provider = provider().await;
    let mut room = room("history");
    room.spec.history = Some(HistorySpec {
        messages: 20,
        retention: "24h".into(),
    });
    let names = names(&room);

    let converged = provider.converge(&room).await;

    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    let status = status_of(&converged);
    assert_eq!(
        status.history_table_name.as_deref(),
        Some(names.history_table.as_str())
    );
    let inventory = Inventory::of(&room).await;
    assert_eq!(
        inventory.history_table,
        Some((
            vec!["room".to_owned(), "messageId".to_owned()],
            Some("expiresAt".to_owned())
        )),
        "partition key the room, sort key the message id, TTL on expiresAt"
    );
    assert!(
        ["history", "who"]
            .iter()
            .all(|r| inventory.routes.contains(&(*r).to_owned())),
        "{:?}",
        inventory.routes
    );
    let policy = inventory.policy.clone().unwrap();
    let resources: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Resource"].as_str())
        .collect();
    for table in [&names.table, &names.history_table] {
        assert!(
            resources
                .iter()
                .any(|r| r.ends_with(&format!("table/{table}"))),
            "the role's policy names {table}: {resources:?}"
        );
    }
    let environment = function_environment(&names.function).await;
    assert_eq!(environment["HISTORY_TABLE"], names.history_table);
    assert_eq!(environment["HISTORY_MESSAGES"], "20");
    assert_eq!(environment["HISTORY_RETENTION_SECONDS"], "86400");

    // Steady state with history on: nothing changes.
    room.status = Some(status);
    provider.calls().clear();
    let again = provider.converge(&room).await;
    assert!(again.failure().is_none(), "{:?}", again.failure());
    assert_eq!(provider.calls().mutating(), []);

    // History off: its table, route and statement go.
    room.spec.history = None;
    room.metadata.generation = Some(2);
    let off = provider.converge(&room).await;
    assert!(off.failure().is_none(), "{:?}", off.failure());
    assert_eq!(status_of(&off).history_table_name, None);
    let inventory = Inventory::of(&room).await;
    assert_eq!(inventory.history_table, None, "{inventory:#?}");
    inventory.assert_complete("onMessage");
    assert!(
        !inventory
            .policy
            .unwrap()
            .to_string()
            .contains(&names.history_table),
        "the policy no longer names the history table"
    );

    // On again, then the room goes: nothing is left, the history table included.
    room.spec.history = Some(HistorySpec {
        messages: 5,
        retention: "1h".into(),
    });
    assert!(provider.converge(&room).await.failure().is_none());
    assert!(Inventory::of(&room).await.history_table.is_some());
    provider.delete(&room).await.unwrap();
    let left = Inventory::of(&room).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_room_with_channels_gets_its_table_routes_and_policy_and_loses_them_when_it_stops() {
    let provider = provider().await;
    let mut room = room("channels");
    room.spec.channels = Some(ChannelsSpec {
        max_per_connection: 4,
    });
    let names = names(&room);

    let converged = provider.converge(&room).await;
    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    let status = status_of(&converged);
    assert_eq!(
        status.channel_table_name.as_deref(),
        Some(names.channel_table.as_str())
    );
    let inventory = Inventory::of(&room).await;
    assert_eq!(
        inventory.channel_table,
        Some((
            vec!["channelShard".to_owned(), "connectionId".to_owned()],
            Some("expiresAt".to_owned())
        )),
        "partition key the channel's shard, sort key the connection, TTL on expiresAt"
    );
    for route in ["subscribe", "unsubscribe"] {
        assert!(
            inventory.routes.contains(&route.to_owned()),
            "{:?}",
            inventory.routes
        );
    }
    let policy = inventory.policy.clone().unwrap().to_string();
    assert!(
        policy.contains(&format!("table/{}\"", names.channel_table)),
        "{policy}"
    );
    let environment = function_environment(&names.function).await;
    assert_eq!(environment["CHANNEL_TABLE"], names.channel_table);
    assert_eq!(environment["CHANNELS_PER_CONNECTION"], "4");

    // Steady state with channels on: nothing changes.
    room.status = Some(status);
    provider.calls().clear();
    let again = provider.converge(&room).await;
    assert!(again.failure().is_none(), "{:?}", again.failure());
    assert_eq!(provider.calls().mutating(), []);

    // Channels off: the table, both routes and the statements go.
    room.spec.channels = None;
    room.metadata.generation = Some(2);
    let off = provider.converge(&room).await;
    assert!(off.failure().is_none(), "{:?}", off.failure());
    assert_eq!(status_of(&off).channel_table_name, None);
    let inventory = Inventory::of(&room).await;
    inventory.assert_complete("onMessage");
    let policy = inventory.policy.unwrap().to_string();
    assert!(
        !policy.contains(&names.channel_table) && !policy.contains("ChannelTable"),
        "{policy}"
    );

    // On again, then the room goes: nothing is left, the channel table included.
    room.spec.channels = Some(ChannelsSpec::default());
    room.status = Some(status_of(&off));
    assert!(provider.converge(&room).await.failure().is_none());
    assert!(Inventory::of(&room).await.channel_table.is_some());
    provider.delete(&room).await.unwrap();
    let left = Inventory::of(&room).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_room_with_a_backend_gets_its_routes_and_key_is_steady_and_leaves_nothing() {
    let secrets = std::env::temp_dir().join(format!("chatroom-aws-secrets-{}", std::process::id()));
    std::fs::create_dir_all(secrets.join("default/chat-backend")).unwrap();
    std::fs::write(secrets.join("default/chat-backend/hmac"), "k3y\n").unwrap();
    let provider = aws_support::provider_with_secrets(
        chatroom_operator::secrets::SecretSource::Dir(secrets.clone()),
    )
    .await;
    let mut room = room("backend");
    room.spec.backend = Some(BackendSpec {
        url: "https://backend.example.com/chat".into(),
        routes: vec!["notify".into(), "order".into()],
        events: vec![BackendEvent::Connect, BackendEvent::Disconnect],
        secret_ref: Some(SecretKeyRef {
            name: "chat-backend".into(),
            key: "hmac".into(),
        }),
        timeout_seconds: 5,
    });
    let names = names(&room);

    let converged = provider.converge(&room).await;
    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    let inventory = Inventory::of(&room).await;
    // The backend's routes go to the room's one integration, which its one permission covers:
    // the function forwards them, so nothing else is made.
    assert_eq!(inventory.integrations, 1, "{inventory:#?}");
    for route in ["notify", "order"] {
        assert!(
            inventory.routes.contains(&route.to_owned()),
            "{:?}",
            inventory.routes
        );
    }
    assert!(inventory.permission_source.is_some(), "{inventory:#?}");
    let environment = function_environment(&names.function).await;
    assert_eq!(
        environment["BACKEND_URL"],
        "https://backend.example.com/chat"
    );
    assert_eq!(environment["BACKEND_ROUTES"], "notify,order");
    assert_eq!(environment["BACKEND_EVENTS"], "connect,disconnect");
    assert_eq!(environment["BACKEND_SECRET"], "k3y");
    assert_eq!(environment["BACKEND_TIMEOUT_SECONDS"], "5");
    // The role grows by nothing: the function already posts to its own connections.
    let policy = inventory.policy.clone().unwrap();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(
        sids,
        [
            "ConnectionTable",
            "PostToConnections",
            "FanoutToItself",
            "FunctionLogs"
        ]
    );

    // Steady: the second apply changes nothing.
    room.status = Some(status_of(&converged));
    provider.calls().clear();
    let again = provider.converge(&room).await;
    assert!(again.failure().is_none(), "{:?}", again.failure());
    assert_eq!(provider.calls().mutating(), []);

    // A rotated key reaches the function; a plain-http backend is refused before any call.
    std::fs::write(secrets.join("default/chat-backend/hmac"), "rotated").unwrap();
    assert!(provider.converge(&room).await.failure().is_none());
    assert_eq!(
        function_environment(&names.function).await["BACKEND_SECRET"],
        "rotated"
    );
    let mut plain = room.clone();
    plain.spec.backend.as_mut().unwrap().url = "http://127.0.0.1:9/chat".into();
    provider.calls().clear();
    let refused = provider.converge(&plain).await;
    let failure = refused.failure().expect("refused");
    assert!(
        failure.permanent && failure.message.starts_with("spec.backend.url"),
        "{failure:?}"
    );
    assert_eq!(provider.calls().mutating(), []);

    // The backend goes: its routes and settings go with it; then the room: nothing is left.
    room.spec.backend = None;
    room.metadata.generation = Some(2);
    assert!(provider.converge(&room).await.failure().is_none());
    Inventory::of(&room).await.assert_complete("onMessage");
    assert!(
        !function_environment(&names.function)
            .await
            .contains_key("BACKEND_URL")
    );
    provider.delete(&room).await.unwrap();
    let left = Inventory::of(&room).await;
    assert!(left.is_empty(), "{left:#?}");
    std::fs::remove_dir_all(secrets).unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn delete_leaves_nothing_and_retain_keeps_exactly_the_table() {
    let provider = provider().await;
    let room = room("teardown");
    assert!(provider.converge(&room).await.failure().is_none());
    provider.delete(&room).await.unwrap();
    assert!(
        Inventory::of(&room).await.is_empty(),
        "{:#?}",
        Inventory::of(&room).await
    );
    // Deleting what is already gone is done, not an error.
    let again = provider.delete(&room).await.unwrap();
    assert!(
        again.iter().all(|(_, removal)| *removal == Removal::Absent),
        "{again:?}"
    );

    let mut kept = aws_support::room("retain");
    kept.spec.connection_table.deletion_policy = DeletionPolicy::Retain;
    assert!(provider.converge(&kept).await.failure().is_none());
    provider.delete(&kept).await.unwrap();
    let inventory = Inventory::of(&kept).await;
    assert!(inventory.table, "{inventory:#?}");
    assert!(
        inventory.apis.is_empty() && !inventory.function && !inventory.role,
        "{inventory:#?}"
    );
    aws_sdk_dynamodb::Client::new(&sdk().await)
        .delete_table()
        .table_name(names(&kept).table)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn an_aws_error_surfaces_as_a_condition_with_its_code_and_message() {
    let provider = provider().await;
    let mut room = room("badrole");
    room.spec.function.role_arn =
        Some("arn:aws:iam::123456789012:role/chatroom-does-not-exist".into());

    let converged = provider.converge(&room).await;

    let error = converged.failure().expect("the function cannot be created");
    assert_eq!(error.reason, "InvalidParameterValueException");
    let status = status_of(&converged);
    let function = condition(&status, FUNCTION_READY);
    assert_eq!(
        (function.status.as_str(), function.reason.as_str()),
        ("False", "InvalidParameterValueException")
    );
    assert!(
        function.message.contains("cannot be assumed by Lambda"),
        "{}",
        function.message
    );
    assert_eq!(condition(&status, "Ready").status, "False");
    assert_eq!(
        condition(&status, TABLE_READY).status,
        "True",
        "the table before it is fine"
    );
    provider.delete(&room).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_second_cluster_neither_changes_nor_deletes_the_first_clusters_room() {
    let first = provider().await;
    let room = room("twoclusters");
    assert!(first.converge(&room).await.failure().is_none());

    let mut settings = Settings::new(Some(HandlerZip::from_bytes(b"other".to_vec())), "other");
    settings.role_propagation_attempts = 1;
    let endpoint = chatroom_testkit::moto_endpoint();
    let theirs_sdk =
        chatroom_testkit::sdk_config_as(&aws_support::operator_key("other"), Some(&endpoint)).await;
    let second = AwsProvider::new(theirs_sdk, settings);
    let mut theirs = room.clone();
    theirs.spec.connection_table.point_in_time_recovery = true;
    theirs.spec.function.memory_mb = 512;
    theirs.spec.function.log_retention_days = 30;
    let converged = second.converge(&theirs).await;
    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    second.delete(&theirs).await.unwrap();
    assert!(Inventory::in_cluster("other", &room).await.is_empty());

    let inventory = Inventory::of(&room).await;
    inventory.assert_complete("onMessage");
    let sdk = sdk().await;
    let names = names(&room);
    let backups = aws_sdk_dynamodb::Client::new(&sdk)
        .describe_continuous_backups()
        .table_name(&names.table)
        .send()
        .await
        .unwrap();
    let pitr = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_owned());
    assert_ne!(pitr.as_deref(), Some("ENABLED"), "the other cluster's PITR");
    let function = aws_sdk_lambda::Client::new(&sdk)
        .get_function_configuration()
        .function_name(&names.function)
        .send()
        .await
        .unwrap();
    assert_eq!(function.memory_size(), Some(128));
    first.delete(&room).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn resources_with_the_rooms_names_and_another_owners_tags_are_left_alone() {
    let provider = provider().await;
    let room = room("intruded");
    let names = names(&room);
    let sdk = sdk().await;
    let foreign = [
        ("chatroom.dev/managed-by", "chatroom-operator"),
        ("chatroom.dev/cluster", "intruder"),
        ("chatroom.dev/namespace", "default"),
        ("chatroom.dev/name", "intruded"),
    ];
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    chatroom_testkit::create_connection_table(&dynamodb, &names.table, &foreign).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    logs.create_log_group()
        .log_group_name(names.log_group())
        .set_tags(Some(
            foreign
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    let iam = aws_sdk_iam::Client::new(&sdk);
    iam.create_role()
        .role_name(&names.role)
        .assume_role_policy_document("{}")
        .send()
        .await
        .unwrap();

    let converged = provider.converge(&room).await;

    let failure = converged.failure().expect("a conflict");
    assert_eq!(failure.reason, "ConflictingOwner");
    assert!(failure.permanent);
    assert!(
        failure.message.contains("cluster intruder"),
        "{}",
        failure.message
    );
    let status = status_of(&converged);
    assert_eq!(condition(&status, TABLE_READY).status, "False");

    let removals = provider.delete(&room).await.unwrap();
    for step in ["table", "role", "log-group"] {
        assert!(
            removals
                .iter()
                .any(|(s, r)| s.name() == step && matches!(r, Removal::Foreign(_))),
            "{step} was not left alone: {removals:?}"
        );
    }
    let left = Inventory::of(&room).await;
    assert!(
        left.table && left.role && left.log_group.is_some(),
        "{left:#?}"
    );
    let tags = dynamodb
        .list_tags_of_resource()
        .resource_arn(format!(
            "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
            names.table
        ))
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags().iter().any(|t| t.value() == "intruder"),
        "the intruder's tags are untouched"
    );
    dynamodb
        .delete_table()
        .table_name(&names.table)
        .send()
        .await
        .unwrap();
    logs.delete_log_group()
        .log_group_name(names.log_group())
        .send()
        .await
        .unwrap();
    iam.delete_role()
        .role_name(&names.role)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_retained_table_is_adopted_by_the_next_room_of_the_same_name() {
    let provider = provider().await;
    let mut first = room("adopt");
    first.metadata.uid = Some("uid-1".into());
    first.spec.connection_table.deletion_policy = DeletionPolicy::Retain;
    assert!(provider.converge(&first).await.failure().is_none());
    provider.delete(&first).await.unwrap();

    let mut second = first.clone();
    second.metadata.uid = Some("uid-2".into());
    second.spec.connection_table.deletion_policy = DeletionPolicy::Delete;
    let converged = provider.converge(&second).await;

    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    let table = converged
        .applied
        .iter()
        .find(|a| a.resource == "table")
        .expect("the table was retagged");
    assert_eq!(table.to_string(), "table Updated");
    let names = names(&second);
    let tags = aws_sdk_dynamodb::Client::new(&sdk().await)
        .list_tags_of_resource()
        .resource_arn(format!(
            "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
            names.table
        ))
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == "chatroom.dev/uid" && t.value() == "uid-2"),
        "{tags:?}"
    );
    provider.delete(&second).await.unwrap();
    assert!(Inventory::of(&second).await.is_empty());
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_role_the_operator_may_not_pass_is_refused_before_anything_is_made() {
    let provider = provider().await;
    let mut room = room("adminrole");
    room.spec.function.role_arn = Some("arn:aws:iam::123456789012:role/admin".into());

    let converged = provider.converge(&room).await;

    let failure = converged.failure().expect("refused");
    assert_eq!(failure.reason, "RoleNotAllowed");
    assert!(failure.permanent);
    assert!(
        failure.message.contains("--allowed-role-arns"),
        "{}",
        failure.message
    );
    assert!(Inventory::of(&room).await.is_empty(), "nothing was created");
}
