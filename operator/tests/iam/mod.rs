//! The operator's IAM policy, checked request by request: an evaluator of IAM's rules
//! ([`evaluate`]), the mapping of each recorded HTTP request to what IAM authorises for it
//! ([`requests`]), and AWS's Service Authorization Reference ([`sar`]).
#![allow(dead_code)]

pub mod evaluate;
pub mod requests;
pub mod sar;

use std::path::Path;

use serde_json::Value;

pub fn read_policy(relative: &str) -> Value {
    let path = chatroom_testkit::repo_root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(relative).display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}
