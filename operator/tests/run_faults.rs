//! `chatroom-operator run` against the in-memory API server (tests/apiserver), only for the
//! faults a real kube-apiserver cannot be made to produce on demand.

mod apiserver;
mod binary;
mod rbac;
mod replica;
mod support;

use std::time::Duration;

use apiserver::ApiServer;
use apiserver::replica::NAMESPACE;
use replica::{PATIENCE, Replica};
use serde_json::json;

/// Fault: a status write the API server receives and never answers (a hung connection to an
/// overloaded server). A real server answers or resets; only a fake can hold the request open
/// for exactly as long as the test needs.
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
