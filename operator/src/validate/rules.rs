//! One function per rule of the ChatRoom API, each the twin of one rule in the CRD's schema.
//! A rule adds one [`FieldError`] per thing it finds wrong, naming the field.

use chatroom_handlers::RouteSelectionExpression;
use chatroom_handlers::backend::MAX_TIMEOUT_SECONDS;

use super::{
    BASE_PATH, CERTIFICATE_ARN, DOMAIN_NAME, Findings, is_dns_label, is_dns_subdomain, is_region,
    is_role_arn, is_stage, is_tag_text, matches,
};
use super::{Rule, is_message_route};
use crate::crd::{
    BillingMode, ChatRoom, LOG_RETENTION_DAYS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS,
    MAX_USER_TAGS, RESERVED_ROUTES, RESERVED_TAG_PREFIXES,
};

/// Every rule, in the order their errors are reported (the order of the spec's fields).
pub const RULES: &[Rule] = &[
    Rule::new("name-is-a-dns-subdomain", name_is_a_dns_subdomain),
    Rule::new("namespace-is-a-dns-label", namespace_is_a_dns_label),
    Rule::new("stage-characters", stage_characters),
    Rule::new("message-route-characters", message_route_characters),
    Rule::new("message-route-not-reserved", message_route_not_reserved),
    Rule::new("route-selection-expression", route_selection_expression),
    Rule::new(
        "capacities-follow-billing-mode",
        capacities_follow_billing_mode,
    ),
    Rule::new("function-memory", function_memory),
    Rule::new("function-timeout", function_timeout),
    Rule::new("function-log-retention", function_log_retention),
    Rule::new("function-role-arn", function_role_arn),
    Rule::new("throttling-limits", throttling_limits),
    Rule::new("history-messages", history_messages),
    Rule::new("history-retention", history_retention),
    Rule::new("channels-per-connection", channels_per_connection),
    Rule::new("fanout-posts-per-second", fanout_posts_per_second),
    Rule::new("jwt-issuer", jwt_issuer),
    Rule::new("jwt-audiences", jwt_audiences),
    Rule::new("jwt-jwks-uri", jwt_jwks_uri),
    Rule::new("jwt-identity-source", jwt_identity_source),
    Rule::new("jwt-name-claim", jwt_name_claim),
    Rule::new("backend-url", backend_url),
    Rule::new("backend-routes", backend_routes),
    Rule::new("backend-route-not-reserved", backend_route_not_reserved),
    Rule::new(
        "backend-route-not-message-route",
        backend_route_not_message_route,
    ),
    Rule::new("backend-events", backend_events),
    Rule::new("backend-secret-ref", backend_secret_ref),
    Rule::new("backend-timeout", backend_timeout),
    Rule::new("domain-name", domain_name),
    Rule::new("domain-certificate-arn", domain_certificate_arn),
    Rule::new("domain-base-path", domain_base_path),
    Rule::new("access-log-retention", access_log_retention),
    Rule::new("region", region),
    Rule::new("tag-count", tag_count),
    Rule::new("tag-key-length", tag_key_length),
    Rule::new("tag-key-not-reserved", tag_key_not_reserved),
    Rule::new("tag-value-length", tag_value_length),
    Rule::new("tag-characters", tag_characters),
];

fn name_is_a_dns_subdomain(room: &ChatRoom, f: &mut Findings) {
    match room.metadata.name.as_deref() {
        None | Some("") => f.fail("metadata.name", "is required".into()),
        Some(name) if !is_dns_subdomain(name) => f.fail(
            "metadata.name",
            format!(
                "must be a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253), got {name:?}"
            ),
        ),
        Some(_) => {}
    }
}

fn namespace_is_a_dns_label(room: &ChatRoom, f: &mut Findings) {
    if let Some(namespace) = room.metadata.namespace.as_deref()
        && !is_dns_label(namespace)
    {
        f.fail(
            "metadata.namespace",
            format!(
                "must be a DNS label (lowercase letters, digits and '-', at most 63), got {namespace:?}"
            ),
        );
    }
}

fn stage_characters(room: &ChatRoom, f: &mut Findings) {
    let stage = &room.spec.stage;
    if !is_stage(stage) {
        f.fail(
            "spec.stage",
            format!("must be 1-128 characters of A-Z a-z 0-9 _ -, got {stage:?}"),
        );
    }
}

fn message_route_characters(room: &ChatRoom, f: &mut Findings) {
    let route = &room.spec.message_route;
    if !is_message_route(route) {
        f.fail(
            "spec.messageRoute",
            format!(
                "must be 1-128 characters of A-Z a-z 0-9 _ . : - (a route key not starting with $), got {route:?}"
            ),
        );
    }
}

