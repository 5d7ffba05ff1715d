//! The ChatRoom rules, for rooms that never meet an API server (`local`, `apply`, `delete`) and
//! as a second line behind it in the controller. Each rule mirrors one in the CRD's schema
//! ([`crate::crd`]); the tests below hold the two together.

use chatroom_handlers::RouteSelectionExpression;

use std::sync::LazyLock;

use regex::Regex;

use crate::crd::{
    BASE_PATH_PATTERN, BillingMode, CERTIFICATE_ARN_PATTERN, ChatRoom, DOMAIN_NAME_PATTERN,
    LOG_RETENTION_DAYS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_USER_TAGS, RESERVED_ROUTES,
    RESERVED_TAG_PREFIXES, TAG_PATTERN,
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

pub fn validate(room: &ChatRoom) -> Result<(), InvalidSpec> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.to_owned(),
            message,
        });
    };

    match room.metadata.name.as_deref() {
        None | Some("") => fail("metadata.name", "is required".into()),
        Some(name) if !is_dns_subdomain(name) => fail(
            "metadata.name",
            format!(
                "must be a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253), got {name:?}"
            ),
        ),
        Some(_) => {}
    }
    if let Some(namespace) = room.metadata.namespace.as_deref()
        && !is_dns_label(namespace)
    {
        fail(
            "metadata.namespace",
            format!(
                "must be a DNS label (lowercase letters, digits and '-', at most 63), got {namespace:?}"
            ),
        );
    }

    let spec = &room.spec;
    if !is_stage(&spec.stage) {
        fail(
            "spec.stage",
            format!(
                "must be 1-128 characters of A-Z a-z 0-9 _ -, got {:?}",
                spec.stage
            ),
        );
    }
    if !is_message_route(&spec.message_route) {
        fail(
            "spec.messageRoute",
            format!(
                "must be 1-128 characters of A-Z a-z 0-9 _ . : - (a route key not starting with $), got {:?}",
                spec.message_route
            ),
        );
    }
    if RESERVED_ROUTES.contains(&spec.message_route.as_str()) {
        fail(
            "spec.messageRoute",
            format!(
                "must not be {}: every room has those routes, got {:?}",
                RESERVED_ROUTES.join(" or "),
                spec.message_route
            ),
        );
    }
    if let Err(error) = RouteSelectionExpression::parse(&spec.route_selection_expression) {
        fail("spec.routeSelectionExpression", error.to_string());
    }

    let table = &spec.connection_table;
    let capacities = [
        ("spec.connectionTable.readCapacity", table.read_capacity),
        ("spec.connectionTable.writeCapacity", table.write_capacity),
    ];
    for (field, capacity) in capacities {
        match (table.billing_mode, capacity) {
            (BillingMode::Provisioned, None) => {
                fail(field, "is required when billingMode is PROVISIONED".into());
            }
            (BillingMode::Provisioned, Some(units)) if units < 1 => {
                fail(field, format!("must be at least 1, got {units}"));
            }
            (BillingMode::PayPerRequest, Some(_)) => {
                fail(
                    field,
                    "is only allowed when billingMode is PROVISIONED".into(),
                );
            }
            _ => {}
        }
    }

    let function = &spec.function;
    if !(128..=10240).contains(&function.memory_mb) {
        fail(
            "spec.function.memoryMB",
            format!("must be between 128 and 10240, got {}", function.memory_mb),
        );
    }
    if !(1..=29).contains(&function.timeout_seconds) {
        fail(
            "spec.function.timeoutSeconds",
            format!(
                "must be between 1 and 29 (API Gateway's integration timeout), got {}",
                function.timeout_seconds
            ),
        );
    }
    if !LOG_RETENTION_DAYS.contains(&function.log_retention_days) {
        fail(
            "spec.function.logRetentionDays",
            format!(
                "must be one of {LOG_RETENTION_DAYS:?} (what CloudWatch Logs accepts), got {}",
                function.log_retention_days
            ),
        );
    }
    if let Some(arn) = function.role_arn.as_deref()
        && !is_role_arn(arn)
    {
        fail(
            "spec.function.roleArn",
            format!("must be an IAM role ARN (arn:aws:iam::123456789012:role/name), got {arn:?}"),
        );
    }

    if let Some(throttling) = &spec.throttling {
        // A limit of 0 lets no message through.
        if throttling.burst_limit < 1 {
            fail(
                "spec.throttling.burstLimit",
                format!("must be at least 1, got {}", throttling.burst_limit),
            );
        }
        let rate = throttling.rate_limit;
        if !(rate > 0.0 && rate.is_finite()) {
            fail(
                "spec.throttling.rateLimit",
                format!("must be more than 0, got {rate}"),
            );
        }
    }

    if let Some(history) = &spec.history {
        if !(0..=200).contains(&history.messages) {
            fail(
                "spec.history.messages",
                format!("must be between 0 and 200, got {}", history.messages),
            );
        }
        if history.retention().is_none() {
            fail(
                "spec.history.retention",
                format!(
                    "must be whole hours or days from 1h to 30d, such as 24h or 7d, got {:?}",
                    history.retention
                ),
            );
        }
    }

    if let Some(jwt) = spec.auth.as_ref().map(|auth| &auth.jwt) {
        if jwt.issuer.trim().is_empty() || jwt.issuer.len() > 2048 {
            fail("spec.auth.jwt.issuer", "must be 1-2048 characters".into());
        }
        if !(1..=20).contains(&jwt.audiences.len())
            || jwt.audiences.iter().any(|a| a.is_empty() || a.len() > 256)
        {
            fail(
                "spec.auth.jwt.audiences",
                "must hold 1-20 audiences of 1-256 characters".into(),
            );
        }
        if let Some(problem) = chatroom_handlers::auth::jwks_uri_problem(&jwt.jwks_uri) {
            fail("spec.auth.jwt.jwksUri", problem);
        }
        if let Err(error) = chatroom_handlers::auth::IdentitySource::parse(&jwt.identity_source) {
            fail("spec.auth.jwt.identitySource", error.to_string());
        }
        if jwt
            .name_claim
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > 256)
        {
            fail("spec.auth.jwt.nameClaim", "must be 1-256 characters".into());
        }
    }

    if let Some(domain) = &spec.domain {
        if domain.name.len() > 253 || !matches(&DOMAIN_NAME, &domain.name) {
            fail(
                "spec.domain.name",
                format!(
                    "must be a lower-case DNS name such as chat.example.com, got {:?}",
                    domain.name
                ),
            );
        }
        if !matches(&CERTIFICATE_ARN, &domain.certificate_arn) {
            fail(
                "spec.domain.certificateArn",
                format!(
                    "must be an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID), got {:?}",
                    domain.certificate_arn
                ),
            );
        }
        if !matches(&BASE_PATH, &domain.base_path) {
            fail(
                "spec.domain.basePath",
                format!(
                    "must be empty or one path segment of letters, digits and . _ ~ -, got {:?}",
                    domain.base_path
                ),
            );
        }
    }

    if let Some(access_log) = &spec.access_log
        && !LOG_RETENTION_DAYS.contains(&access_log.retention_days)
    {
        fail(
            "spec.accessLog.retentionDays",
            format!(
                "must be one of {LOG_RETENTION_DAYS:?} (what CloudWatch Logs accepts), got {}",
                access_log.retention_days
            ),
        );
    }

    if let Some(region) = spec.region.as_deref()
        && !is_region(region)
    {
        fail(
            "spec.region",
            format!("must be an AWS region such as eu-west-1, got {region:?}"),
        );
    }

    if spec.tags.len() > MAX_USER_TAGS {
        fail(
            "spec.tags",
            format!(
                "must have at most {MAX_USER_TAGS} tags, got {}",
                spec.tags.len()
            ),
        );
    }
    for (key, value) in &spec.tags {
        let field = format!("spec.tags[{key:?}]");
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS {
            fail(
                &field,
                format!("tag keys must be 1-{MAX_TAG_KEY_CHARS} characters"),
            );
        }
        if let Some(prefix) = RESERVED_TAG_PREFIXES.iter().find(|p| key.starts_with(*p)) {
            fail(&field, format!("tag keys must not start with {prefix}"));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            fail(
                &field,
                format!("tag values must be at most {MAX_TAG_VALUE_CHARS} characters"),
            );
        }
        if !is_tag_text(key) || !is_tag_text(value) {
            fail(
                &field,
                "tag keys and values may hold only letters, digits, spaces and _ . : / = + - @"
                    .into(),
            );
        }
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec(errors))
    }
}

