//! `chatroom-operator run --provider aws` as one process with both clients — Kubernetes (the
//! real kube-apiserver, signed in as the chart's ServiceAccount) and AWS (moto) — from a
//! ChatRoom in the cluster to a room in AWS and back to nothing when it is deleted.

mod aws_support;
mod binary;
mod cluster;
mod replica;
mod support;

use std::time::Duration;

use aws_support::Inventory;
use chatroom_operator::crd::{ChatRoom, ChatRoomSpec};
use cluster::{Cluster, forbidden, rbac_uses};
use replica::{PATIENCE, Replica};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_cluster_room_becomes_an_aws_room_and_its_deletion_leaves_nothing() {
    let name = format!("run-{}", std::process::id());
    let cluster = Cluster::new("aws");
    let account = cluster.install_chart(&["--set", "aws.clusterName=ci"]);
    let (kubeconfig, token) = cluster.token_kubeconfig(&account, "one");
    cluster.add_room(&name, json!({}));
    let zip = cluster.dir().join("bootstrap.zip");
    std::fs::write(&zip, b"bootstrap.zip for run").unwrap();
    let replica = Replica::aws(
        &kubeconfig,
        "one",
        &[
            "--watch-namespace",
            &cluster.namespace,
            "--resync",
            "2s",
            "--handler-zip",
            zip.to_str().unwrap(),
            "--cluster-name",
            "ci",
        ],
        aws_support::operator_moto_env("ci"),
    );

    cluster
        .wait_until("the room is Ready on AWS", PATIENCE, |c| {
            c.ready_url(&name).is_some()
        })
        .await;
    let status = cluster.status(&name).unwrap();
    let host = format!(
        "{}.execute-api.us-east-1.amazonaws.com",
        status.api_id.as_deref().unwrap()
    );
    assert_eq!(status.websocket_url, Some(format!("wss://{host}/dev")));
    assert_eq!(
        status.callback_url,
        Some(format!("https://{host}/dev/@connections"))
    );
    for part in ["TableReady", "FunctionReady", "ApiReady"] {
        let condition = status
            .conditions
            .iter()
            .find(|c| c.type_ == part)
            .unwrap_or_else(|| panic!("no {part} in {status:?}"));
        assert_eq!(condition.status, "True", "{condition:?}");
    }
    let mut room = ChatRoom::new(&name, ChatRoomSpec::default());
    room.metadata.namespace = Some(cluster.namespace.clone());
    Inventory::in_cluster("ci", &room)
        .await
        .assert_complete("onMessage");

    // The same drift twice on an unchanged room: the second DriftRepaired Event joins the
    // first one's series, a patch the chart's RBAC must allow.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&chatroom_testkit::moto_sdk_config().await);
    let group = format!(
        "/aws/lambda/{}",
        aws_support::names_in("ci", &room).function
    );
    for _ in 0..2 {
        logs.delete_log_group()
            .log_group_name(&group)
            .send()
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let found = logs
                .describe_log_groups()
                .log_group_name_prefix(&group)
                .send()
                .await
                .unwrap();
            if !found.log_groups().is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{group} was not repaired"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    cluster
        .wait_until("one DriftRepaired series of two", PATIENCE, |c| {
            c.events()
                .iter()
                .any(|e| e["reason"] == "DriftRepaired" && e["series"]["count"].as_i64() >= Some(2))
        })
        .await;

    cluster.delete_room(&name);
    cluster
        .wait_until("the finalizer is off after teardown", PATIENCE, |c| {
            c.room(&name).is_none()
        })
        .await;
    let left = Inventory::in_cluster("ci", &room).await;
    assert!(left.is_empty(), "left in AWS after deletion: {left:#?}");

    let (exit, _, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit:?}:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    let requests = cluster.audit_of_tokens(&[&token]);
    assert_eq!(forbidden(&requests), Vec::<&serde_json::Value>::new());
    assert!(
        rbac_uses(&requests).contains(&("events.k8s.io".into(), "events".into(), "patch".into())),
        "the repeated Event was not patched into a series"
    );
}
