//! The real kube-apiserver and etcd that `scripts/k8s.sh up` started (scripts/test.sh starts
//! them), shared by every test: each test works in a namespace of its own and talks to the
//! server with the same kubectl a user runs. The server's audit log tells what each client did.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chatroom_operator::crd::ChatRoomStatus;
use serde_json::{Value, json};

/// Where scripts/k8s.sh leaves the server's files.
fn state_dir() -> PathBuf {
    chatroom_testkit::repo_root().join("target/k8s")
}

/// `KEY=value` lines of target/k8s/env, written by `scripts/k8s.sh up`.
fn k8s_env(key: &str) -> String {
    let path = state_dir().join("env");
    let env = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no real API server: {} is missing; run `bash scripts/k8s.sh up` (scripts/test.sh does)",
            path.display()
        )
    });
    env.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_else(|| panic!("{key} is not in {}", path.display()))
}

pub fn kubectl_path() -> PathBuf {
    PathBuf::from(k8s_env("KUBECTL"))
}

pub fn admin_kubeconfig() -> PathBuf {
    PathBuf::from(k8s_env("KUBECONFIG"))
}

/// The generated CRD, applied once per test process (server-side apply, so that every test
/// binary may do so at once), then waited on until the server serves ChatRooms.
fn install_crd() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let crd = chatroom_testkit::repo_root().join("crds/chatroom.dev_chatrooms.yaml");
        let out = kubectl_admin(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "chatroom-tests",
            "-f",
            crd.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "the CRD was refused: {}",
            stderr(&out)
        );
        let out = kubectl_admin(&[
            "wait",
            "--for",
            "condition=Established",
            "--timeout",
            "30s",
            "crd/chatrooms.chatroom.dev",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    });
}

