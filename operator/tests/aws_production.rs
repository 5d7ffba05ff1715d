//! Production rooms against moto: `spec.auth.jwt` becomes a REQUEST authorizer on `$connect`
//! (the room's own function, which gets the settings in its environment), `spec.accessLog`
//! stage access logs into a log group of the room's own, `spec.domain` a custom domain mapped
//! to the stage. The authorizer and the domain go when the spec drops them; access logs stop,
//! and their group stays until the room's delete, which leaves nothing.

mod aws_support;

use aws_sdk_apigatewayv2::types::{AuthorizationType, AuthorizerType};
use aws_support::{
    Inventory, converge, function_environment, jwt, names, provider, room, sdk, status_of,
};
use chatroom_operator::crd::{AccessLogSpec, ChatRoom, DomainSpec};
use chatroom_operator::providers::aws::AwsProvider;

/// `$connect`'s authorization type and authorizer id.
async fn connect_route(
    apigw: &aws_sdk_apigatewayv2::Client,
    api: &str,
) -> (AuthorizationType, Option<String>) {
    let connect = aws_support::connect_route(apigw, api).await;
    (
        connect
            .authorization_type()
            .cloned()
            .unwrap_or(AuthorizationType::None),
        connect.authorizer_id().map(str::to_owned),
    )
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_room_with_auth_guards_connect_with_its_function_as_request_authorizer() {
    let provider = provider().await;
    let mut room = room("guarded");
    room.spec.auth = Some(jwt());
    let names = names(&room);

    let converged = provider.converge(&room).await;
    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    let status = status_of(&converged);
    let api = status.api_id.clone().unwrap();
    let function_arn = status.function_arn.clone().unwrap();
    let apigw = aws_sdk_apigatewayv2::Client::new(&sdk().await);

    let (authorization, authorizer_id) = connect_route(&apigw, &api).await;
    assert_eq!(authorization, AuthorizationType::Custom);
    let authorizer_id = authorizer_id.expect("$connect names its authorizer");
    let authorizer = apigw
        .get_authorizer()
        .api_id(&api)
        .authorizer_id(&authorizer_id)
        .send()
        .await
        .unwrap();
    assert_eq!(authorizer.authorizer_type(), Some(&AuthorizerType::Request));
    assert_eq!(
        authorizer.identity_source(),
        ["route.request.querystring.token"]
    );
    assert!(
        authorizer
            .authorizer_uri()
            .is_some_and(|uri| uri.ends_with(&format!("functions/{function_arn}/invocations"))),
        "{:?}",
        authorizer.authorizer_uri()
    );
    let environment = function_environment(&names.function).await;
    assert_eq!(environment["AUTH_ISSUER"], "https://login.example.com/");
    assert_eq!(environment["AUTH_AUDIENCES"], "chat");
    assert_eq!(environment["AUTH_IDENTITY_SOURCE"], "querystring.token");
    // Other routes stay open: only `$connect` can have an authorizer.
    let routes = apigw.get_routes().api_id(&api).send().await.unwrap();
    for route in routes
        .items()
        .iter()
        .filter(|r| r.route_key() != Some("$connect"))
    {
        assert_ne!(route.authorization_type(), Some(&AuthorizationType::Custom));
    }

    // Steady state: nothing changes.
    room.status = Some(status);
    provider.calls().clear();
    let again = provider.converge(&room).await;
    assert!(again.failure().is_none(), "{:?}", again.failure());
    assert_eq!(provider.calls().mutating(), []);

    // Auth off: `$connect` opens and the authorizer goes.
    room.spec.auth = None;
    room.metadata.generation = Some(2);
    let off = provider.converge(&room).await;
    assert!(off.failure().is_none(), "{:?}", off.failure());
    // NONE detaches the authorizer (moto_server_plus.py does as AWS does), and only then can
    // it be deleted: API Gateway refuses to delete an authorizer a route names.
    assert_eq!(
        connect_route(&apigw, &api).await,
        (AuthorizationType::None, None)
    );
    let gone = apigw
        .get_authorizer()
        .api_id(&api)
        .authorizer_id(&authorizer_id)
        .send()
        .await;
    assert!(gone.is_err(), "the authorizer was deleted: {gone:?}");

    room.spec.auth = Some(jwt());
    assert!(provider.converge(&room).await.failure().is_none());
    provider.delete(&room).await.unwrap();
    let left = Inventory::of(&room).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn access_logs_go_to_a_log_group_of_the_rooms_own_with_the_asked_retention() {
    let provider = provider().await;
    let mut room = room("logged");
    room.spec.access_log = Some(AccessLogSpec { retention_days: 30 });

    converge(&provider, &mut room).await;
    let api = room.status.as_ref().and_then(|s| s.api_id.clone()).unwrap();
    let sdk = sdk().await;
    let stages = aws_sdk_apigatewayv2::Client::new(&sdk)
        .get_stages()
        .api_id(&api)
        .send()
        .await
        .unwrap();
    let settings = stages.items()[0]
        .access_log_settings()
        .expect("the stage logs access");
    let group = names(&room).access_log_group();
    assert!(
        settings
            .destination_arn()
            .is_some_and(|arn| arn.ends_with(&format!(":log-group:{group}"))),
        "{settings:?}"
    );
    let format: serde_json::Value = serde_json::from_str(settings.format().unwrap()).unwrap();
    for field in [
        "requestId",
        "connectionId",
        "eventType",
        "routeKey",
        "status",
        "error",
        "integrationLatency",
    ] {
        assert!(format.get(field).is_some(), "{field} is logged: {format}");
    }
    assert_eq!(Inventory::of(&room).await.access_log_group, Some(30));

    reconcile(&provider, &mut room).await;
    assert_eq!(provider.calls().mutating(), []);

    provider.delete(&room).await.unwrap();
    let left = Inventory::of(&room).await;
    assert_eq!(
        left.access_log_group, None,
        "the access log group went with the room"
    );
    assert!(left.is_empty(), "{left:#?}");
}

/// The operations `provider` sent since its calls were last cleared that changed something.
fn mutations(provider: &AwsProvider) -> Vec<String> {
    let calls = provider.calls().mutating();
    calls.into_iter().map(|call| call.operation).collect()
}

/// One reconcile from a clean call log; the room keeps the status it reports.
async fn reconcile(provider: &AwsProvider, room: &mut ChatRoom) {
    provider.calls().clear();
    converge(provider, room).await;
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn access_logs_turned_on_and_off_for_a_room_that_exists_change_its_stage_in_place() {
    let provider = provider().await;
    let mut room = room("relogged");
    let group = names(&room).access_log_group();
    converge(&provider, &mut room).await;
    let api = room.status.as_ref().and_then(|s| s.api_id.clone()).unwrap();
    let apigw = aws_sdk_apigatewayv2::Client::new(&sdk().await);
    let stage_logs_to = |apigw: aws_sdk_apigatewayv2::Client, api: String| async move {
        let stages = apigw.get_stages().api_id(api).send().await.unwrap();
        let settings = stages.items()[0].access_log_settings().cloned();
        settings.and_then(|s| s.destination_arn().map(str::to_owned))
    };
    assert_eq!(stage_logs_to(apigw.clone(), api.clone()).await, None);

    room.spec.access_log = Some(AccessLogSpec { retention_days: 7 });
    reconcile(&provider, &mut room).await;
    let logging = ["CreateLogGroup", "PutRetentionPolicy", "UpdateStage"];
    assert_eq!(mutations(&provider), logging);
    let destination = stage_logs_to(apigw.clone(), api.clone()).await;
    assert!(
        destination
            .as_deref()
            .is_some_and(|arn| arn.ends_with(&format!(":log-group:{group}"))),
        "{destination:?}"
    );
    reconcile(&provider, &mut room).await;
    assert_eq!(
        mutations(&provider),
        Vec::<String>::new(),
        "steady once logging"
    );

    room.spec.access_log = None;
    reconcile(&provider, &mut room).await;
    assert_eq!(mutations(&provider), ["DeleteAccessLogSettings"]);
    assert_eq!(stage_logs_to(apigw.clone(), api.clone()).await, None);
    reconcile(&provider, &mut room).await;
    assert_eq!(
        mutations(&provider),
        Vec::<String>::new(),
        "steady once off"
    );
    let kept = Inventory::of(&room).await.access_log_group;
    assert_eq!(
        kept,
        Some(7),
        "what was logged ages out under its retention"
    );

    // What was logged stays until its retention or the room's delete, which takes the group.
    provider.delete(&room).await.unwrap();
    let left = Inventory::of(&room).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_custom_domain_maps_to_the_stage_while_callbacks_stay_on_execute_api() {
    let provider = provider().await;
    let mut room = room("domained");
    let domain_name = format!("chat-{}.example.com", std::process::id());
    room.spec.domain = Some(DomainSpec {
        name: domain_name.clone(),
        certificate_arn: "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d".into(),
        base_path: "lobby".into(),
    });
    let names = names(&room);

    let converged = provider.converge(&room).await;
    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    let status = status_of(&converged);
    assert_eq!(
        status.websocket_url.as_deref(),
        Some(format!("wss://{domain_name}/lobby").as_str())
    );
    let callback = status.callback_url.clone().unwrap();
    assert!(callback.contains(".execute-api."), "{callback}");
    assert_eq!(status.domain_name.as_deref(), Some(domain_name.as_str()));
    assert!(status.domain_target.is_some(), "{status:?}");
    let sdk = sdk().await;
    let apigw = aws_sdk_apigatewayv2::Client::new(&sdk);
    let mappings = apigw
        .get_api_mappings()
        .domain_name(&domain_name)
        .send()
        .await
        .unwrap();
    let mapping = &mappings.items()[0];
    assert_eq!(mapping.api_id(), status.api_id.as_deref());
    assert_eq!(mapping.stage(), Some(room.spec.stage.as_str()));
    assert_eq!(mapping.api_mapping_key(), Some("lobby"));
    let environment = function_environment(&names.function).await;
    assert_eq!(environment["CALLBACK_URL"], callback);

    room.status = Some(status);
    provider.calls().clear();
    let again = provider.converge(&room).await;
    assert!(again.failure().is_none(), "{:?}", again.failure());
    assert_eq!(provider.calls().mutating(), []);

    // Dropped from the spec, the domain goes and the URL is execute-api's again.
    room.spec.domain = None;
    room.metadata.generation = Some(2);
    room.status = Some(status_of(&again));
    let dropped = provider.converge(&room).await;
    assert!(dropped.failure().is_none(), "{:?}", dropped.failure());
    let status = status_of(&dropped);
    assert!(
        status
            .websocket_url
            .as_deref()
            .is_some_and(|u| u.contains(".execute-api.")),
        "{status:?}"
    );
    assert_eq!(status.domain_name, None);
    assert!(
        apigw
            .get_domain_name()
            .domain_name(&domain_name)
            .send()
            .await
            .is_err(),
        "the dropped domain was deleted"
    );

    provider.delete(&room).await.unwrap();
    let left = Inventory::of(&room).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_room_with_auth_a_domain_and_access_logs_has_all_three_and_leaves_nothing() {
    let provider = provider().await;
    let mut room = room("production");
    let domain_name = format!("prod-{}.example.com", std::process::id());
    room.spec.auth = Some(jwt());
    room.spec.access_log = Some(AccessLogSpec { retention_days: 14 });
    room.spec.domain = Some(DomainSpec {
        name: domain_name.clone(),
        certificate_arn: "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d".into(),
        base_path: String::new(),
    });

    let converged = provider.converge(&room).await;
    assert!(converged.failure().is_none(), "{:?}", converged.failure());
    let status = status_of(&converged);
    let api = status.api_id.clone().unwrap();
    assert_eq!(
        status.websocket_url.as_deref(),
        Some(format!("wss://{domain_name}").as_str())
    );
    let sdk = sdk().await;
    let apigw = aws_sdk_apigatewayv2::Client::new(&sdk);
    assert_eq!(
        connect_route(&apigw, &api).await.0,
        AuthorizationType::Custom
    );
    let stages = apigw.get_stages().api_id(&api).send().await.unwrap();
    assert!(stages.items()[0].access_log_settings().is_some());
    let mappings = apigw
        .get_api_mappings()
        .domain_name(&domain_name)
        .send()
        .await
        .unwrap();
    assert_eq!(mappings.items()[0].api_id(), Some(api.as_str()));

    room.status = Some(status);
    provider.delete(&room).await.unwrap();
    assert!(
        apigw
            .get_domain_name()
            .domain_name(&domain_name)
            .send()
            .await
            .is_err()
    );
    let left = Inventory::of(&room).await;
    assert!(left.is_empty(), "{left:#?}");
}
