//! validate() against the CRD's own patterns, and one case per field.

use regex::Regex;

use super::*;
use chatroom_handlers::RouteSelectionExpression;

use crate::crd::{
    BillingMode, ChatRoomSpec, HistorySpec, MESSAGE_ROUTE_PATTERN, REGION_PATTERN, RESERVED_ROUTES,
    RETENTION_PATTERN, ROLE_ARN_PATTERN, ROUTE_SELECTION_PATTERN, STAGE_PATTERN, ThrottlingSpec,
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

/// "API mappings must contain only letters, numbers, and the following characters:
/// $-_.+!*'()", at most 300 (WebSocket API mappings' restrictions).
#[test]
fn a_base_path_is_what_api_gateway_takes_for_a_websocket_mapping() {
    let with_base_path = |base_path: &str| {
        let spec = ChatRoomSpec {
            domain: Some(crate::crd::DomainSpec {
                name: "chat.example.com".into(),
                certificate_arn: "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d".into(),
                base_path: base_path.into(),
            }),
            ..ChatRoomSpec::default()
        };
        validate(&room(spec))
    };
    let longest = "a".repeat(300);
    for taken in ["", "lobby", "v1.0+beta", "$chat_(1)!*'-", longest.as_str()] {
        assert_eq!(with_base_path(taken), Ok(()), "{taken:?}");
    }
    let too_long = "a".repeat(301);
    for refused in ["a~b", "a/b", "a b", "ä", "%20", too_long.as_str()] {
        assert_eq!(
            fields(with_base_path(refused)),
            ["spec.domain.basePath"],
            "{refused:?}"
        );
    }
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

#[test]
fn every_rule_has_a_case_and_each_case_breaks_its_rule_alone_naming_its_field() {
    let cases = rule_cases().unwrap();
    for rule in RULES {
        assert!(
            cases.iter().any(|case| case.rule == rule.name),
            "rule {} has no room in cases.yaml",
            rule.name
        );
    }
    for case in &cases {
        let room: ChatRoom = serde_json::from_value(case.room_json())
            .unwrap_or_else(|e| panic!("{} does not parse as a ChatRoom: {e}", case.rule));
        let rule = RULES
            .iter()
            .find(|rule| rule.name == case.rule)
            .unwrap_or_else(|| panic!("cases.yaml names no rule {:?}", case.rule));
        assert!(
            !rule.check(&room).is_empty(),
            "{}: the room does not break its rule",
            case.rule
        );
        let errors = validate(&room).unwrap_err().0;
        for error in &errors {
            assert!(
                error.field.starts_with(&case.field),
                "{}: validate() names {}, the case {}",
                case.rule,
                error.field,
                case.field
            );
        }
        let broken: Vec<&str> = RULES
            .iter()
            .filter(|rule| !rule.check(&room).is_empty())
            .map(|rule| rule.name)
            .collect();
        assert_eq!(broken, [case.rule.as_str()], "{}", case.rule);
    }
}
