//! The `chatroom-operator run` binary against an in-memory API server over HTTP: reconciling
//! into a working room, leader election with a standby taking over, and the SIGTERM bound.

mod apiserver;
mod binary;
mod rbac;
mod support;

use std::time::Duration;

use apiserver::ApiServer;
use apiserver::replica::{
    NAMESPACE, PATIENCE, Replica, chatroom_requests, ready_url, used_within_rbac,
};
use serde_json::json;
use support::{connect, next_json, send_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_turns_a_cluster_room_into_a_working_chat_and_stops_cleanly_on_sigterm() {
    let cluster = ApiServer::new("one");
    cluster.add_room(NAMESPACE, "lobby", json!({}));
    let kubeconfig = cluster.kubeconfig("one", NAMESPACE).await;
    let replica = Replica::local(&kubeconfig, "one", &[]);

    cluster
        .wait_until("lobby is Ready with a URL", PATIENCE, |c| {
            ready_url(c, "lobby").is_some()
        })
        .await;
    let room = cluster.room(NAMESPACE, "lobby").unwrap();
    assert_eq!(
        room["metadata"]["finalizers"],
        json!(["chatroom.dev/cleanup"])
    );
    let url = ready_url(&cluster, "lobby").unwrap();
    assert_eq!(
        url,
        format!("ws://127.0.0.1:{}/{NAMESPACE}/lobby/dev", replica.gateway)
    );
    assert_eq!(
        cluster
            .status(NAMESPACE, "lobby")
            .unwrap()
            .observed_generation,
        Some(1)
    );

    // The URL in the status is a working room.
    let mut ada = connect(&format!("{url}?name=ada")).await;
    send_text(
        &mut ada,
        r#"{"action":"onMessage","message":"from the cluster"}"#,
    )
    .await;
    let frame = next_json(&mut ada).await;
    assert_eq!(
        (frame["from"].as_str(), frame["message"].as_str()),
        (Some("ada"), Some("from the cluster"))
    );

    let ready = replica.get("/readyz").await.unwrap();
    assert_eq!(ready.0, 200);
    assert_eq!(replica.leader_gauge().await, "chatroom_leader 1");
    let events = cluster.events();
    assert!(!events.is_empty(), "no Event was recorded");
    for event in &events {
        assert_eq!(event["regarding"]["name"], "lobby", "{event}");
    }
    assert!(
        cluster
            .requests()
            .iter()
            .all(|r| !r.path.contains("/leases")),
        "without --leader-elect no Lease is touched"
    );

    let (status, took, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "exit {status:?} after {took:?}:\n{log}");
    assert!(log.contains("controller stopped"), "{log}");
    assert_eq!(
        support::close_code(&mut ada).await,
        1001,
        "clients are told the server went away"
    );
    let used = used_within_rbac(&cluster);
    for needed in [
        ("chatrooms", "list"),
        ("chatrooms", "watch"),
        ("chatrooms", "patch"),
        ("chatrooms/status", "patch"),
        ("events", "create"),
    ] {
        assert!(
            used.contains(&(needed.0.into(), needed.1.into())),
            "{needed:?} not seen in {used:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_and_a_deletion_in_the_cluster_reach_the_gateway() {
    let cluster = ApiServer::new("changes");
    cluster.add_room(NAMESPACE, "lobby", json!({}));
    let replica = Replica::local(&cluster.kubeconfig("one", NAMESPACE).await, "one", &[]);
    cluster
        .wait_until("lobby is Ready", PATIENCE, |c| {
            ready_url(c, "lobby").is_some()
        })
        .await;
    let first_url = ready_url(&cluster, "lobby").unwrap();
    let mut ada = connect(&first_url).await;

    cluster.update_spec(NAMESPACE, "lobby", json!({ "stage": "v2" }));
    cluster
        .wait_until("the status follows generation 2", PATIENCE, |c| {
            c.status(NAMESPACE, "lobby")
                .is_some_and(|s| s.observed_generation == Some(2))
                && ready_url(c, "lobby").is_some()
        })
        .await;
    let second_url = ready_url(&cluster, "lobby").unwrap();
    assert_eq!(
        second_url,
        format!("ws://127.0.0.1:{}/{NAMESPACE}/lobby/v2", replica.gateway)
    );
    connect(&second_url).await;

    cluster.delete_room(NAMESPACE, "lobby");
    cluster
        .wait_until("the finalizer is off and the room gone", PATIENCE, |c| {
            c.room(NAMESPACE, "lobby").is_none()
        })
        .await;
    // The room no longer exists on the gateway: its clients are closed, its URL refuses.
    let closed = tokio::time::timeout(PATIENCE, support::close_code(&mut ada)).await;
    assert!(
        closed.is_ok(),
        "a client of the deleted room stays connected"
    );
    let refused = tokio_tungstenite::connect_async(second_url.as_str()).await;
    assert!(
        refused.is_err(),
        "the deleted room still accepts connections"
    );

    let (status, _, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}:\n{log}");
    used_within_rbac(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_ready_but_idle_until_the_leader_stops_then_takes_over() {
    let cluster = ApiServer::new("election");
    cluster.add_room(NAMESPACE, "lobby", json!({}));
    let election = ["--leader-elect", "--lease-duration", "3s"];
    let first = Replica::local(
        &cluster.kubeconfig("first", NAMESPACE).await,
        "first",
        &election,
    );
    cluster
        .wait_until("first leads and lobby is Ready", PATIENCE, |c| {
            c.lease_holder(NAMESPACE, "chatroom-operator").as_deref() == Some("first")
                && ready_url(c, "lobby").is_some()
        })
        .await;

    let second = Replica::local(
        &cluster.kubeconfig("second", NAMESPACE).await,
        "second",
        &election,
    );
    // Ready while standing by, or a rolling update would wait for it forever.
    second.wait_ready().await;
    assert_eq!(second.leader_gauge().await, "chatroom_leader 0");
    cluster.add_room(NAMESPACE, "garden", json!({ "stage": "v1" }));
    cluster
        .wait_until("the leader reconciles garden", PATIENCE, |c| {
            ready_url(c, "garden").is_some()
        })
        .await;
    // The leader renews its lease meanwhile; the standby must still not act.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(chatroom_requests(&cluster, "second"), Vec::<String>::new());
    assert_eq!(
        cluster
            .lease_holder(NAMESPACE, "chatroom-operator")
            .as_deref(),
        Some("first")
    );
    assert!(
        cluster
            .requests_via("second")
            .iter()
            .any(|r| r.path.ends_with("/leases/chatroom-operator")),
        "the standby competes for the lease"
    );

    let (status, _, log) = first.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}:\n{log}");
    assert!(log.contains("released the leader lease"), "{log}");

    cluster
        .wait_until(
            "second takes the lease over",
            Duration::from_secs(10),
            |c| c.lease_holder(NAMESPACE, "chatroom-operator").as_deref() == Some("second"),
        )
        .await;
    cluster.add_room(NAMESPACE, "patio", json!({}));
    cluster
        .wait_until("the new leader reconciles patio", PATIENCE, |c| {
            ready_url(c, "patio").is_some()
        })
        .await;
    let patio = chatroom_requests(&cluster, "second");
    assert!(
        patio.iter().any(|r| r.starts_with(
            "PATCH /apis/chatroom.dev/v1alpha1/namespaces/chatrooms/chatrooms/patio/status"
        )),
        "{patio:#?}"
    );
    assert_eq!(second.leader_gauge().await, "chatroom_leader 1");
    let (status, _, log) = second.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}:\n{log}");
    let lease_verbs: Vec<String> = used_within_rbac(&cluster)
        .into_iter()
        .filter(|(resource, _)| resource == "leases")
        .map(|(_, verb)| verb)
        .collect();
    assert_eq!(
        lease_verbs,
        ["create", "get", "patch"],
        "the chart's lease Role grants these"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_and_exits_non_zero() {
    let cluster = ApiServer::new("lost");
    cluster.add_room(NAMESPACE, "lobby", json!({}));
    let mut leader = Replica::local(
        &cluster.kubeconfig("leader", NAMESPACE).await,
        "leader",
        &["--leader-elect", "--lease-duration", "3s"],
    );
    cluster
        .wait_until("the leader serves lobby", PATIENCE, |c| {
            ready_url(c, "lobby").is_some()
        })
        .await;
    let mut ada = connect(&ready_url(&cluster, "lobby").unwrap()).await;

    cluster.steal_lease(NAMESPACE, "chatroom-operator", "someone-else");
    // It notices at its next renewal, within the lease duration.
    let exit = leader.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(exit.status.code(), Some(1), "{}", exit.stderr);
    assert!(
        exit.stderr
            .contains("lost the leader lease; exiting so that a new leader takes over"),
        "{}",
        exit.stderr
    );
    assert_eq!(
        support::close_code(&mut ada).await,
        1001,
        "the rooms it served close cleanly"
    );
    assert_eq!(
        cluster
            .lease_holder(NAMESPACE, "chatroom-operator")
            .as_deref(),
        Some("someone-else"),
        "it does not release a lease that is no longer its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_in_flight_reconciles_the_shutdown_timeout_and_no_more() {
    let cluster = ApiServer::new("stuck");
    cluster.never_answer_status_of("stuck");
    cluster.add_room(NAMESPACE, "stuck", json!({}));
    let replica = Replica::local(
        &cluster.kubeconfig("one", NAMESPACE).await,
        "one",
        &["--shutdown-timeout", "2s"],
    );
    cluster
        .wait_until("the status write of stuck is in flight", PATIENCE, |c| {
            c.requests()
                .iter()
                .any(|r| r.method == "PATCH" && r.path.ends_with("/chatrooms/stuck/status"))
        })
        .await;

    let (status, took, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}:\n{log}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "exited {took:?} after SIGTERM; expected the 2 s bound:\n{log}"
    );
    assert!(log.contains("did not finish in time"), "{log}");
}

/// The in-cluster gateway: clients on one port, `@connections` on another behind SigV4 with
/// the keys the chart's Secret holds, as a back end with the AWS SDK calls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_cluster_connections_answers_only_the_secrets_keys_and_only_on_its_own_port() {
    use apiserver::replica::{MANAGEMENT_KEY_ID, MANAGEMENT_SECRET};
    use aws_sdk_apigatewaymanagement::primitives::Blob;

    let cluster = ApiServer::new("one");
    // One connection's worth of tokens: ada's first message is throttled, and API Gateway's
    // answer to it tells her her connection id, as a back end would learn it from $connect.
    cluster.add_room(
        NAMESPACE,
        "lobby",
        json!({"throttling": {"burstLimit": 1, "rateLimit": 0.01}}),
    );
    let replica = Replica::local(&cluster.kubeconfig("one", NAMESPACE).await, "one", &[]);
    cluster
        .wait_until("lobby is Ready", PATIENCE, |c| {
            ready_url(c, "lobby").is_some()
        })
        .await;
    let status = cluster.status(NAMESPACE, "lobby").unwrap();
    let callback = status.callback_url.unwrap();
    let endpoint = format!(
        "http://127.0.0.1:{}/{NAMESPACE}/lobby/dev",
        replica.management
    );
    assert_eq!(callback, format!("{endpoint}/@connections"));

    let mut ada = connect(&format!(
        "{}?name=ada",
        ready_url(&cluster, "lobby").unwrap()
    ))
    .await;
    send_text(&mut ada, r#"{"action":"onMessage","message":"hi"}"#).await;
    let throttled = next_json(&mut ada).await;
    assert_eq!(throttled["message"], "Too Many Requests", "{throttled}");
    let id = throttled["connectionId"].as_str().unwrap().to_owned();
    let path = format!("/{NAMESPACE}/lobby/dev/@connections/{id}");

    let management = std::net::SocketAddr::from(([127, 0, 0, 1], replica.management));
    let (status, headers, _) = support::http(management, "POST", &path, b"unsigned").await;
    assert_eq!(status, 403);
    assert_eq!(
        support::header(&headers, "x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    let clients = std::net::SocketAddr::from(([127, 0, 0, 1], replica.gateway));
    assert_eq!(support::http(clients, "POST", &path, b"x").await.0, 404);

    let backend = |secret: &str| {
        let config = aws_sdk_apigatewaymanagement::Config::builder()
            .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
            .region(aws_sdk_apigatewaymanagement::config::Region::new(
                "us-east-1",
            ))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                MANAGEMENT_KEY_ID,
                secret,
                None,
                None,
                "the chart's Secret",
            ))
            .build();
        aws_sdk_apigatewaymanagement::Client::from_conf(config)
    };
    let wrong = backend("not-the-secret")
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("forged"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata::code(&wrong),
        Some("InvalidSignatureException"),
        "{wrong:?}"
    );
    backend(MANAGEMENT_SECRET)
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new(r#"{"from":"the back end"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(next_json(&mut ada).await["from"], "the back end");
    let connection = backend(MANAGEMENT_SECRET)
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        connection.identity().and_then(|i| i.source_ip()),
        Some("127.0.0.1")
    );
    let (status, _, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{log}");
}
