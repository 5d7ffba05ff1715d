//! The real kube-apiserver restarts in the middle of a run, as in a control-plane upgrade: the
//! operator's watch breaks, it re-lists and converges, and nothing it had done is done again.
//! Alone in its file because the restart is felt by every test of the process (cargo runs test
//! files one after another).

mod binary;
mod cluster;
mod replica;
mod support;

use std::process::Command;
use std::time::Duration;

use cluster::{Cluster, forbidden};
use replica::{PATIENCE, Replica};
use serde_json::json;
use support::{connect, next_json, send_text};

fn count_reason(cluster: &Cluster, room: &str, reason: &str) -> usize {
    cluster
        .events()
        .iter()
        .filter(|e| e["regarding"]["name"] == room && e["reason"] == reason)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_api_server_restart_the_operator_relists_converges_and_repeats_nothing() {
    let cluster = Cluster::new("restart");
    let account = cluster.install_chart(&["--set", "provider=local"]);
    let (kubeconfig, token) = cluster.token_kubeconfig(&account, "one");
    cluster.add_room("lobby", json!({}));
    let replica = Replica::local(
        &kubeconfig,
        "one",
        &["--watch-namespace", &cluster.namespace],
    );
    cluster
        .wait_until("lobby is Ready", PATIENCE, |c| {
            c.ready_url("lobby").is_some()
        })
        .await;
    let url = cluster.ready_url("lobby").unwrap();
    let mut ada = connect(&format!("{url}?name=ada")).await;
    let before = cluster.room("lobby").unwrap();
    let ready_events = count_reason(&cluster, "lobby", "Ready");
    let created_events = count_reason(&cluster, "lobby", "Created");
    assert_eq!(ready_events, 1);

    let restart = Command::new("bash")
        .arg(chatroom_testkit::repo_root().join("scripts/k8s.sh"))
        .arg("restart-apiserver")
        .output()
        .unwrap();
    assert!(
        restart.status.success(),
        "{}",
        String::from_utf8_lossy(&restart.stderr)
    );

    // A room made after the restart is served: the operator watches again.
    cluster.add_room("garden", json!({}));
    cluster
        .wait_until("garden is Ready after the restart", PATIENCE, |c| {
            c.ready_url("garden").is_some()
        })
        .await;
    // lobby was never torn down or made again: its client is still in the room, its status
    // and its Events are as before.
    send_text(&mut ada, r#"{"action":"onMessage","message":"still here"}"#).await;
    assert_eq!(next_json(&mut ada).await["message"], "still here");
    let after = cluster.room("lobby").unwrap();
    assert_eq!(after["status"], before["status"]);
    assert_eq!(
        after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "lobby was written again"
    );
    assert_eq!(count_reason(&cluster, "lobby", "Ready"), ready_events);
    assert_eq!(count_reason(&cluster, "lobby", "Created"), created_events);

    let (status, _, log) = replica.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    // A server just restarted may refuse a few requests (seen: the operator's first watch
    // after the restart, 403 with no reason) until its RBAC caches have synced; the operator
    // retries them with backoff. Nothing else may be refused.
    let requests = cluster.audit_of_tokens(&[&token]);
    for refused in forbidden(&requests) {
        assert!(
            matches!(refused["verb"].as_str(), Some("watch" | "list"))
                && refused["objectRef"]["resource"] == "chatrooms",
            "refused: {refused}"
        );
    }
}
