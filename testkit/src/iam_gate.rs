//! The IAM gate in front of moto (tools/iam-gate, started by scripts/moto.sh): register a
//! principal with policies of a test's own, ask its simulator about one authorization, and read
//! what it decided for the requests it saw (`IAM_GATE_LOG`).

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::moto_endpoint;

/// A policy document as IAM answers it (URL-encoded JSON, in GetRolePolicy, GetPolicyVersion
/// and a role's trust policy), parsed; `None` when it is not JSON.
pub fn document(encoded: &str) -> Option<Value> {
    let text = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    serde_json::from_str(&text).ok()
}

/// One IAM policy by name, as the simulator takes it.
pub fn policy(name: &str, document: Value) -> Value {
    json!({ "name": name, "policy": document })
}

/// Requests signed with `access_key_id` are from now on authorized as `arn` with
/// `identity_policies`; with `expect_denials` the suite's summary counts their denials as the
/// test's own, not as failures.
pub fn register_principal(
    access_key_id: &str,
    arn: &str,
    identity_policies: Vec<Value>,
    expect_denials: bool,
) {
    register_principal_within(
        access_key_id,
        arn,
        identity_policies,
        Vec::new(),
        expect_denials,
    );
}

/// [`register_principal`] for a principal held within a permissions boundary (`boundary`, one
/// policy; none when empty), as a role with one is.
pub fn register_principal_within(
    access_key_id: &str,
    arn: &str,
    identity_policies: Vec<Value>,
    boundary: Vec<Value>,
    expect_denials: bool,
) {
    register(json!({
        "accessKeyId": access_key_id,
        "arn": arn,
        "identityPolicies": identity_policies,
        "permissionsBoundary": boundary,
        "expectDenials": expect_denials,
    }));
}

/// Registers `access_key_id` with `identity_policies`, alone in an account of its own for API
/// Gateway's per-account quotas (tools/iam-gate/quotas.mjs): its requests are held to them,
/// and no other test's requests count against its windows.
pub fn register_principal_with_quotas(
    access_key_id: &str,
    arn: &str,
    identity_policies: Vec<Value>,
    expect_denials: bool,
) {
    register(json!({
        "accessKeyId": access_key_id,
        "arn": arn,
        "identityPolicies": identity_policies,
        "expectDenials": expect_denials,
        "quotaAccount": access_key_id,
    }));
}

fn register(spec: Value) {
    let (status, body) = post("/__iam-gate/principals", &spec);
    assert_eq!(status, 204, "the IAM gate refused the principal: {body}");
}

/// Registers the operator of `cluster` with its managed policies (`(name, document)`, as
/// `chatroom-operator iam-policy --cluster-name` prints them) and answers the access key that
/// signs as it.
pub fn register_operator(cluster: &str, policies: Vec<(String, Value)>) -> String {
    let tag: String = cluster
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let key = format!("AKIAOPERATOR-{tag}");
    register_principal(
        &key,
        &format!("arn:aws:sts::123456789012:assumed-role/chatroom-operator-{tag}/operator"),
        policies
            .into_iter()
            .map(|(name, document)| policy(&name, document))
            .collect(),
        false,
    );
    key
}

/// The simulator's decision (`Allowed`, `ImplicitlyDenied`, `ExplicitlyDenied`) for `action` on
/// `resource` with the context keys `context`, under `identity_policies` and within
/// `boundary` (none when empty).
pub fn simulate(
    identity_policies: Vec<Value>,
    boundary: Vec<Value>,
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> String {
    let context: serde_json::Map<String, Value> = context
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let (status, body) = post(
        "/__iam-gate/simulate",
        &json!({
            "identityPolicies": identity_policies,
            "permissionsBoundary": boundary,
            "action": action,
            "resource": resource,
            "context": context,
        }),
    );
    assert_eq!(status, 200, "the IAM gate could not simulate: {body}");
    let outcome: Value = serde_json::from_str(&body).unwrap();
    let decision = outcome["decision"].as_str().unwrap_or_default().to_owned();
    assert_ne!(
        decision, "Error",
        "the simulator cannot evaluate {action} on {resource}: {outcome}"
    );
    decision
}

/// What the gate decided for every request signed with `access_key_id`, in order: one JSON
/// object per request (`operation`, `denied`, and `authorizations`, each with `action`,
/// `resource`, `context` and `decision`).
pub fn records_of(access_key_id: &str) -> Vec<Value> {
    let path = std::env::var("IAM_GATE_LOG")
        .expect("set IAM_GATE_LOG to the IAM gate's log (scripts/moto.sh does)");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["principal"] == access_key_id)
        .collect()
}

fn post(path: &str, body: &Value) -> (u16, String) {
    let endpoint = moto_endpoint();
    let address = endpoint
        .strip_prefix("http://")
        .expect("MOTO_ENDPOINT is http://host:port");
    let body = body.to_string();
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
