//! The ChatRoom rules, for rooms that never meet an API server (`local`, `apply`, `delete`) and
//! as a second line behind it in the controller. Each rule is one named function in
//! [`rules::RULES`] and the twin of one rule in the CRD's schema ([`crate::crd`]); the tests hold
//! the two together, and `tests/crd_on_apiserver.rs` submits one room that breaks each rule to a
//! real kube-apiserver, which must refuse it naming the same field.

mod rules;

pub use rules::RULES;

use std::sync::LazyLock;

use regex::Regex;

use crate::crd::{
    BASE_PATH_PATTERN, CERTIFICATE_ARN_PATTERN, ChatRoom, DOMAIN_NAME_PATTERN, TAG_PATTERN,
};

/// The CRD's own patterns, so that both accept exactly the same strings.
static TAG_CHARACTERS: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(TAG_PATTERN).ok());
static DOMAIN_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(DOMAIN_NAME_PATTERN).ok());
static CERTIFICATE_ARN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(CERTIFICATE_ARN_PATTERN).ok());
static BASE_PATH: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(BASE_PATH_PATTERN).ok());

fn matches(pattern: &LazyLock<Option<Regex>>, s: &str) -> bool {
    pattern.as_ref().is_some_and(|p| p.is_match(s))
}

/// One broken rule, named by the field's path from the object's root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every rule a room breaks, so that one edit can fix them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSpec(pub Vec<FieldError>);

/// One rule of the ChatRoom API: a name that tests and docs can point at, and its check.
pub struct Rule {
    pub name: &'static str,
    check: fn(&ChatRoom, &mut Findings),
}

impl Rule {
    const fn new(name: &'static str, check: fn(&ChatRoom, &mut Findings)) -> Self {
        Self { name, check }
    }

    /// The errors this rule alone finds in `room`.
    pub fn check(&self, room: &ChatRoom) -> Vec<FieldError> {
        let mut findings = Findings::default();
        (self.check)(room, &mut findings);
        findings.0
    }
}

/// What the rules found so far.
#[derive(Default)]
pub struct Findings(Vec<FieldError>);

impl Findings {
    fn fail(&mut self, field: &str, message: String) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message,
        });
    }
}

/// Every rule `room` breaks, in the order of [`RULES`].
pub fn validate(room: &ChatRoom) -> Result<(), InvalidSpec> {
    let mut findings = Findings::default();
    for rule in RULES {
        (rule.check)(room, &mut findings);
    }
    if findings.0.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec(findings.0))
    }
}

fn is_tag_text(s: &str) -> bool {
    matches(&TAG_CHARACTERS, s)
}

fn is_stage(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_message_route(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_role_arn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("arn:aws") else {
        return false;
    };
    let Some((partition_suffix, rest)) = rest.split_once(":iam::") else {
        return false;
    };
    let Some((account, role)) = rest.split_once(":role/") else {
        return false;
    };
    partition_suffix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && (1..=512).contains(&role.len())
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_/-".contains(c))
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lower = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase());
    match parts.as_slice() {
        [area, middle @ .., number] => {
            area.len() == 2
                && lower(area)
                && !middle.is_empty()
                && middle.iter().all(lower)
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;

/// One room of `cases.yaml`: it breaks `rule` and no other, and `field` is what a judge must
/// name. validate()'s tests and the real API server's (`tests/crd_on_apiserver.rs`) walk the
/// same list, so that the CRD's schema and [`RULES`] cannot drift apart unnoticed.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleCase {
    pub rule: String,
    pub field: String,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    spec: serde_json::Map<String, serde_json::Value>,
    /// false where the API server cannot be asked (the reason is in the file).
    #[serde(default = "yes")]
    pub api_server: bool,
}

fn yes() -> bool {
    true
}

impl RuleCase {
    /// The whole room as JSON: `lobby` in `default`, with the case's fields over it.
    pub fn room_json(&self) -> serde_json::Value {
        let mut metadata = serde_json::json!({ "name": "lobby", "namespace": "default" });
        let mut spec = serde_json::json!({});
        for (key, value) in &self.metadata {
            metadata[key] = value.clone();
        }
        for (key, value) in &self.spec {
            spec[key] = value.clone();
        }
        serde_json::json!({
            "apiVersion": "chatroom.dev/v1alpha1",
            "kind": "ChatRoom",
            "metadata": metadata,
            "spec": spec,
        })
    }
}

/// The rooms of `cases.yaml`, one or more per rule.
pub fn rule_cases() -> Result<Vec<RuleCase>, serde_yaml::Error> {
    serde_yaml::from_str(include_str!("cases.yaml"))
}
