//! `chatroom-operator run` against a real kube-apiserver (scripts/k8s.sh), installed with the
//! chart and signed in as the chart's own ServiceAccount, as a pod of the Deployment would be:
//! a room becomes a working chat, follows spec changes and deletion, leader election on a real
//! Lease, and the chart's RBAC is exactly what the operator uses.

mod binary;
mod cluster;
mod replica;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster::{Cluster, forbidden, rbac_uses};
use replica::{PATIENCE, Replica};
use serde_json::{Value, json};
use support::{connect, next_json, send_text};

/// The operator of one test: the chart in its namespace, and a replica signed in with a token
/// of the chart's ServiceAccount, watching that namespace only (the server is shared).
fn start(cluster: &Cluster, pod: &str, extra: &[&str]) -> (Replica, String) {
    let account = format!("{}-chatroom-operator", cluster.namespace);
    let (kubeconfig, token_id) = cluster.token_kubeconfig(&account, pod);
    let mut args = vec!["--watch-namespace", cluster.namespace.as_str()];
    args.extend_from_slice(extra);
    (Replica::local(&kubeconfig, pod, &args), token_id)
}

const ELECTION: [&str; 3] = ["--leader-elect", "--lease-duration", "3s"];

/// The chart for the local provider with leader election (its Lease Role).
fn install_chart_with_election(cluster: &Cluster) {
    cluster.install_chart(&[
        "--set",
        "provider=local",
        "--set",
        "leaderElection.enabled=true",
    ]);
}

/// The chart with leader election, the room `lobby`, and two replicas: `first` leading with
/// lobby Ready, `second` standing by and ready. Each with its token id.
async fn leader_and_standby(cluster: &Cluster) -> ((Replica, String), (Replica, String)) {
    install_chart_with_election(cluster);
    cluster.add_room("lobby", json!({}));
    let first = start(cluster, "first", &ELECTION);
    cluster
        .wait_until("first leads and lobby is Ready", PATIENCE, |c| {
            c.lease_holder("chatroom-operator").as_deref() == Some("first")
                && c.ready_url("lobby").is_some()
        })
        .await;
    let second = start(cluster, "second", &ELECTION);
    // Ready while standing by, or a rolling update would wait for it forever.
    second.0.wait_ready().await;
    (first, second)
}

