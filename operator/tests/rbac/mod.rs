//! What the operator does to the Kubernetes API, as (resource, verb) pairs: read from a real
//! kube-apiserver's audit log by tests/run_cluster.rs and tests/run_cluster_aws.rs, and granted,
//! exactly, by the chart's RBAC (tests/chart.rs).
#![allow(dead_code)]

/// The watch lists and watches rooms; the finalizer helper and the status write patch; the
/// Recorder creates Events and patches their series; leader election gets, creates and
/// patches its Lease (a release is a patch too); a room with a backend's Secret is read by
/// name.
pub const OBSERVED: [(&str, &str); 10] = [
    ("chatrooms", "list"),
    ("chatrooms", "watch"),
    ("chatrooms", "patch"),
    ("chatrooms/status", "patch"),
    ("events", "create"),
    ("events", "patch"),
    ("leases", "get"),
    ("leases", "create"),
    ("leases", "patch"),
    ("secrets", "get"),
];

/// The RBAC (resource, verb) of one request to `/apis/{group}/{version}/...`.
pub fn resource_and_verb(method: &str, path: &str, query: &str) -> (String, String) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // apis, group, version, [namespaces, ns,] resource, [name, [subresource]]
    let rest = match segments.get(3..) {
        Some(["namespaces", _, rest @ ..]) => rest,
        Some(rest) => rest,
        None => &[],
    };
    let resource = match rest {
        [resource, _, subresource] => format!("{resource}/{subresource}"),
        [resource, ..] => (*resource).to_owned(),
        [] => String::new(),
    };
    let named = rest.len() >= 2;
    let verb = match method {
        "GET" if query.split('&').any(|p| p == "watch=true") => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        other => other,
    };
    (resource, verb.to_owned())
}