fn is_tag_text(s: &str) -> bool {
    TAG_CHARACTERS
        .as_ref()
        .is_some_and(|pattern| pattern.is_match(s))
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
mod tests {
    use regex::Regex;

    use super::*;
    use crate::crd::{
        ChatRoomSpec, HistorySpec, MESSAGE_ROUTE_PATTERN, REGION_PATTERN, RETENTION_PATTERN,
        ROLE_ARN_PATTERN, ROUTE_SELECTION_PATTERN, STAGE_PATTERN, ThrottlingSpec,
    };

    fn room(spec: ChatRoomSpec) -> ChatRoom {
        let mut room = ChatRoom::new("lobby", spec);
        room.metadata.namespace = Some("default".into());
        room
    }

    fn fields(result: Result<(), InvalidSpec>) -> Vec<String> {
        result
            .err()
            .map(|e| e.0.into_iter().map(|f| f.field).collect())
            .unwrap_or_default()
    }

    /// The schema's patterns and the hand-written checks must accept exactly the same strings.
    fn agree(pattern: &str, check: fn(&str) -> bool, samples: &[&str]) {
        let schema = Regex::new(pattern).unwrap();
        for sample in samples {
            assert_eq!(
                schema.is_match(sample),
                check(sample),
                "schema pattern {pattern} and validate disagree on {sample:?}"
            );
        }
    }

    #[test]
    fn stage_rule_matches_the_schema() {
        let long = "a".repeat(129);
        agree(
            STAGE_PATTERN,
            is_stage,
            &[
                "dev",
                "prod_1",
                "a-b",
                "",
                "has space",
                "dé",
                "a/b",
                &long,
                &long[1..],
            ],
        );
    }

    #[test]
    fn message_route_rule_matches_the_schema() {
        let long = "m".repeat(129);
        agree(
            MESSAGE_ROUTE_PATTERN,
            is_message_route,
            &[
                "onMessage",
                "chat.send",
                "a:b",
                "$default",
                "",
                "has space",
                "a\nb",
                &long,
                &long[1..],
            ],
        );
    }

    #[test]
    fn route_selection_rule_matches_the_schema() {
        let check = |s: &str| RouteSelectionExpression::parse(s).is_ok();
        agree(
            ROUTE_SELECTION_PATTERN,
            check,
            &[
                "$request.body.action",
                "$request.body.a.b-c_d",
                "$request.body.",
                "$request.body..a",
                "$request.header.x",
                "action",
                "$request.body.a b",
                "${request.body.action}",
            ],
        );
    }

    #[test]
    fn role_arn_and_region_rules_match_the_schema() {
        agree(
            ROLE_ARN_PATTERN,
            is_role_arn,
            &[
                "arn:aws:iam::123456789012:role/chat",
                "arn:aws-cn:iam::123456789012:role/path/chat",
                "arn:aws:iam::12345678901:role/x",
                "arn:aws:iam::123456789012:user/x",
                "arn:aws:iam::123456789012:role/",
                "arn:aws:iam::123456789012:role/a b",
            ],
        );
        agree(
            REGION_PATTERN,
            is_region,
            &[
                "eu-west-1",
                "us-gov-west-1",
                "ap-southeast-2",
                "eu-west",
                "euwest-1",
                "EU-west-1",
                "e-west-1",
                "eu--1",
            ],
        );
    }

    #[test]
    fn tags_hold_only_what_aws_accepts() {
        assert!(TAG_CHARACTERS.is_some(), "the CRD's tag pattern compiles");
        for good in ["team", "Équipe 7", "a_b.c:d/e=f+g-h@i", ""] {
            assert!(is_tag_text(good), "{good:?} was refused");
        }
        for bad in ["a<b", "tab\there", "party 🎉", "semi;colon", "quote\""] {
            assert!(!is_tag_text(bad), "{bad:?} was accepted");
        }
        let mut spec = ChatRoomSpec::default();
        spec.tags
            .insert("owner".into(), "ada <ada@example.com>".into());
        assert_eq!(fields(validate(&room(spec))), ["spec.tags[\"owner\"]"]);
    }

    #[test]
    fn auth_domain_and_access_log_fields_are_checked_and_named() {
        use crate::crd::{AccessLogSpec, AuthSpec, DomainSpec, JwtSpec};
        let jwt = |jwks_uri: &str, identity_source: &str| JwtSpec {
            issuer: "https://login.example.com/".into(),
            audiences: vec!["chat".into()],
            jwks_uri: jwks_uri.into(),
            identity_source: identity_source.into(),
            name_claim: None,
        };
        let domain = |name: &str, arn: &str, base_path: &str| DomainSpec {
            name: name.into(),
            certificate_arn: arn.into(),
            base_path: base_path.into(),
        };
        let cert = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f";
        let good = ChatRoomSpec {
            auth: Some(AuthSpec {
                jwt: jwt(
                    "https://login.example.com/jwks.json",
                    "header.Authorization",
                ),
            }),
            domain: Some(domain("chat.example.com", cert, "lobby")),
            access_log: Some(AccessLogSpec { retention_days: 7 }),
            ..ChatRoomSpec::default()
        };
        assert_eq!(validate(&room(good.clone())), Ok(()));
        assert!(DOMAIN_NAME.is_some() && CERTIFICATE_ARN.is_some() && BASE_PATH.is_some());

        let bad = ChatRoomSpec {
            auth: Some(AuthSpec {
                jwt: JwtSpec {
                    audiences: vec![],
                    ..jwt("http://login.example.com/jwks.json", "cookie.token")
                },
            }),
            domain: Some(domain("Chat.Example.com", "arn:aws:iam::1:role/x", "a/b")),
            access_log: Some(AccessLogSpec { retention_days: 2 }),
            ..good
        };
        assert_eq!(
            fields(validate(&room(bad))),
            [
                "spec.auth.jwt.audiences",
                "spec.auth.jwt.jwksUri",
                "spec.auth.jwt.identitySource",
                "spec.domain.name",
                "spec.domain.certificateArn",
                "spec.domain.basePath",
                "spec.accessLog.retentionDays",
            ]
        );
    }

    #[test]
    fn history_is_up_to_200_messages_kept_1h_to_30d_and_its_routes_are_taken() {
        let history = |messages: i32, retention: &str| ChatRoomSpec {
            history: Some(HistorySpec {
                messages,
                retention: retention.into(),
            }),
            ..ChatRoomSpec::default()
        };
        for (messages, retention) in [(0, "24h"), (2, "1h"), (200, "30d"), (5, "720h")] {
            assert_eq!(validate(&room(history(messages, retention))), Ok(()));
        }
        for retention in [
            "0h", "721h", "31d", "90m", "1w", "24", "h", "", "1.5h", "-1h",
        ] {
            assert_eq!(
                fields(validate(&room(history(2, retention)))),
                ["spec.history.retention"],
                "{retention:?}"
            );
        }
        assert_eq!(
            fields(validate(&room(history(201, "24h")))),
            ["spec.history.messages"]
        );
        agree(
            RETENTION_PATTERN,
            |r| {
                HistorySpec {
                    messages: 1,
                    retention: r.into(),
                }
                .retention()
                .is_some()
                    || r == "721h"
                    || r == "31d"
            },
            &[
                "1h", "24h", "30d", "721h", "31d", "0h", "1w", "90m", "01h", "+1h",
            ],
        );
        for route in RESERVED_ROUTES {
            let spec = ChatRoomSpec {
                message_route: route.into(),
                ..ChatRoomSpec::default()
            };
            assert_eq!(fields(validate(&room(spec))), ["spec.messageRoute"]);
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&room(ChatRoomSpec::default())), Ok(()));
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_field() {
        let mut spec = ChatRoomSpec {
            stage: "has space".into(),
            message_route: "$default".into(),
            route_selection_expression: "$request.header.x".into(),
            region: Some("Europe".into()),
            throttling: Some(ThrottlingSpec {
                burst_limit: 0,
                rate_limit: -0.5,
            }),
            ..ChatRoomSpec::default()
        };
        spec.function.memory_mb = 64;
        spec.function.timeout_seconds = 30;
        spec.function.role_arn = Some("role".into());
        spec.connection_table.read_capacity = Some(5);
        spec.tags.insert("aws:owner".into(), "x".into());
        assert_eq!(
            fields(validate(&room(spec))),
            [
                "spec.stage",
                "spec.messageRoute",
                "spec.routeSelectionExpression",
                "spec.connectionTable.readCapacity",
                "spec.function.memoryMB",
                "spec.function.timeoutSeconds",
                "spec.function.roleArn",
                "spec.throttling.burstLimit",
                "spec.throttling.rateLimit",
                "spec.region",
                "spec.tags[\"aws:owner\"]",
            ]
        );
    }

    #[test]
    fn provisioned_billing_needs_both_capacities() {
        let mut spec = ChatRoomSpec::default();
        spec.connection_table.billing_mode = BillingMode::Provisioned;
        spec.connection_table.write_capacity = Some(0);
        assert_eq!(
            fields(validate(&room(spec.clone()))),
            [
                "spec.connectionTable.readCapacity",
                "spec.connectionTable.writeCapacity"
            ]
        );
        spec.connection_table.read_capacity = Some(1);
        spec.connection_table.write_capacity = Some(1);
        assert_eq!(validate(&room(spec)), Ok(()));
    }

    #[test]
    fn names_must_be_kubernetes_names() {
        let mut bad = room(ChatRoomSpec::default());
        bad.metadata.name = Some("Lobby_1".into());
        bad.metadata.namespace = Some("-ns".into());
        assert_eq!(
            fields(validate(&bad)),
            ["metadata.name", "metadata.namespace"]
        );
    }
}
