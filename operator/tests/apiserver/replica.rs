//! What tests ask of the in-memory API server about the replicas that used it.

use std::collections::BTreeSet;

use super::ApiServer;
use crate::rbac;

pub const NAMESPACE: &str = "chatrooms";

/// The room's URL once its status says Ready.
pub fn ready_url(cluster: &ApiServer, name: &str) -> Option<String> {
    let status = cluster.status(NAMESPACE, name)?;
    if !chatroom_operator::status::is_ready(&status.conditions) {
        return None;
    }
    status.websocket_url
}

pub fn chatroom_requests(cluster: &ApiServer, via: &str) -> Vec<String> {
    cluster
        .requests_via(via)
        .into_iter()
        .filter(|r| r.path.starts_with("/apis/chatroom.dev/"))
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect()
}

/// Every (resource, verb) the replicas used, checked against what the chart grants.
pub fn used_within_rbac(cluster: &ApiServer) -> BTreeSet<(String, String)> {
    let used: BTreeSet<(String, String)> = cluster
        .requests()
        .iter()
        .map(|r| rbac::resource_and_verb(&r.method, &r.path, &r.query))
        .collect();
    for (resource, verb) in &used {
        assert!(
            rbac::OBSERVED.contains(&(resource.as_str(), verb.as_str())),
            "{verb} {resource} is missing from tests/rbac OBSERVED, so the chart does not grant it"
        );
    }
    used
}