pub fn kubectl_admin(args: &[&str]) -> Output {
    Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(admin_kubeconfig())
        .args(args)
        .output()
        .unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One test's namespace on the shared server.
pub struct Cluster {
    pub namespace: String,
    dir: PathBuf,
}

impl Cluster {
    /// A new namespace named after the test (`prefix`), with the CRD installed.
    pub fn new(prefix: &str) -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        install_crd();
        let namespace = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        assert!(
            namespace.len() <= 63,
            "{namespace} is too long for a namespace"
        );
        let out = kubectl_admin(&["create", "namespace", &namespace]);
        assert!(out.status.success(), "{}", stderr(&out));
        let dir = std::env::temp_dir().join(format!("chatroom-cluster-{namespace}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { namespace, dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// kubectl as the admin, in this namespace.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", &self.namespace];
        all.extend_from_slice(args);
        kubectl_admin(&all)
    }

    /// kubectl with `input` on its standard input.
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(admin_kubeconfig())
            .args(["-n", &self.namespace])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    fn get_json(&self, args: &[&str]) -> Option<Value> {
        let mut all = vec!["get", "-o", "json", "--ignore-not-found"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        (!text.trim().is_empty()).then(|| serde_json::from_str(&text).unwrap())
    }

    pub fn add_room(&self, name: &str, spec: Value) {
        let room = json!({
            "apiVersion": "chatroom.dev/v1alpha1",
            "kind": "ChatRoom",
            "metadata": { "name": name },
            "spec": spec,
        });
        let out = self.kubectl_with_input(&["create", "-f", "-"], &room.to_string());
        assert!(out.status.success(), "{name} was refused: {}", stderr(&out));
    }

    /// A merge patch of the room's spec: a new generation.
    pub fn update_spec(&self, name: &str, spec: Value) {
        let patch = json!({ "spec": spec }).to_string();
        self.ok(&["patch", "chatroom", name, "--type", "merge", "-p", &patch]);
    }

    /// Asks for the deletion and returns at once; the finalizer holds the room until the
    /// operator has cleaned up.
    pub fn delete_room(&self, name: &str) {
        self.ok(&["delete", "chatroom", name, "--wait=false"]);
    }

    pub fn room(&self, name: &str) -> Option<Value> {
        self.get_json(&["chatroom", name])
    }

    pub fn status(&self, name: &str) -> Option<ChatRoomStatus> {
        let room = self.room(name)?;
        serde_json::from_value(room.get("status")?.clone()).ok()
    }

    pub fn lease_holder(&self, name: &str) -> Option<String> {
        let lease = self.get_json(&["lease", name])?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
    }

    /// Another holder takes the Lease over, as a second operator with a clock ahead would.
    pub fn steal_lease(&self, name: &str, holder: &str) {
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let patch = json!({ "spec": {
            "holderIdentity": holder,
            "acquireTime": now,
            "renewTime": now,
            "leaseDurationSeconds": 3600,
        }})
        .to_string();
        self.ok(&["patch", "lease", name, "--type", "merge", "-p", &patch]);
    }

    /// Events (events.k8s.io/v1) of this namespace.
    pub fn events(&self) -> Vec<Value> {
        self.get_json(&["events.v1.events.k8s.io"])
            .and_then(|list| list["items"].as_array().cloned())
            .unwrap_or_default()
    }

    pub async fn wait_until(&self, what: &str, within: Duration, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + within;
        while !check(self) {
            assert!(Instant::now() < deadline, "not within {within:?}: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A kubeconfig that signs in with a fresh token of `service_account` (as a pod of it would),
    /// its default namespace this one; and the token's id, which the audit log records.
    pub fn token_kubeconfig(&self, service_account: &str, name: &str) -> (PathBuf, String) {
        let token = self.ok(&["create", "token", service_account, "--duration", "1h"]);
        let token = token.trim();
        let claims = token
            .split('.')
            .nth(1)
            .map(|payload| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap()
            })
            .map(|json| serde_json::from_slice::<Value>(&json).unwrap())
            .unwrap();
        let jti = claims["jti"].as_str().unwrap().to_owned();
        let admin: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(admin_kubeconfig()).unwrap()).unwrap();
        let cluster = &admin["clusters"][0]["cluster"];
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "test", "cluster": {
                "server": cluster["server"].as_str().unwrap(),
                "certificate-authority-data": cluster["certificate-authority-data"].as_str().unwrap(),
            }}],
            "users": [{ "name": service_account, "user": { "token": token } }],
            "contexts": [{ "name": "test", "context": {
                "cluster": "test", "user": service_account, "namespace": self.namespace,
            }}],
            "current-context": "test",
        });
        let path = self.dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, config.to_string()).unwrap();
        (path, jti)
    }

    /// `helm install` of the chart into this namespace (never `--wait`: no kubelet runs Pods).
    pub fn helm_install(&self, release: &str, args: &[&str]) -> Output {
        let chart = chatroom_testkit::repo_root().join("charts/chatroom-operator");
        Command::new(std::env::var("HELM").unwrap_or_else(|_| "helm".into()))
            .args(["install", release, chart.to_str().unwrap()])
            .args(["--namespace", &self.namespace])
            .arg("--kubeconfig")
            .arg(admin_kubeconfig())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = kubectl_admin(&["delete", "namespace", &self.namespace, "--wait=false"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every request the audit log holds so far.
pub fn audit_events() -> Vec<Value> {
    let text = std::fs::read_to_string(state_dir().join("audit.log")).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The token id a request was made with (`authentication.kubernetes.io/credential-id`).
pub fn credential_id(event: &Value) -> Option<String> {
    event["user"]["extra"]["authentication.kubernetes.io/credential-id"][0]
        .as_str()
        .map(|id| id.trim_start_matches("JTI=").to_owned())
}

/// (apiGroup, resource[/subresource], verb) of every request in `events`, as RBAC names them.
pub fn rbac_uses(events: &[Value]) -> BTreeSet<(String, String, String)> {
    events
        .iter()
        .filter_map(|event| {
            let object = event.get("objectRef")?;
            let resource = object["resource"].as_str()?;
            let resource = match object["subresource"].as_str() {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.to_owned(),
            };
            Some((
                object["apiGroup"].as_str().unwrap_or("").to_owned(),
                resource,
                event["verb"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Requests the server refused as forbidden.
pub fn forbidden(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|event| event["responseStatus"]["code"] == 403)
        .collect()
}

impl Cluster {
    /// The chart installed in this namespace as a user would (`helm install`, its CRD left to
    /// the suite), with `values`; returns its ServiceAccount's name. The release is named after
    /// the namespace, so that its cluster-wide RBAC objects do not meet another test's.
    pub fn install_chart(&self, values: &[&str]) -> String {
        let mut args = vec!["--set", "crds.install=false"];
        args.extend_from_slice(values);
        let out = self.helm_install(&self.namespace, &args);
        assert!(
            out.status.success(),
            "helm install: {}{}",
            stdout(&out),
            stderr(&out)
        );
        format!("{}-chatroom-operator", self.namespace)
    }

    /// The room's URL once its status says Ready.
    pub fn ready_url(&self, name: &str) -> Option<String> {
        let status = self.status(name)?;
        if !chatroom_operator::status::is_ready(&status.conditions) {
            return None;
        }
        status.websocket_url
    }

    /// What the tokens with these ids asked of the server.
    pub fn audit_of_tokens(&self, ids: &[&str]) -> Vec<Value> {
        audit_events()
            .into_iter()
            .filter(|event| credential_id(event).is_some_and(|id| ids.contains(&id.as_str())))
            .collect()
    }
}

impl Cluster {
    /// The names of this namespace's Ready rooms, in one request.
    pub fn ready_rooms(&self) -> BTreeSet<String> {
        let list = self.get_json(&["chatrooms"]).unwrap_or_default();
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|room| {
                serde_json::from_value::<ChatRoomStatus>(room["status"].clone())
                    .is_ok_and(|s| chatroom_operator::status::is_ready(&s.conditions))
            })
            .filter_map(|room| room["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The names of this namespace's rooms, in one request.
    pub fn room_names(&self) -> BTreeSet<String> {
        let list = self.get_json(&["chatrooms"]).unwrap_or_default();
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|room| room["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Cluster {
    /// Sets the room's finalizers, as another controller (or a person) would.
    pub fn update_finalizers(&self, name: &str, finalizers: Value) {
        let patch = json!({ "metadata": { "finalizers": finalizers } }).to_string();
        self.ok(&["patch", "chatroom", name, "--type", "merge", "-p", &patch]);
    }
}