fn assert_nothing_forbidden(events: &[Value], log: &str) {
    let refused = forbidden(events);
    assert!(refused.is_empty(), "the API server refused: {refused:#?}");
    assert!(!log.contains("forbidden"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_turns_a_cluster_room_into_a_working_chat_and_stops_cleanly_on_sigterm() {
    let cluster = Cluster::new("run");
    cluster.install_chart(&["--set", "provider=local"]);
    cluster.add_room("lobby", json!({}));
    let (replica, token) = start(&cluster, "one", &[]);

    cluster
        .wait_until("lobby is Ready with a URL", PATIENCE, |c| {
            c.ready_url("lobby").is_some()
        })
        .await;
    let room = cluster.room("lobby").unwrap();
    assert_eq!(
        room["metadata"]["finalizers"],
        json!(["chatroom.dev/cleanup"])
    );
    let url = cluster.ready_url("lobby").unwrap();
    assert_eq!(
        url,
        format!(
            "ws://127.0.0.1:{}/{}/lobby/dev",
            replica.gateway, cluster.namespace
        )
    );
    assert_eq!(
        cluster.status("lobby").unwrap().observed_generation,
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
    let reasons: BTreeSet<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains("Ready"), "{events:#?}");
    for event in &events {
        assert_eq!(event["regarding"]["name"], "lobby", "{event}");
        assert_eq!(event["reportingController"], "chatroom-operator", "{event}");
    }

    let (status, took, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "exit {status:?} after {took:?}:\n{log}");
    assert!(log.contains("controller stopped"), "{log}");
    assert_eq!(
        support::close_code(&mut ada).await,
        1001,
        "clients are told the server went away"
    );
    let requests = cluster.audit_of_tokens(&[&token]);
    assert_nothing_forbidden(&requests, &log);
    assert!(
        rbac_uses(&requests)
            .iter()
            .all(|(_, resource, _)| resource != "leases"),
        "without --leader-elect no Lease is touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_and_a_deletion_in_the_cluster_reach_the_gateway() {
    let cluster = Cluster::new("changes");
    cluster.install_chart(&["--set", "provider=local"]);
    cluster.add_room("lobby", json!({}));
    let (replica, token) = start(&cluster, "one", &[]);
    cluster
        .wait_until("lobby is Ready", PATIENCE, |c| {
            c.ready_url("lobby").is_some()
        })
        .await;
    let first_url = cluster.ready_url("lobby").unwrap();
    let mut ada = connect(&first_url).await;

    cluster.update_spec("lobby", json!({ "stage": "v2" }));
    cluster
        .wait_until("the status follows generation 2", PATIENCE, |c| {
            c.status("lobby")
                .is_some_and(|s| s.observed_generation == Some(2))
                && c.ready_url("lobby").is_some()
        })
        .await;
    let second_url = cluster.ready_url("lobby").unwrap();
    assert_eq!(
        second_url,
        format!(
            "ws://127.0.0.1:{}/{}/lobby/v2",
            replica.gateway, cluster.namespace
        )
    );
    connect(&second_url).await;

    cluster.delete_room("lobby");
    cluster
        .wait_until("the finalizer is off and the room gone", PATIENCE, |c| {
            c.room("lobby").is_none()
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
    assert_nothing_forbidden(&cluster.audit_of_tokens(&[&token]), &log);
}

/// Two replicas of the chart (leader election on) share a real Lease: one leads, the standby
/// does nothing but compete, and takes over when the leader stops. Across the whole run, every
/// rule the chart grants is used and nothing is refused: RBAC exactly sufficient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_ready_but_idle_until_the_leader_stops_then_takes_over() {
    let cluster = Cluster::new("election");
    let ((first, first_token), (second, second_token)) = leader_and_standby(&cluster).await;
    assert_eq!(second.leader_gauge().await, "chatroom_leader 0");
    cluster.add_room("garden", json!({ "stage": "v1" }));
    cluster
        .wait_until("the leader reconciles garden", PATIENCE, |c| {
            c.ready_url("garden").is_some()
        })
        .await;
    // Two changes of one kind: the second Event joins the first one's series (a patch).
    for (generation, stage) in [(2, "v2"), (3, "v3")] {
        cluster.update_spec("garden", json!({ "stage": stage }));
        cluster
            .wait_until("garden follows its spec", PATIENCE, |c| {
                c.status("garden")
                    .is_some_and(|s| s.observed_generation == Some(generation))
            })
            .await;
    }
    // The leader renews its lease meanwhile; the standby must still not act.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let standby = cluster.audit_of_tokens(&[&second_token]);
    let standby_rooms: Vec<_> = rbac_uses(&standby)
        .into_iter()
        .filter(|(group, _, _)| group == "chatroom.dev")
        .collect();
    assert_eq!(standby_rooms, [], "the standby touched rooms");
    assert!(
        rbac_uses(&standby).contains(&(
            "coordination.k8s.io".into(),
            "leases".into(),
            "get".into()
        )),
        "the standby competes for the lease"
    );
    assert_eq!(
        cluster.lease_holder("chatroom-operator").as_deref(),
        Some("first")
    );

    let (status, _, first_log) = first.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}:\n{first_log}");
    assert!(
        first_log.contains("released the leader lease"),
        "{first_log}"
    );
    cluster
        .wait_until(
            "second takes the lease over",
            Duration::from_secs(10),
            |c| c.lease_holder("chatroom-operator").as_deref() == Some("second"),
        )
        .await;
    // patio has a backend whose key is in a Secret: Ready only once the operator read it, and
    // its requests signed with that very key.
    let out = cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "chat-backend",
        "--from-literal=hmac=s3cret",
    ]);
    assert!(out.status.success(), "{}", cluster::stderr(&out));
    let backend = signed_backend("s3cret").await;
    cluster.add_room(
        "patio",
        json!({ "backend": {
            "url": format!("http://{backend}/chat"),
            "routes": ["notify"],
            "secretRef": { "name": "chat-backend", "key": "hmac" },
        } }),
    );
    cluster
        .wait_until("the new leader reconciles patio", PATIENCE, |c| {
            c.ready_url("patio").is_some()
        })
        .await;
    let mut guest = connect(&cluster.ready_url("patio").unwrap()).await;
    send_text(&mut guest, r#"{"action":"notify"}"#).await;
    assert_eq!(
        next_json(&mut guest).await,
        json!({ "type": "ack", "signed": true }),
        "the backend checked the request with the Secret's key"
    );
    assert_eq!(second.leader_gauge().await, "chatroom_leader 1");
    cluster.delete_room("patio");
    cluster
        .wait_until("patio is cleaned up and gone", PATIENCE, |c| {
            c.room("patio").is_none()
        })
        .await;
    let (status, _, second_log) = second.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}:\n{second_log}");

    let requests = cluster.audit_of_tokens(&[&first_token, &second_token]);
    assert_nothing_forbidden(&requests, &(first_log + &second_log));
    let used = rbac_uses(&requests);
    let mut granted = granted_by_chart(&cluster);
    // An Event that repeats on an unchanged room is patched into a series: a drift repaired
    // twice, which tests/run_cluster_aws.rs makes happen; the local provider has no drift.
    let series = ("events.k8s.io".into(), "events".into(), "patch".into());
    assert!(granted.remove(&series));
    assert_eq!(
        used, granted,
        "what the operator did (left) and what the chart grants (right) differ"
    );
}

/// Every (apiGroup, resource, verb) the chart's ClusterRole and Role give the operator, read
/// back from the server.
fn granted_by_chart(cluster: &Cluster) -> BTreeSet<(String, String, String)> {
    let release = format!("{}-chatroom-operator", cluster.namespace);
    let mut granted = BTreeSet::new();
    for (kind, name) in [
        ("clusterrole", release.clone()),
        ("role", format!("{release}-leader-election")),
    ] {
        let out = cluster.kubectl(&["get", kind, &name, "-o", "json"]);
        assert!(out.status.success(), "{}", cluster::stderr(&out));
        let role: Value = serde_json::from_slice(&out.stdout).unwrap();
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        granted.insert((
                            group.as_str().unwrap().to_owned(),
                            resource.as_str().unwrap().to_owned(),
                            verb.as_str().unwrap().to_owned(),
                        ));
                    }
                }
            }
        }
    }
    granted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_and_exits_non_zero() {
    let cluster = Cluster::new("lost");
    install_chart_with_election(&cluster);
    cluster.add_room("lobby", json!({}));
    let (mut leader, _) = start(&cluster, "leader", &ELECTION);
    cluster
        .wait_until("the leader serves lobby", PATIENCE, |c| {
            c.ready_url("lobby").is_some()
        })
        .await;
    let mut ada = connect(&cluster.ready_url("lobby").unwrap()).await;

    cluster.steal_lease("chatroom-operator", "someone-else");
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
        cluster.lease_holder("chatroom-operator").as_deref(),
        Some("someone-else"),
        "it does not release a lease that is no longer its own"
    );
}

