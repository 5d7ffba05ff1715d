//! The ChatRoom API as a real kube-apiserver judges it: the CRD as `chatroom-operator crd`
//! prints it and as the chart ships it compiles (every CEL rule, within its cost budget); each
//! room of `validate/cases.yaml` is refused by the server and by validate(), naming the same
//! field; rooms at every bound are accepted; the examples users copy are accepted.

mod binary;
mod cluster;

use std::process::Command;

use chatroom_operator::validate::{rule_cases, validate};
use cluster::{Cluster, stderr, stdout};
use serde_json::{Value, json};

/// The CRD under a group of its own, so that the server judges it as a new definition (a create
/// compiles and prices every rule; an update of an unchanged rule is let through).
fn renamed_crd(crd_yaml: &str, group: &str) -> Value {
    let mut crd: Value = serde_yaml::from_str(crd_yaml).unwrap();
    assert_eq!(crd["kind"], "CustomResourceDefinition", "{crd_yaml}");
    crd["metadata"] = json!({ "name": format!("chatrooms.{group}") });
    crd["spec"]["group"] = json!(group);
    crd
}

fn create_dry_run(cluster: &Cluster, object: &Value) -> std::process::Output {
    cluster.kubectl_with_input(
        &["create", "--dry-run=server", "-o", "name", "-f", "-"],
        &object.to_string(),
    )
}

#[test]
fn the_crd_from_the_binary_and_from_the_chart_is_accepted_by_the_api_server() {
    let cluster = Cluster::new("crd");
    let printed = binary::binary().arg("crd").output().unwrap();
    assert!(printed.status.success(), "{}", stderr(&printed));
    let helm = std::env::var("HELM").unwrap_or_else(|_| "helm".into());
    let chart = chatroom_testkit::repo_root().join("charts/chatroom-operator");
    let rendered = Command::new(helm)
        .args(["template", "t", chart.to_str().unwrap()])
        .args(["--show-only", "templates/crd.yaml"])
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{}", stderr(&rendered));

    for (source, yaml) in [("crd", stdout(&printed)), ("chart", stdout(&rendered))] {
        let crd = renamed_crd(&yaml, &format!("{source}.check.chatroom.dev"));
        let out = create_dry_run(&cluster, &crd);
        assert!(
            out.status.success(),
            "the API server refuses the CRD from {source}: {}",
            stderr(&out)
        );
    }
    // The same, for real: the shared server serves ChatRooms from the generated CRD.
    let established = cluster.kubectl(&[
        "get",
        "crd",
        "chatrooms.chatroom.dev",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
    ]);
    assert_eq!(stdout(&established), "True", "{}", stderr(&established));
}

