use serde_json::Value;

const BODY_PREFIX: &str = "$request.body.";

/// A WebSocket API's route selection expression of the form `$request.body.<dotted path>`,
/// the only form a ChatRoom accepts (API Gateway also allows `${request.body.x}`-style
/// templates and headers; rooms route on a JSON property, as the seed's chat does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSelectionExpression {
    path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be `$request.body.<property>` with a dotted path of JSON property names, got {0:?}")]
pub struct InvalidExpression(pub String);

impl RouteSelectionExpression {
    pub fn parse(expression: &str) -> Result<Self, InvalidExpression> {
        let invalid = || InvalidExpression(expression.to_owned());
        let path = expression.strip_prefix(BODY_PREFIX).ok_or_else(invalid)?;
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        let well_formed = |s: &String| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if segments.iter().all(well_formed) {
            Ok(Self { path: segments })
        } else {
            Err(invalid())
        }
    }

    /// The route key a text frame selects: the string at the expression's path in the frame's
    /// JSON object. `None` (so `$default`) for non-JSON, a missing path or a non-string value.
    pub fn select(&self, frame: &str) -> Option<String> {
        let value: Value = serde_json::from_str(frame).ok()?;
        let mut at = &value;
        for segment in &self.path {
            at = at.get(segment)?;
        }
        at.as_str().map(str::to_owned)
    }

    /// A body that selects `route` and carries `message`, to show clients what to send; its
    /// keys are sorted, whatever serde_json features a build happens to turn on.
    pub fn example_body(&self, route: &str, message: &str) -> Value {
        let mut selector = Value::String(route.to_owned());
        for segment in self.path.iter().rev() {
            selector = serde_json::json!({ segment.as_str(): selector });
        }
        if let Value::Object(map) = &mut selector {
            map.insert("message".into(), Value::String(message.to_owned()));
        }
        sorted_keys(selector)
    }
}

/// `value` with every object's keys in sorted order. serde_json keeps insertion order when any
/// crate in the build enables its `preserve_order` feature (the AWS SDK's test utilities do),
/// and sorted order otherwise; what clients and files see must not depend on that.
pub fn sorted_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: std::collections::BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

impl Default for RouteSelectionExpression {
    fn default() -> Self {
        Self {
            path: vec!["action".to_owned()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_the_string_at_the_path() {
        let e = RouteSelectionExpression::parse("$request.body.action").unwrap();
        assert_eq!(
            e.select(r#"{"action":"onMessage","message":"hi"}"#)
                .as_deref(),
            Some("onMessage")
        );
        let nested = RouteSelectionExpression::parse("$request.body.meta.kind").unwrap();
        assert_eq!(
            nested.select(r#"{"meta":{"kind":"x"}}"#).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn selects_nothing_for_non_json_missing_or_non_string() {
        let e = RouteSelectionExpression::default();
        assert_eq!(e.select("hello"), None);
        assert_eq!(e.select(r#"{"other":"x"}"#), None);
        assert_eq!(e.select(r#"{"action":42}"#), None);
        assert_eq!(e.select(r#"["action"]"#), None);
    }

    #[test]
    fn rejects_other_expression_forms() {
        for bad in [
            "",
            "$request.body.",
            "$request.body..a",
            "$request.header.x",
            "action",
            "${request.body.action}",
            "$request.body.a b",
        ] {
            assert!(
                RouteSelectionExpression::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn example_body_nests_the_route_key() {
        let nested = RouteSelectionExpression::parse("$request.body.meta.kind").unwrap();
        assert_eq!(
            nested.example_body("onMessage", "hi"),
            serde_json::json!({"meta": {"kind": "onMessage"}, "message": "hi"})
        );
    }
}