/// The in-cluster gateway: clients on one port, `@connections` on another behind SigV4 with
/// the keys the chart's Secret holds, as a back end with the AWS SDK calls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_cluster_connections_answers_only_the_secrets_keys_and_only_on_its_own_port() {
    use aws_sdk_apigatewaymanagement::primitives::Blob;
    use replica::{MANAGEMENT_KEY_ID, MANAGEMENT_SECRET};

    let cluster = Cluster::new("connections");
    cluster.install_chart(&["--set", "provider=local"]);
    // One connection's worth of tokens: ada's first message is throttled, and API Gateway's
    // answer to it tells her her connection id, as a back end would learn it from $connect.
    cluster.add_room(
        "lobby",
        json!({"throttling": {"burstLimit": 1, "rateLimit": 0.01}}),
    );
    let (replica, _) = start(&cluster, "one", &[]);
    cluster
        .wait_until("lobby is Ready", PATIENCE, |c| {
            c.ready_url("lobby").is_some()
        })
        .await;
    let status = cluster.status("lobby").unwrap();
    let namespace = &cluster.namespace;
    let callback = status.callback_url.unwrap();
    let endpoint = format!(
        "http://127.0.0.1:{}/{namespace}/lobby/dev",
        replica.management
    );
    assert_eq!(callback, format!("{endpoint}/@connections"));

    let mut ada = connect(&format!("{}?name=ada", cluster.ready_url("lobby").unwrap())).await;
    send_text(&mut ada, r#"{"action":"onMessage","message":"hi"}"#).await;
    let throttled = next_json(&mut ada).await;
    assert_eq!(throttled["message"], "Too Many Requests", "{throttled}");
    let id = throttled["connectionId"].as_str().unwrap().to_owned();
    let path = format!("/{namespace}/lobby/dev/@connections/{id}");

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

/// Another controller's finalizer on the same room: the operator adds its own beside it and,
/// on deletion, removes only its own (JSON patches that the server checks against the list as
/// it stands), so the room stays until the other controller lets go too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_finalizer_is_kept_and_the_room_waits_for_it() {
    let cluster = Cluster::new("finalizers");
    cluster.install_chart(&["--set", "provider=local"]);
    let room = json!({
        "apiVersion": "chatroom.dev/v1alpha1",
        "kind": "ChatRoom",
        "metadata": { "name": "lobby", "finalizers": ["example.com/audit"] },
        "spec": {},
    });
    let out = cluster.kubectl_with_input(&["create", "-f", "-"], &room.to_string());
    assert!(out.status.success(), "{}", cluster::stderr(&out));
    let (replica, token) = start(&cluster, "one", &[]);
    cluster
        .wait_until("lobby is Ready", PATIENCE, |c| {
            c.ready_url("lobby").is_some()
        })
        .await;
    assert_eq!(
        cluster.room("lobby").unwrap()["metadata"]["finalizers"],
        json!(["example.com/audit", "chatroom.dev/cleanup"])
    );
    let url = cluster.ready_url("lobby").unwrap();

    cluster.delete_room("lobby");
    cluster
        .wait_until("only the other finalizer is left", PATIENCE, |c| {
            c.room("lobby")
                .is_some_and(|r| r["metadata"]["finalizers"] == json!(["example.com/audit"]))
        })
        .await;
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err(),
        "the room is still served after its cleanup"
    );
    cluster.update_finalizers("lobby", json!([]));
    cluster
        .wait_until("the room is gone", PATIENCE, |c| c.room("lobby").is_none())
        .await;

    let (status, _, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}:\n{log}");
    assert!(!log.contains("reconcile failed"), "{log}");
    assert_nothing_forbidden(&cluster.audit_of_tokens(&[&token]), &log);
}

