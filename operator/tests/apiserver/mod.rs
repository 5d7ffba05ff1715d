//! A Kubernetes API server over real HTTP on loopback, in memory, for driving the
//! `chatroom-operator run` binary end to end: ChatRooms (list, watch, JSON and merge patches,
//! the status subresource, deletion with finalizers), Leases (get, create, patch with
//! server-side-apply conflicts on the holder) and Events. Every request is recorded with the
//! listener it came through, so a test tells replicas apart by giving each its own listener.
#![allow(dead_code)]

pub mod replica;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chatroom_operator::crd::ChatRoomStatus;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const ROOMS: &str = "/apis/chatroom.dev/v1alpha1";

#[derive(Clone, Debug)]
pub struct Request {
    /// The name of the listener (replica) it came through.
    pub via: String,
    pub method: String,
    pub path: String,
    pub query: String,
}

#[derive(Default)]
struct Cluster {
    resource_version: u64,
    rooms: BTreeMap<(String, String), Value>,
    /// Every room change, for watches that start from an older resourceVersion.
    history: Vec<(u64, Value)>,
    watchers: Vec<Watcher>,
    leases: BTreeMap<(String, String), Value>,
    events: Vec<Value>,
    requests: Vec<Request>,
    /// Status patches of these rooms are recorded and never answered.
    stuck_status: Vec<String>,
}

impl Cluster {
    /// Stores a changed room, or removes it once it is being deleted and no finalizer is left.
    fn store_room(&mut self, key: (String, String), room: Value) {
        let finalized = room["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if room["metadata"]["deletionTimestamp"].is_string() && finalized {
            self.rooms.remove(&key);
            self.room_changed("DELETED", room);
        } else {
            self.rooms.insert(key, room.clone());
            self.room_changed("MODIFIED", room);
        }
    }

    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn room_changed(&mut self, kind: &str, room: Value) {
        let version = self.resource_version;
        let line = json!({ "type": kind, "object": room });
        self.watchers.retain(|watcher| watcher.offer(&line));
        self.history.push((version, line));
    }
}

/// One open watch: the rooms of its namespace (or all), as JSON lines.
struct Watcher {
    namespace: Option<String>,
    lines: mpsc::UnboundedSender<Bytes>,
}

impl Watcher {
    /// Sends a watch event if it is in scope; false once the client has gone.
    fn offer(&self, line: &Value) -> bool {
        let namespace = line["object"]["metadata"]["namespace"].as_str();
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| Some(ns) != namespace)
        {
            return true;
        }
        let mut bytes = serde_json::to_vec(line).unwrap();
        bytes.push(b'\n');
        self.lines.send(Bytes::from(bytes)).is_ok()
    }
}

#[derive(Clone)]
pub struct ApiServer {
    cluster: Arc<Mutex<Cluster>>,
    dir: PathBuf,
}

