//! `helm install` of the chart on a real kube-apiserver, with each provider's values: every
//! object it renders is accepted and exists afterwards, the CRD it carries is installed and kept
//! on uninstall. (No `--wait`: there is no kubelet, so the Deployment never gets a Pod; the
//! operator itself runs as a process signed in as the chart's ServiceAccount in run_cluster.rs
//! and run_cluster_aws.rs.)

mod cluster;

use std::process::Command;

use cluster::{Cluster, admin_kubeconfig, kubectl_admin, stderr, stdout};

fn helm(args: &[&str]) -> std::process::Output {
    Command::new(std::env::var("HELM").unwrap_or_else(|_| "helm".into()))
        .args(args)
        .arg("--kubeconfig")
        .arg(admin_kubeconfig())
        .output()
        .unwrap()
}

/// The kinds of the objects a release made, as the server lists them.
fn kinds_in(cluster: &Cluster, release: &str) -> Vec<String> {
    let selector = format!("app.kubernetes.io/instance={release}");
    let out = cluster.kubectl(&[
        "get",
        "deployment,service,serviceaccount,secret,networkpolicy,role,rolebinding",
        "-l",
        &selector,
        "-o",
        "name",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn the_chart_installs_with_the_aws_values_and_with_the_local_values() {
    let cluster = Cluster::new("chart");
    let chart = chatroom_testkit::repo_root().join("charts/chatroom-operator");
    let local_values = chart.join("ci/local-values.yaml");
    let aws = format!("{}-aws", cluster.namespace);
    let local = format!("{}-local", cluster.namespace);

    // The CRD comes with the chart here. The suite's tests share one already installed, so
    // this release takes it over, as `helm install` over a `kubectl apply`d CRD would.
    let out = cluster.helm_install(&aws, &["--take-ownership"]);
    assert!(out.status.success(), "aws values: {}", stderr(&out));
    let out = cluster.helm_install(
        &local,
        &[
            "-f",
            local_values.to_str().unwrap(),
            "--set",
            "crds.install=false",
        ],
    );
    assert!(out.status.success(), "local values: {}", stderr(&out));

    let aws_kinds = kinds_in(&cluster, &aws);
    for object in [
        format!("deployment.apps/{aws}-chatroom-operator"),
        format!("serviceaccount/{aws}-chatroom-operator"),
        format!("service/{aws}-chatroom-operator-metrics"),
    ] {
        assert!(aws_kinds.contains(&object), "{object} not in {aws_kinds:?}");
    }
    let local_kinds = kinds_in(&cluster, &local);
    for object in [
        format!("deployment.apps/{local}-chatroom-operator"),
        format!("service/{local}-chatroom-operator-management"),
        format!("networkpolicy.networking.k8s.io/{local}-chatroom-operator"),
    ] {
        assert!(
            local_kinds.contains(&object),
            "{object} not in {local_kinds:?}"
        );
    }
    let crd = kubectl_admin(&[
        "get",
        "crd",
        "chatrooms.chatroom.dev",
        "-o",
        "jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name}",
    ]);
    assert_eq!(stdout(&crd), aws, "the chart's release owns the CRD");

    for release in [&aws, &local] {
        let out = helm(&["uninstall", release, "--namespace", &cluster.namespace]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Deleting the CRD would delete every room of the cluster: the chart keeps it.
    let kept = kubectl_admin(&["get", "crd", "chatrooms.chatroom.dev", "-o", "name"]);
    assert!(kept.status.success(), "uninstall deleted the CRD");
    assert_eq!(kinds_in(&cluster, &aws), Vec::<String>::new());
}

/// The GitOps examples' Argo CD Application and Flux HelmRelease are judged by CRDs this
/// machine cannot have (their controllers' own); what they would apply can be: the chart
/// rendered with each one's values, as those tools render it, and applied server-side (Argo
/// CD's `ServerSideApply=true`) with `--dry-run=server`.
#[test]
fn what_the_argo_cd_and_flux_examples_would_apply_is_accepted_by_the_api_server() {
    let cluster = Cluster::new("gitops");
    let root = chatroom_testkit::repo_root();
    let argo: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(
        &std::fs::read_to_string(root.join("examples/gitops/argocd/operator.yaml")).unwrap(),
    )
    .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
    .collect();
    let flux: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("examples/gitops/flux/operator/helmrelease.yaml"))
            .unwrap(),
    )
    .unwrap();
    let operator_app = argo
        .iter()
        .find(|app| app["spec"]["source"]["path"] == "charts/chatroom-operator")
        .expect("an Application of the chart");
    for (tool, values) in [
        (
            "argocd",
            &operator_app["spec"]["source"]["helm"]["valuesObject"],
        ),
        ("flux", &flux["spec"]["values"]),
    ] {
        assert!(values.is_mapping(), "{tool}: no values");
        let file = cluster.dir().join(format!("{tool}-values.yaml"));
        std::fs::write(&file, serde_yaml::to_string(values).unwrap()).unwrap();
        let rendered = Command::new(std::env::var("HELM").unwrap_or_else(|_| "helm".into()))
            .args(["template", "chatroom-operator"])
            .arg(root.join("charts/chatroom-operator"))
            .args(["--namespace", &cluster.namespace, "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(rendered.status.success(), "{tool}: {}", stderr(&rendered));
        let out = cluster.kubectl_with_input(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--dry-run=server",
                "-f",
                "-",
            ],
            &stdout(&rendered),
        );
        assert!(out.status.success(), "{tool}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("deployment.apps/chatroom-operator serverside-applied"),
            "{tool}: {}",
            stdout(&out)
        );
    }
}
