//! docs/operations.md's commands for the operator's role, run as written with the AWS CLI
//! against the suite's moto, behind the IAM gate (which checks every parameter against AWS's
//! service models): the boundary and the operator's policies made, the role made with the
//! IRSA trust policy and then with the Pod Identity one, the policies attached.

mod binary;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const ROLE: &str = "operator-chatroom";
const POLICIES: [&str; 3] = [
    "chatroom-room-boundary",
    "chatroom-operator",
    "chatroom-operator-apigateway",
];

/// The ```sh block after `<!-- operator-role: NAME -->` in docs/operations.md.
fn block(doc: &str, name: &str) -> String {
    let marker = format!("<!-- operator-role: {name} -->");
    let after = doc
        .split_once(&marker)
        .unwrap_or_else(|| panic!("docs/operations.md has no {marker}"))
        .1;
    let body = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no ```sh block after {marker}"))
        .0;
    body.to_owned()
}

/// Runs `script` with bash in `dir`, the AWS CLI and the operator on its PATH, against moto.
fn run(dir: &Path, script: &str) {
    let operator = Path::new(env!("CARGO_BIN_EXE_chatroom-operator"));
    let path = format!(
        "{}:{}:{}",
        operator.parent().unwrap().display(),
        binary::repo_root().join("tools/venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL", chatroom_testkit::moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", chatroom_testkit::OWNER_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("CLUSTER_NAME")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn forget_everything(iam: &aws_sdk_iam::Client) {
    for policy in POLICIES {
        let arn = format!("arn:aws:iam::{ACCOUNT}:policy/{policy}");
        let _ = iam
            .detach_role_policy()
            .role_name(ROLE)
            .policy_arn(&arn)
            .send()
            .await;
        let _ = iam.delete_policy().policy_arn(&arn).send().await;
    }
    let _ = iam.delete_role().role_name(ROLE).send().await;
}

fn decoded(document: &str) -> Value {
    chatroom_testkit::iam_gate::document(document).expect("a JSON policy document")
}

#[tokio::test]
#[ignore = "needs moto behind the IAM gate and the AWS CLI; run through scripts/test.sh"]
async fn the_documented_commands_make_the_operators_role_with_either_trust_policy() {
    let doc = std::fs::read_to_string(binary::repo_root().join("docs/operations.md")).unwrap();
    let dir = std::env::temp_dir().join(format!("chatroom-operator-role-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::copy(
        binary::repo_root().join("docs/permissions-boundary.json"),
        dir.join("docs/permissions-boundary.json"),
    )
    .unwrap();
    let iam = aws_sdk_iam::Client::new(&chatroom_testkit::moto_sdk_config().await);

    for trust in ["irsa", "pod-identity"] {
        forget_everything(&iam).await;
        let script = [
            block(&doc, "policies"),
            block(&doc, trust),
            block(&doc, "role"),
        ]
        .join("\n");
        run(&dir, &script);

        // Each policy holds what iam-policy prints for the cluster `prod`.
        for (name, expected) in
            chatroom_operator::providers::aws::operator_policy::operator_policies("aws", "prod")
                .unwrap()
                .into_iter()
                .map(|p| (p.name, p.document))
        {
            let arn = format!("arn:aws:iam::{ACCOUNT}:policy/{name}");
            let version = iam
                .get_policy_version()
                .policy_arn(&arn)
                .version_id("v1")
                .send()
                .await
                .unwrap();
            let document = version.policy_version().unwrap().document().unwrap();
            assert_eq!(decoded(document), expected, "{name}");
        }
        let role = iam.get_role().role_name(ROLE).send().await.unwrap();
        let trust_policy = decoded(role.role().unwrap().assume_role_policy_document().unwrap());
        let principal = &trust_policy["Statement"][0]["Principal"];
        match trust {
            "irsa" => {
                let federated = principal["Federated"].as_str().unwrap();
                assert!(
                    federated
                        .starts_with(&format!("arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.")),
                    "{trust_policy}"
                );
                let condition = trust_policy["Statement"][0]["Condition"]["StringEquals"]
                    .as_object()
                    .unwrap();
                assert!(
                    condition
                        .values()
                        .any(|v| v == "system:serviceaccount:chatroom-system:chatroom-operator"),
                    "{trust_policy}"
                );
            }
            _ => assert_eq!(principal["Service"], "pods.eks.amazonaws.com"),
        }
        let attached = iam
            .list_attached_role_policies()
            .role_name(ROLE)
            .send()
            .await
            .unwrap();
        let mut names: Vec<&str> = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["chatroom-operator", "chatroom-operator-apigateway"],
            "{trust}"
        );
    }
    forget_everything(&iam).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
