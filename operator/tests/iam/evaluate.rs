//! IAM's policy evaluation for one identity policy, as AWS documents it: an explicit Deny wins,
//! then any Allow whose action, resource and every condition match; otherwise an implicit deny.
//! Only the condition operators the project's policies use are known; any other panics, so the
//! test can never pass by not understanding a policy.
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>

use std::collections::HashMap;

use serde_json::Value;

/// One thing IAM authorises for a request: an action on a resource, in a context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub action: String,
    pub resource: String,
    /// Condition keys (lower-cased) and their values for this request.
    pub context: HashMap<String, Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    ImplicitlyDenied,
    ExplicitlyDenied,
}

pub struct Policy {
    statements: Vec<Value>,
}

impl Policy {
    pub fn parse(document: &Value) -> Self {
        let statements = match &document["Statement"] {
            Value::Array(many) => many.clone(),
            one @ Value::Object(_) => vec![one.clone()],
            other => panic!("a policy's Statement must be an object or array, got {other}"),
        };
        Self { statements }
    }

    pub fn statements(&self) -> &[Value] {
        &self.statements
    }

    pub fn decide(&self, request: &Authorization) -> Decision {
        let matching = |effect: &str| {
            self.statements
                .iter()
                .filter(|s| s["Effect"] == effect)
                .any(|s| applies(s, request))
        };
        if matching("Deny") {
            Decision::ExplicitlyDenied
        } else if matching("Allow") {
            Decision::Allowed
        } else {
            Decision::ImplicitlyDenied
        }
    }
}

fn applies(statement: &Value, request: &Authorization) -> bool {
    let actions = |key| strings(&statement[key]);
    let action_ok = if statement.get("NotAction").is_some() {
        !actions("NotAction")
            .iter()
            .any(|a| glob(&a.to_lowercase(), &request.action.to_lowercase()))
    } else {
        actions("Action")
            .iter()
            .any(|a| glob(&a.to_lowercase(), &request.action.to_lowercase()))
    };
    let resource_ok = if statement.get("NotResource").is_some() {
        !strings(&statement["NotResource"])
            .iter()
            .any(|r| glob(r, &request.resource))
    } else {
        strings(&statement["Resource"])
            .iter()
            .any(|r| glob(r, &request.resource))
    };
    action_ok && resource_ok && conditions_hold(&statement["Condition"], &request.context)
}

fn conditions_hold(conditions: &Value, context: &HashMap<String, Vec<String>>) -> bool {
    let Some(operators) = conditions.as_object() else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        let Some(keys) = keys.as_object() else {
            panic!("condition {operator} must map keys to values, got {keys}")
        };
        keys.iter().all(|(key, wanted)| {
            let found = context.get(&key.to_lowercase());
            condition_holds(operator, found.map(Vec::as_slice), &strings(wanted))
        })
    })
}

fn condition_holds(operator: &str, found: Option<&[String]>, wanted: &[String]) -> bool {
    let (set, base) = match operator.split_once(':') {
        Some((set @ ("ForAllValues" | "ForAnyValue"), base)) => (Some(set), base),
        _ => (None, operator),
    };
    let one = |value: &str| -> bool {
        match base {
            "StringEquals" | "ArnEquals" => wanted.iter().any(|w| w == value),
            "StringLike" | "ArnLike" => wanted.iter().any(|w| glob(w, value)),
            "StringNotEquals" | "ArnNotEquals" => wanted.iter().all(|w| w != value),
            "StringNotLike" | "ArnNotLike" => wanted.iter().all(|w| !glob(w, value)),
            "Bool" => wanted.iter().any(|w| w.eq_ignore_ascii_case(value)),
            other => panic!("the evaluator does not know the condition operator {other}"),
        }
    };
    let negated = base.contains("Not");
    match (set, found) {
        (_, None) if base == "Null" => wanted.iter().any(|w| w == "true"),
        (_, Some(_)) if base == "Null" => wanted.iter().any(|w| w == "false"),
        // A missing key: positive operators fail, negated ones hold (IAM's rule).
        (None, None) => negated,
        (None, Some(values)) => values.iter().any(|v| one(v)),
        (Some("ForAllValues"), None) => true,
        (Some("ForAllValues"), Some(values)) => values.iter().all(|v| one(v)),
        (Some(_), None) => false,
        (Some(_), Some(values)) => values.iter().any(|v| one(v)),
    }
}

/// `Action`, `Resource` and condition values: a string or an array of strings.
pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Value::Bool(b) => vec![b.to_string()],
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

/// IAM's wildcards: `*` any run of characters (slashes included), `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    chatroom_operator::providers::aws::arn_pattern::matches(pattern, text)
}