impl ApiServer {
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("chatroom-apiserver-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            cluster: Arc::default(),
            dir,
        }
    }

    /// Serves the cluster on a new loopback port whose requests are recorded as `via`, and
    /// returns a kubeconfig file that points at it (default namespace `namespace`).
    pub async fn kubeconfig(&self, via: &str, namespace: &str) -> PathBuf {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .fallback(handle)
            .with_state((self.cluster.clone(), via.to_owned()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let path = self.dir.join(format!("{via}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
                 users: [{{name: fake, user: {{}}}}]\n\
                 contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: {namespace}}}}}]\n\
                 current-context: fake\n"
            ),
        )
        .unwrap();
        path
    }

    pub fn add_room(&self, namespace: &str, name: &str, spec: Value) {
        let mut cluster = self.cluster.lock().unwrap();
        let version = cluster.next_version();
        let room = json!({
            "apiVersion": "chatroom.dev/v1alpha1",
            "kind": "ChatRoom",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": format!("uid-{namespace}-{name}"),
                "generation": 1,
                "resourceVersion": version.to_string(),
                "creationTimestamp": "2026-11-25T00:00:00Z",
                "finalizers": null,
            },
            "spec": spec,
        });
        cluster
            .rooms
            .insert((namespace.into(), name.into()), room.clone());
        cluster.room_changed("ADDED", room);
    }

    /// A spec change, as `kubectl apply` makes it: the generation goes up.
    pub fn update_spec(&self, namespace: &str, name: &str, spec: Value) {
        self.change_room(namespace, name, |room| {
            room["spec"] = spec;
            let generation = room["metadata"]["generation"].as_i64().unwrap_or(0);
            room["metadata"]["generation"] = json!(generation + 1);
        });
    }

    /// `kubectl delete`: a room with finalizers only gets its deletionTimestamp.
    pub fn delete_room(&self, namespace: &str, name: &str) {
        self.change_room(namespace, name, |room| {
            room["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:01Z");
        });
    }

    fn change_room(&self, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) {
        let mut cluster = self.cluster.lock().unwrap();
        let key = (namespace.to_owned(), name.to_owned());
        let mut room = cluster.rooms.get(&key).cloned().expect("no such room");
        change(&mut room);
        let version = cluster.next_version();
        room["metadata"]["resourceVersion"] = json!(version.to_string());
        cluster.store_room(key, room);
    }

    pub fn room(&self, namespace: &str, name: &str) -> Option<Value> {
        let cluster = self.cluster.lock().unwrap();
        cluster
            .rooms
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The room's status as the operator's own type, once it has one.
    pub fn status(&self, namespace: &str, name: &str) -> Option<ChatRoomStatus> {
        let room = self.room(namespace, name)?;
        serde_json::from_value(room.get("status")?.clone()).ok()
    }

    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        let cluster = self.cluster.lock().unwrap();
        cluster
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    pub fn lease_holder(&self, namespace: &str, name: &str) -> Option<String> {
        self.lease(namespace, name)?["spec"]["holderIdentity"]
            .as_str()
            .map(str::to_owned)
    }

    /// Another replica takes the Lease over, as after a network partition.
    pub fn steal_lease(&self, namespace: &str, name: &str, holder: &str) {
        let mut cluster = self.cluster.lock().unwrap();
        let version = cluster.next_version();
        let lease = cluster
            .leases
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .expect("no such lease");
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        lease["spec"]["holderIdentity"] = json!(holder);
        lease["spec"]["acquireTime"] = json!(now);
        lease["spec"]["renewTime"] = json!(now);
        lease["metadata"]["resourceVersion"] = json!(version.to_string());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.cluster.lock().unwrap().requests.clone()
    }

    pub fn requests_via(&self, via: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.via == via)
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.cluster.lock().unwrap().events.clone()
    }

    pub fn never_answer_status_of(&self, room: &str) {
        self.cluster.lock().unwrap().stuck_status.push(room.into());
    }

    /// Polls (bounded) until `check` holds; panics with `what` otherwise.
    pub async fn wait_until(&self, what: &str, within: Duration, check: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !check(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {within:?} waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.cluster) <= 1 {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

type Shared = (Arc<Mutex<Cluster>>, String);

async fn handle(
    State((cluster, via)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stuck = {
        let mut locked = cluster.lock().unwrap();
        locked.requests.push(Request {
            via,
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
        });
        locked.stuck_status.iter().any(|room| {
            path.starts_with(ROOMS) && path.ends_with(&format!("/chatrooms/{room}/status"))
        })
    };
    if stuck {
        std::future::pending::<()>().await;
    }
    let Some(target) = Target::of(&path) else {
        return status(
            404,
            "NotFound",
            &format!("the fake API server does not serve {path}"),
        );
    };
    let namespace = target.namespace.unwrap_or_default();
    let mut locked = cluster.lock().unwrap();
    let cluster = &mut *locked;
    match (
        method.as_str(),
        target.resource,
        target.name,
        target.subresource,
    ) {
        ("GET", "chatrooms", None, None) => list_or_watch(cluster, target.namespace, &query),
        ("GET", "chatrooms", Some(name), None) => get(&cluster.rooms, namespace, name),
        ("PATCH", "chatrooms", Some(name), subresource) => patch_room(
            cluster,
            namespace,
            name,
            subresource == Some("status"),
            &content_type,
            body,
        ),
        ("GET", "leases", Some(name), None) => get(&cluster.leases, namespace, name),
        ("POST", "leases", None, None) => create_lease(cluster, namespace, body),
        ("PATCH", "leases", Some(name), None) => {
            patch_lease(cluster, namespace, name, &content_type, body)
        }
        ("POST", "events", None, None) => {
            cluster.events.push(body.clone());
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        ("PATCH", "events", Some(_), None) => {
            cluster.events.push(body.clone());
            ok(body)
        }
        _ => status(
            404,
            "NotFound",
            &format!("the fake API server does not serve {method} {path}"),
        ),
    }
}

/// `/apis/{group}/{version}/[namespaces/{namespace}/]{resource}[/{name}[/{subresource}]]`
struct Target<'a> {
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn of(path: &'a str) -> Option<Self> {
        let segments: Vec<&str> = path.strip_prefix("/apis/")?.split('/').collect();
        let (namespace, rest) = match segments.get(2..)? {
            ["namespaces", namespace, rest @ ..] => (Some(*namespace), rest),
            rest => (None, rest),
        };
        match rest {
            [resource, tail @ ..] if tail.len() <= 2 => Some(Self {
                namespace,
                resource,
                name: tail.first().copied(),
                subresource: tail.get(1).copied(),
            }),
            _ => None,
        }
    }
}

fn get(objects: &BTreeMap<(String, String), Value>, namespace: &str, name: &str) -> Response {
    match objects.get(&(namespace.to_owned(), name.to_owned())) {
        Some(object) => ok(object.clone()),
        None => status(404, "NotFound", &format!("{namespace}/{name} not found")),
    }
}

fn list_or_watch(cluster: &mut Cluster, namespace: Option<&str>, query: &str) -> Response {
    let in_scope = |room: &Value| {
        namespace.is_none_or(|ns| room["metadata"]["namespace"].as_str() == Some(ns))
    };
    let param = |key: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    if param("watch").as_deref() == Some("true") {
        let since: u64 = param("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (lines, receiver) = mpsc::unbounded_channel();
        let watcher = Watcher {
            namespace: namespace.map(str::to_owned),
            lines,
        };
        for (version, line) in &cluster.history {
            if *version > since {
                watcher.offer(line);
            }
        }
        cluster.watchers.push(watcher);
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            let line = receiver.recv().await?;
            Some((Ok::<_, std::convert::Infallible>(line), receiver))
        });
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let items: Vec<Value> = cluster
        .rooms
        .values()
        .filter(|room| in_scope(room))
        .cloned()
        .collect();
    ok(json!({
        "apiVersion": "chatroom.dev/v1alpha1",
        "kind": "ChatRoomList",
        "metadata": { "resourceVersion": cluster.resource_version.to_string() },
        "items": items,
    }))
}

fn patch_room(
    cluster: &mut Cluster,
    namespace: &str,
    name: &str,
    status_only: bool,
    content_type: &str,
    body: Value,
) -> Response {
    let key = (namespace.to_owned(), name.to_owned());
    let Some(mut room) = cluster.rooms.get(&key).cloned() else {
        return status(404, "NotFound", &format!("chatrooms {name} not found"));
    };
    if status_only {
        // The status subresource takes only the status, whatever else the patch holds.
        json_patch::merge(&mut room["status"], &body["status"]);
    } else if content_type.starts_with("application/json-patch+json") {
        let patch: json_patch::Patch = match serde_json::from_value(body) {
            Ok(patch) => patch,
            Err(e) => return status(400, "BadRequest", &e.to_string()),
        };
        if let Err(e) = json_patch::patch(&mut room, &patch) {
            return status(422, "Invalid", &e.to_string());
        }
    } else {
        json_patch::merge(&mut room, &body);
    }
    let version = cluster.next_version();
    room["metadata"]["resourceVersion"] = json!(version.to_string());
    cluster.store_room(key, room.clone());
    ok(room)
}

fn create_lease(cluster: &mut Cluster, namespace: &str, mut lease: Value) -> Response {
    let Some(name) = lease["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(422, "Invalid", "metadata.name is required");
    };
    let key = (namespace.to_owned(), name.clone());
    if cluster.leases.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            &format!("leases {name} already exists"),
        );
    }
    let version = cluster.next_version();
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    lease["metadata"]["namespace"] = json!(namespace);
    lease["metadata"]["resourceVersion"] = json!(version.to_string());
    lease["metadata"]["uid"] = json!(format!("uid-lease-{name}"));
    cluster.leases.insert(key, lease.clone());
    (StatusCode::CREATED, axum::Json(lease)).into_response()
}

fn patch_lease(
    cluster: &mut Cluster,
    namespace: &str,
    name: &str,
    content_type: &str,
    body: Value,
) -> Response {
    let key = (namespace.to_owned(), name.to_owned());
    let Some(mut lease) = cluster.leases.get(&key).cloned() else {
        return status(404, "NotFound", &format!("leases {name} not found"));
    };
    // Server-side apply without force: another manager's holder is a conflict, which is how
    // two replicas racing for a free lease learn that one of them lost.
    let held_by = lease["spec"]["holderIdentity"].as_str().map(str::to_owned);
    let wanted = body["spec"]["holderIdentity"].as_str();
    if content_type.starts_with("application/apply-patch")
        && let (Some(held_by), Some(wanted)) = (&held_by, wanted)
        && held_by != wanted
    {
        return status(
            409,
            "Conflict",
            &format!("spec.holderIdentity is owned by {held_by}"),
        );
    }
    json_patch::merge(&mut lease, &body);
    let version = cluster.next_version();
    lease["metadata"]["resourceVersion"] = json!(version.to_string());
    cluster.leases.insert(key, lease.clone());
    ok(lease)
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}
