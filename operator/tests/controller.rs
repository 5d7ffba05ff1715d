//! The controller's reconcile, driven against an in-process API server (tower-test), in the
//! style of kube-rs controller-rs: each scenario asserts the requests it made.

mod kube_support;

use std::sync::Arc;
use std::time::Duration;

use chatroom_operator::controller::{MAX_BACKOFF, error_policy, reconcile_room};
use chatroom_operator::crd::ChatRoomSpec;
use chatroom_operator::gateway::{Gateway, GatewayConfig, Limits};
use chatroom_operator::providers::local::LocalProvider;
use chatroom_operator::reconcile::{Provider, reconcile};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube_support::{context, lobby, status_patch, with_finalizer};

fn local() -> (Provider, Gateway) {
    let gateway = Gateway::new(GatewayConfig::local(
        "http://127.0.0.1:18080".parse().unwrap(),
        "http://127.0.0.1:18081".parse().unwrap(),
        Limits::default(),
    ));
    (
        Provider::Local(LocalProvider::new(gateway.clone())),
        gateway,
    )
}

#[tokio::test]
async fn a_new_room_gets_the_finalizer_before_anything_is_created() {
    let (provider, gateway) = local();
    let room = lobby(ChatRoomSpec::default());
    let (ctx, api) = context(provider, &with_finalizer(room.clone()));

    let action = reconcile_room(Arc::new(room), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    let sent = api.settled().await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].is_object_patch(), "{sent:#?}");
    assert!(
        sent[0].body.to_string().contains("chatroom.dev/cleanup"),
        "{}",
        sent[0].body
    );
    assert!(
        gateway.room_keys().is_empty(),
        "no room before the finalizer is in place"
    );
}

#[tokio::test]
async fn a_room_with_its_finalizer_gets_its_resources_then_a_ready_status_with_urls() {
    let (provider, gateway) = local();
    let room = with_finalizer(lobby(ChatRoomSpec::default()));
    let (ctx, api) = context(provider, &room);

    let action = reconcile_room(Arc::new(room), ctx.clone()).await.unwrap();

    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_eq!(gateway.room_keys().len(), 1, "the room is served");
    let sent = api.settled().await;
    let patch = status_patch(&sent);
    assert!(
        patch.path.contains("fieldManager=chatroom-operator") && patch.path.contains("force=true"),
        "server-side apply: {}",
        patch.path
    );
    let status = &patch.body["status"];
    assert_eq!(
        status["websocketUrl"],
        "ws://127.0.0.1:18080/default/lobby/dev"
    );
    assert_eq!(
        status["callbackUrl"], "http://127.0.0.1:18081/default/lobby/dev/@connections",
        "on the management listener"
    );
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "True");
    assert!(
        patch.body.get("spec").is_none(),
        "the controller never writes spec"
    );
    let events: Vec<_> = sent.iter().filter(|s| s.is_event()).collect();
    assert_eq!(events.len(), 1, "{sent:#?}");
    assert_eq!(events[0].body["reason"], "Ready");
    assert!(
        ctx.metrics
            .encode()
            .contains("chatroom_rooms{ready=\"true\"} 1"),
        "{}",
        ctx.metrics.encode()
    );
}

#[tokio::test]
async fn a_second_reconcile_of_an_unchanged_ready_room_writes_nothing() {
    let (provider, _gateway) = local();
    let mut room = with_finalizer(lobby(ChatRoomSpec::default()));
    room.status = Some(reconcile(&provider, &room).await.status);
    let (ctx, api) = context(provider, &room);

    let action = reconcile_room(Arc::new(room), ctx).await.unwrap();

    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_eq!(
        api.settled().await.len(),
        0,
        "no status write, no event: {:#?}",
        api.requests()
    );
}

#[tokio::test]
async fn a_deleted_room_is_torn_down_then_its_finalizer_removed() {
    let (provider, gateway) = local();
    let mut room = with_finalizer(lobby(ChatRoomSpec::default()));
    room.status = Some(reconcile(&provider, &room).await.status);
    assert_eq!(gateway.room_keys().len(), 1);
    room.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    let (ctx, api) = context(provider, &room);

    reconcile_room(Arc::new(room), ctx).await.unwrap();

    assert!(
        gateway.room_keys().is_empty(),
        "the room is no longer served"
    );
    let sent = api.settled().await;
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(
        sent[0].is_event() && sent[0].body["reason"] == "Deleted",
        "{sent:#?}"
    );
    assert!(
        sent[1].is_object_patch(),
        "then the finalizer is removed: {sent:#?}"
    );
    assert!(
        sent[1].body.to_string().contains("remove"),
        "{}",
        sent[1].body
    );
}

#[tokio::test]
async fn an_invalid_spec_is_not_ready_naming_the_field_and_makes_no_cloud_call() {
    let (provider, gateway) = local();
    let room = with_finalizer(lobby(ChatRoomSpec {
        stage: "two words".into(),
        ..ChatRoomSpec::default()
    }));
    let (ctx, api) = context(provider, &room);

    let action = reconcile_room(Arc::new(room), ctx).await.unwrap();

    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(300)),
        "waits for a spec change or the resync"
    );
    assert!(gateway.room_keys().is_empty(), "nothing was started");
    let sent = api.settled().await;
    let ready = &status_patch(&sent).body["status"]["conditions"][0];
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("InvalidSpec"))
    );
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.stage:"),
        "{ready}"
    );
    let warning = sent.iter().find(|s| s.is_event()).expect("a warning event");
    assert_eq!(
        (
            warning.body["type"].as_str(),
            warning.body["reason"].as_str()
        ),
        (Some("Warning"), Some("InvalidSpec"))
    );
}

#[tokio::test]
async fn repeated_failures_back_off_exponentially_up_to_a_cap() {
    let (provider, _gateway) = local();
    let room = Arc::new(with_finalizer(lobby(ChatRoomSpec::default())));
    let (ctx, _api) = context(provider, &room);
    let error = chatroom_operator::controller::Error::Cleanup {
        room: "default/lobby".into(),
        message: "throttled".into(),
    };

    let delays: Vec<Action> = (0..12)
        .map(|_| error_policy(room.clone(), &error, ctx.clone()))
        .collect();

    assert_eq!(delays[0], Action::requeue(Duration::from_secs(2)));
    assert_eq!(delays[1], Action::requeue(Duration::from_secs(4)));
    assert_eq!(delays[2], Action::requeue(Duration::from_secs(8)));
    assert_eq!(delays[11], Action::requeue(MAX_BACKOFF));
    assert!(
        ctx.metrics
            .encode()
            .contains("chatroom_reconcile_failures_total{reason=\"CleanupFailed\"} 12"),
        "{}",
        ctx.metrics.encode()
    );
}