fn message_route_not_reserved(room: &ChatRoom, f: &mut Findings) {
    let route = &room.spec.message_route;
    if RESERVED_ROUTES.contains(&route.as_str()) {
        f.fail(
            "spec.messageRoute",
            format!(
                "must not be {}: every room has those routes, got {route:?}",
                RESERVED_ROUTES.join(" or ")
            ),
        );
    }
}

fn route_selection_expression(room: &ChatRoom, f: &mut Findings) {
    if let Err(error) = RouteSelectionExpression::parse(&room.spec.route_selection_expression) {
        f.fail("spec.routeSelectionExpression", error.to_string());
    }
}

fn capacities_follow_billing_mode(room: &ChatRoom, f: &mut Findings) {
    let table = &room.spec.connection_table;
    let capacities = [
        ("spec.connectionTable.readCapacity", table.read_capacity),
        ("spec.connectionTable.writeCapacity", table.write_capacity),
    ];
    for (field, capacity) in capacities {
        match (table.billing_mode, capacity) {
            (BillingMode::Provisioned, None) => {
                f.fail(field, "is required when billingMode is PROVISIONED".into());
            }
            (BillingMode::Provisioned, Some(units)) if units < 1 => {
                f.fail(field, format!("must be at least 1, got {units}"));
            }
            (BillingMode::PayPerRequest, Some(_)) => {
                f.fail(
                    field,
                    "is only allowed when billingMode is PROVISIONED".into(),
                );
            }
            _ => {}
        }
    }
}

fn function_memory(room: &ChatRoom, f: &mut Findings) {
    let memory = room.spec.function.memory_mb;
    if !(128..=10240).contains(&memory) {
        f.fail(
            "spec.function.memoryMB",
            format!("must be between 128 and 10240, got {memory}"),
        );
    }
}

fn function_timeout(room: &ChatRoom, f: &mut Findings) {
    let timeout = room.spec.function.timeout_seconds;
    if !(1..=29).contains(&timeout) {
        f.fail(
            "spec.function.timeoutSeconds",
            format!("must be between 1 and 29 (API Gateway's integration timeout), got {timeout}"),
        );
    }
}

fn function_log_retention(room: &ChatRoom, f: &mut Findings) {
    let days = room.spec.function.log_retention_days;
    if !LOG_RETENTION_DAYS.contains(&days) {
        f.fail(
            "spec.function.logRetentionDays",
            format!(
                "must be one of {LOG_RETENTION_DAYS:?} (what CloudWatch Logs accepts), got {days}"
            ),
        );
    }
}

fn function_role_arn(room: &ChatRoom, f: &mut Findings) {
    if let Some(arn) = room.spec.function.role_arn.as_deref()
        && !is_role_arn(arn)
    {
        f.fail(
            "spec.function.roleArn",
            format!("must be an IAM role ARN (arn:aws:iam::123456789012:role/name), got {arn:?}"),
        );
    }
}

fn throttling_limits(room: &ChatRoom, f: &mut Findings) {
    let Some(throttling) = &room.spec.throttling else {
        return;
    };
    // A limit of 0 lets no message through.
    if throttling.burst_limit < 1 {
        f.fail(
            "spec.throttling.burstLimit",
            format!("must be at least 1, got {}", throttling.burst_limit),
        );
    }
    let rate = throttling.rate_limit;
    if !(rate > 0.0 && rate.is_finite()) {
        f.fail(
            "spec.throttling.rateLimit",
            format!("must be more than 0, got {rate}"),
        );
    }
}

fn history_messages(room: &ChatRoom, f: &mut Findings) {
    if let Some(history) = &room.spec.history
        && !(0..=200).contains(&history.messages)
    {
        f.fail(
            "spec.history.messages",
            format!("must be between 0 and 200, got {}", history.messages),
        );
    }
}

fn channels_per_connection(room: &ChatRoom, f: &mut Findings) {
    if let Some(channels) = &room.spec.channels
        && !(1..=100).contains(&channels.max_per_connection)
    {
        f.fail(
            "spec.channels.maxPerConnection",
            format!(
                "must be between 1 and 100, got {}",
                channels.max_per_connection
            ),
        );
    }
}

fn fanout_posts_per_second(room: &ChatRoom, f: &mut Findings) {
    if let Some(fanout) = &room.spec.fanout
        && !(1..=1_000_000).contains(&fanout.posts_per_second)
    {
        f.fail(
            "spec.fanout.postsPerSecond",
            format!(
                "must be between 1 and 1000000, got {}",
                fanout.posts_per_second
            ),
        );
    }
}

fn history_retention(room: &ChatRoom, f: &mut Findings) {
    if let Some(history) = &room.spec.history
        && history.retention().is_none()
    {
        f.fail(
            "spec.history.retention",
            format!(
                "must be whole hours or days from 1h to 30d, such as 24h or 7d, got {:?}",
                history.retention
            ),
        );
    }
}