/// A leader that dies without a word (SIGKILL: an OOM kill, a lost node) never releases its
/// Lease: the standby takes it over once it has expired, against the real server's
/// server-side-apply field ownership of the dead holder's fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_killed_leader_within_the_lease() {
    let cluster = Cluster::new("killed");
    let ((first, _), (second, _)) = leader_and_standby(&cluster).await;

    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    cluster
        .wait_until(
            "second takes the dead leader's lease over",
            Duration::from_secs(15),
            |c| c.lease_holder("chatroom-operator").as_deref() == Some("second"),
        )
        .await;
    let took = started.elapsed();
    cluster.add_room("patio", json!({}));
    cluster
        .wait_until("the new leader reconciles patio", PATIENCE, |c| {
            c.ready_url("patio").is_some()
        })
        .await;
    // The lease lasts 3 s; the standby checks it about every second.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let (status, _, log) = second.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}:\n{log}");
    drop(first);
}

/// A backend on loopback that answers `{"type":"ack","signed":…}`: whether the request's
/// signature checks out with `key` (docs/backend.md's check).
async fn signed_backend(key: &'static str) -> std::net::SocketAddr {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use chatroom_handlers::backend::signature::{RequestCheck, SIGNATURE_HEADER, TIMESTAMP_HEADER};
    let check = std::sync::Arc::new(RequestCheck::new(key));
    let app = axum::Router::new().route(
        "/chat",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let check = check.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let signed = check
                    .accept(
                        header(TIMESTAMP_HEADER),
                        header(SIGNATURE_HEADER),
                        &body,
                        now,
                    )
                    .is_ok();
                json!({ "type": "ack", "signed": signed }).to_string()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
