//! `chatroom-operator run --provider aws` as one process with both clients — Kubernetes (the
//! in-memory API server) and AWS (moto) — from a ChatRoom in the cluster to a room in AWS and
//! back to nothing when it is deleted.

mod apiserver;
mod aws_support;
mod binary;
mod rbac;
mod support;

use std::time::Duration;

use apiserver::ApiServer;
use apiserver::replica::{NAMESPACE, PATIENCE, Replica, ready_url, used_within_rbac};
use aws_support::Inventory;
use chatroom_operator::crd::{ChatRoom, ChatRoomSpec};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_cluster_room_becomes_an_aws_room_and_its_deletion_leaves_nothing() {
    let name = format!("run-{}", std::process::id());
    let cluster = ApiServer::new("aws");
    cluster.add_room(NAMESPACE, &name, json!({}));
    let zip = cluster.dir().join("bootstrap.zip");
    std::fs::write(&zip, b"bootstrap.zip for run").unwrap();
    let replica = Replica::aws(
        &cluster.kubeconfig("one", NAMESPACE).await,
        "one",
        &[
            "--handler-zip",
            zip.to_str().unwrap(),
            "--cluster-name",
            "ci",
        ],
    );

    cluster
        .wait_until("the room is Ready on AWS", PATIENCE, |c| {
            ready_url(c, &name).is_some()
        })
        .await;
    let status = cluster.status(NAMESPACE, &name).unwrap();
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
    room.metadata.namespace = Some(NAMESPACE.into());
    Inventory::in_cluster("ci", &room)
        .await
        .assert_complete("onMessage");

    cluster.delete_room(NAMESPACE, &name);
    cluster
        .wait_until("the finalizer is off after teardown", PATIENCE, |c| {
            c.room(NAMESPACE, &name).is_none()
        })
        .await;
    let left = Inventory::in_cluster("ci", &room).await;
    assert!(left.is_empty(), "left in AWS after deletion: {left:#?}");

    let (exit, _, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit:?}:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    used_within_rbac(&cluster);
}