fn jwt(room: &ChatRoom) -> Option<&crate::crd::JwtSpec> {
    room.spec.auth.as_ref().map(|auth| &auth.jwt)
}

fn jwt_issuer(room: &ChatRoom, f: &mut Findings) {
    if let Some(jwt) = jwt(room)
        && (jwt.issuer.trim().is_empty() || jwt.issuer.len() > 2048)
    {
        f.fail("spec.auth.jwt.issuer", "must be 1-2048 characters".into());
    }
}

fn jwt_audiences(room: &ChatRoom, f: &mut Findings) {
    if let Some(jwt) = jwt(room)
        && (!(1..=20).contains(&jwt.audiences.len())
            || jwt.audiences.iter().any(|a| a.is_empty() || a.len() > 256))
    {
        f.fail(
            "spec.auth.jwt.audiences",
            "must hold 1-20 audiences of 1-256 characters".into(),
        );
    }
}

fn jwt_jwks_uri(room: &ChatRoom, f: &mut Findings) {
    if let Some(jwt) = jwt(room) {
        if jwt.jwks_uri.len() > 2048 {
            f.fail(
                "spec.auth.jwt.jwksUri",
                "must be at most 2048 characters".into(),
            );
        } else if let Some(problem) =
            chatroom_handlers::auth::https_or_loopback_problem(&jwt.jwks_uri)
        {
            f.fail("spec.auth.jwt.jwksUri", problem);
        }
    }
}

fn jwt_identity_source(room: &ChatRoom, f: &mut Findings) {
    if let Some(jwt) = jwt(room)
        && let Err(error) = chatroom_handlers::auth::IdentitySource::parse(&jwt.identity_source)
    {
        f.fail("spec.auth.jwt.identitySource", error.to_string());
    }
}

fn jwt_name_claim(room: &ChatRoom, f: &mut Findings) {
    if let Some(jwt) = jwt(room)
        && jwt
            .name_claim
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > 256)
    {
        f.fail("spec.auth.jwt.nameClaim", "must be 1-256 characters".into());
    }
}

fn backend_url(room: &ChatRoom, f: &mut Findings) {
    if let Some(backend) = &room.spec.backend {
        if backend.url.is_empty() || backend.url.len() > 2048 {
            f.fail("spec.backend.url", "must be 1-2048 characters".into());
        } else if let Some(problem) =
            chatroom_handlers::auth::https_or_loopback_problem(&backend.url)
        {
            f.fail("spec.backend.url", problem);
        }
    }
}

fn backend_routes(room: &ChatRoom, f: &mut Findings) {
    let Some(backend) = &room.spec.backend else {
        return;
    };
    if backend.routes.len() > 20 {
        f.fail("spec.backend.routes", "must hold at most 20 routes".into());
    }
    for route in &backend.routes {
        if !is_message_route(route) {
            f.fail(
                "spec.backend.routes",
                format!(
                    "must be 1-128 characters of A-Z a-z 0-9 _ . : - (a route key not starting with $), got {route:?}"
                ),
            );
        }
    }
    if has_duplicates(&backend.routes) {
        f.fail("spec.backend.routes", "must not name a route twice".into());
    }
}

fn has_duplicates<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, item)| items[..i].contains(item))
}

fn backend_route_not_reserved(room: &ChatRoom, f: &mut Findings) {
    let Some(backend) = &room.spec.backend else {
        return;
    };
    for route in &backend.routes {
        if RESERVED_ROUTES.contains(&route.as_str()) {
            f.fail(
                "spec.backend.routes",
                format!(
                    "must not hold {}: every room has those routes, got {route:?}",
                    RESERVED_ROUTES.join(" or ")
                ),
            );
        }
    }
}

fn backend_route_not_message_route(room: &ChatRoom, f: &mut Findings) {
    if let Some(backend) = &room.spec.backend
        && backend.routes.contains(&room.spec.message_route)
    {
        f.fail(
            "spec.backend.routes",
            format!(
                "must not hold spec.messageRoute ({:?}): that route broadcasts",
                room.spec.message_route
            ),
        );
    }
}

fn backend_events(room: &ChatRoom, f: &mut Findings) {
    if let Some(backend) = &room.spec.backend
        && has_duplicates(&backend.events)
    {
        f.fail("spec.backend.events", "must not name an event twice".into());
    }
}