#[test]
fn a_crd_with_a_rule_that_does_not_compile_is_refused_so_the_check_above_can_fail() {
    let cluster = Cluster::new("crd-bad");
    let printed = binary::binary().arg("crd").output().unwrap();
    let mut crd = renamed_crd(&stdout(&printed), "broken.check.chatroom.dev");
    // The rule the shipped CRD once carried: `\.` is no escape in a plain CEL string.
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["stage"]
        ["x-kubernetes-validations"] = json!([{
        "rule": "self.matches('^http://(localhost|127\\.[0-9.]+)$')",
    }]);
    let out = create_dry_run(&cluster, &crd);
    assert!(
        !out.status.success(),
        "a rule that cannot compile was accepted"
    );
    assert!(
        stderr(&out).contains("compilation failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn each_room_that_breaks_a_rule_is_refused_by_the_api_server_and_by_validate_naming_one_field() {
    let cluster = Cluster::new("rules");
    let cases = rule_cases().unwrap();
    let mut asked = 0;
    for case in cases.iter().filter(|case| case.api_server) {
        let mut room = case.room_json();
        room["metadata"]["namespace"] = json!(cluster.namespace);

        let judged = validate(&serde_json::from_value(room.clone()).unwrap());
        let errors = judged.expect_err(&case.rule).0;
        assert!(
            errors.iter().all(|e| e.field.starts_with(&case.field)),
            "{}: validate() says {errors:?}",
            case.rule
        );

        let out = create_dry_run(&cluster, &room);
        let refusal = stderr(&out);
        assert!(
            !out.status.success(),
            "{}: the API server accepted {room}",
            case.rule
        );
        assert!(
            refusal.contains("is invalid") && refusal.contains(&case.field),
            "{}: the API server's refusal does not name {}: {refusal}",
            case.rule,
            case.field
        );
        asked += 1;
    }
    assert!(asked >= 30, "only {asked} rooms were put to the server");
}

#[test]
fn rooms_at_every_bound_are_accepted_by_the_api_server_and_by_validate() {
    let cluster = Cluster::new("bounds");
    // 40 tags, each key 128 and each value 256 characters: the most a room may carry.
    let tags: serde_json::Map<String, Value> = (0..40)
        .map(|i| {
            let key = format!("{i:02}{}", "k".repeat(126));
            (key, json!("v".repeat(256)))
        })
        .collect();
    let jwt = |jwks_uri: &str| json!({ "issuer": "https://login.example.com/", "audiences": ["chat"], "jwksUri": jwks_uri });
    let rooms = [
        json!({ "auth": { "jwt": jwt("http://127.0.0.1:8080/jwks.json") }, "tags": tags }),
        json!({ "auth": { "jwt": jwt("http://localhost/jwks.json") } }),
        json!({ "auth": { "jwt": jwt("http://[::1]:9/keys") } }),
        json!({ "auth": { "jwt": jwt("https://login.example.com/.well-known/jwks.json") } }),
        json!({ "history": { "messages": 200, "retention": "30d" }, "stage": "a".repeat(128) }),
        json!({ "channels": { "maxPerConnection": 100 } }),
        json!({ "channels": { "maxPerConnection": 1 } }),
        json!({ "channels": {} }),
        json!({ "fanout": { "postsPerSecond": 1_000_000 } }),
        json!({ "fanout": { "postsPerSecond": 1 } }),
        json!({ "backend": {
            "url": format!("https://backend.example.com/{}", "p".repeat(2000)),
            "routes": (0..20).map(|i| format!("{i:02}{}", "r".repeat(126))).collect::<Vec<_>>(),
            "events": ["connect", "disconnect"],
            "secretRef": { "name": "b".repeat(253), "key": "k".repeat(253) },
            "timeoutSeconds": 25,
        } }),
        json!({ "backend": { "url": "http://[::1]:9/chat", "timeoutSeconds": 1 } }),
        json!({ "domain": {
            "name": "chat.example.com",
            "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d",
            "basePath": "lobby",
        }, "accessLog": { "retentionDays": 3653 } }),
    ];
    for (i, spec) in rooms.iter().enumerate() {
        let room = json!({
            "apiVersion": "chatroom.dev/v1alpha1",
            "kind": "ChatRoom",
            "metadata": { "name": format!("bound-{i}"), "namespace": cluster.namespace },
            "spec": spec,
        });
        assert_eq!(
            validate(&serde_json::from_value(room.clone()).unwrap()),
            Ok(()),
            "validate() refuses {spec}"
        );
        let out = create_dry_run(&cluster, &room);
        assert!(
            out.status.success(),
            "the API server refuses room {i}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn every_chatroom_example_is_accepted_by_the_api_server() {
    let _cluster = Cluster::new("examples");
    let root = chatroom_testkit::repo_root();
    let mut checked = Vec::new();
    for file in [
        "examples/chatroom.yaml",
        "examples/chatroom-history.yaml",
        "examples/chatroom-auth.yaml",
        "examples/chatroom-dev-auth.yaml",
        "examples/chatroom-backend.yaml",
        "examples/gitops/rooms/lobby.yaml",
        "examples/gitops/flux/operator/namespace.yaml",
    ] {
        let path = root.join(file);
        // As written: they name their own namespaces.
        let out =
            cluster::kubectl_admin(&["apply", "--dry-run=server", "-f", path.to_str().unwrap()]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        checked.push(file);
    }
    // A kustomization is built the way Argo CD and Flux build it, then judged.
    let rooms = root.join("examples/gitops/rooms");
    let out = cluster::kubectl_admin(&["apply", "--dry-run=server", "-k", rooms.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "examples/gitops/rooms: {}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("chatroom.chatroom.dev/"),
        "{}",
        stdout(&out)
    );
}