fn backend_secret_ref(room: &ChatRoom, f: &mut Findings) {
    let Some(backend) = &room.spec.backend else {
        return;
    };
    match &backend.secret_ref {
        None if backend.url.starts_with("https://") => f.fail(
            "spec.backend.secretRef",
            "is required for an https backend: every request to it is signed".into(),
        ),
        None => {}
        Some(secret) => {
            if !is_dns_subdomain(&secret.name) {
                f.fail(
                    "spec.backend.secretRef.name",
                    format!(
                        "must be a Secret's name (a DNS subdomain), got {:?}",
                        secret.name
                    ),
                );
            }
            let key_characters = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
            if !(1..=253).contains(&secret.key.len()) || !secret.key.chars().all(key_characters) {
                f.fail(
                    "spec.backend.secretRef.key",
                    format!(
                        "must be 1-253 characters of A-Z a-z 0-9 - . _, got {:?}",
                        secret.key
                    ),
                );
            }
        }
    }
}

fn backend_timeout(room: &ChatRoom, f: &mut Findings) {
    if let Some(backend) = &room.spec.backend
        && !u64::try_from(backend.timeout_seconds)
            .is_ok_and(|s| (1..=MAX_TIMEOUT_SECONDS).contains(&s))
    {
        f.fail(
            "spec.backend.timeoutSeconds",
            format!(
                "must be from 1 to {MAX_TIMEOUT_SECONDS}, got {}",
                backend.timeout_seconds
            ),
        );
    }
}

fn domain_name(room: &ChatRoom, f: &mut Findings) {
    if let Some(domain) = &room.spec.domain
        && (domain.name.len() > 253 || !matches(&DOMAIN_NAME, &domain.name))
    {
        f.fail(
            "spec.domain.name",
            format!(
                "must be a lower-case DNS name such as chat.example.com, got {:?}",
                domain.name
            ),
        );
    }
}

fn domain_certificate_arn(room: &ChatRoom, f: &mut Findings) {
    if let Some(domain) = &room.spec.domain
        && !matches(&CERTIFICATE_ARN, &domain.certificate_arn)
    {
        f.fail(
            "spec.domain.certificateArn",
            format!(
                "must be an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID), got {:?}",
                domain.certificate_arn
            ),
        );
    }
}

fn domain_base_path(room: &ChatRoom, f: &mut Findings) {
    if let Some(domain) = &room.spec.domain
        && !matches(&BASE_PATH, &domain.base_path)
    {
        f.fail(
            "spec.domain.basePath",
            format!(
                "must be empty or one path segment of at most 300 letters, digits and $ - _ . + ! * ' ( ) (what API Gateway takes for a WebSocket API's mapping), got {:?}",
                domain.base_path
            ),
        );
    }
}

fn access_log_retention(room: &ChatRoom, f: &mut Findings) {
    if let Some(access_log) = &room.spec.access_log
        && !LOG_RETENTION_DAYS.contains(&access_log.retention_days)
    {
        f.fail(
            "spec.accessLog.retentionDays",
            format!(
                "must be one of {LOG_RETENTION_DAYS:?} (what CloudWatch Logs accepts), got {}",
                access_log.retention_days
            ),
        );
    }
}

fn region(room: &ChatRoom, f: &mut Findings) {
    if let Some(region) = room.spec.region.as_deref()
        && !is_region(region)
    {
        f.fail(
            "spec.region",
            format!("must be an AWS region such as eu-west-1, got {region:?}"),
        );
    }
}

fn tag_field(key: &str) -> String {
    format!("spec.tags[{key:?}]")
}

fn tag_count(room: &ChatRoom, f: &mut Findings) {
    let count = room.spec.tags.len();
    if count > MAX_USER_TAGS {
        f.fail(
            "spec.tags",
            format!("must have at most {MAX_USER_TAGS} tags, got {count}"),
        );
    }
}

fn tag_key_length(room: &ChatRoom, f: &mut Findings) {
    for key in room.spec.tags.keys() {
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS {
            f.fail(
                &tag_field(key),
                format!("tag keys must be 1-{MAX_TAG_KEY_CHARS} characters"),
            );
        }
    }
}

fn tag_key_not_reserved(room: &ChatRoom, f: &mut Findings) {
    for key in room.spec.tags.keys() {
        if let Some(prefix) = RESERVED_TAG_PREFIXES.iter().find(|p| key.starts_with(*p)) {
            f.fail(
                &tag_field(key),
                format!("tag keys must not start with {prefix}"),
            );
        }
    }
}

fn tag_value_length(room: &ChatRoom, f: &mut Findings) {
    for (key, value) in &room.spec.tags {
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            f.fail(
                &tag_field(key),
                format!("tag values must be at most {MAX_TAG_VALUE_CHARS} characters"),
            );
        }
    }
}

fn tag_characters(room: &ChatRoom, f: &mut Findings) {
    for (key, value) in &room.spec.tags {
        if !is_tag_text(key) || !is_tag_text(value) {
            f.fail(
                &tag_field(key),
                "tag keys and values may hold only letters, digits, spaces and _ . : / = + - @"
                    .into(),
            );
        }
    }
}
