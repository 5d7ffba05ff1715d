//! A Kubernetes API server for the controller, in process (tower-test): it records every
//! request and answers as an API server would, so scenarios assert exactly what was sent.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatroom_operator::controller::{Context, Metrics};
use chatroom_operator::crd::{ChatRoom, ChatRoomSpec};
use chatroom_operator::reconcile::Provider;
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};

#[derive(Clone, Debug)]
pub struct Sent {
    pub method: String,
    pub path: String,
    pub body: serde_json::Value,
}

impl Sent {
    pub fn is_event(&self) -> bool {
        self.method == "POST"
            && self
                .path
                .starts_with("/apis/events.k8s.io/v1/namespaces/default/events")
    }

    pub fn is_status_patch(&self) -> bool {
        self.method == "PATCH"
            && self
                .path
                .starts_with("/apis/chatroom.dev/v1alpha1/namespaces/default/chatrooms/")
            && self.path.contains("/status?")
    }

    pub fn is_object_patch(&self) -> bool {
        self.method == "PATCH"
            && self
                .path
                .starts_with("/apis/chatroom.dev/v1alpha1/namespaces/default/chatrooms/")
            && !self.path.contains("/status?")
    }
}

/// The first status write among `sent`.
pub fn status_patch(sent: &[Sent]) -> &Sent {
    sent.iter()
        .find(|s| s.is_status_patch())
        .expect("a status patch")
}

pub struct FakeApiServer {
    pub sent: Arc<Mutex<Vec<Sent>>>,
}

impl FakeApiServer {
    pub fn requests(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// Waits a moment so that anything the controller sends arrives, then returns it all.
    pub async fn settled(&self) -> Vec<Sent> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.requests()
    }
}

/// A context whose client talks to a fake API server answering with `room`.
pub fn context(provider: Provider, room: &ChatRoom) -> (Arc<Context>, FakeApiServer) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let sent = Arc::new(Mutex::new(Vec::new()));
    let recorded = sent.clone();
    let answer = serde_json::to_vec(room).unwrap();
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            let reply = if path.contains("/events") {
                serde_json::to_vec(&body).unwrap()
            } else {
                answer.clone()
            };
            recorded.lock().unwrap().push(Sent { method, path, body });
            respond.send_response(Response::builder().body(Body::from(reply)).unwrap());
        }
    });
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "chatroom-operator".into(),
            instance: None,
        },
    );
    let context = Context::new(
        client,
        provider,
        recorder,
        Metrics::default(),
        Duration::from_secs(300),
    )
    // Scenarios assert the exact resync; its spread has a unit test of its own.
    .with_resync_jitter(0.0);
    (Arc::new(context), FakeApiServer { sent })
}

pub fn lobby(spec: ChatRoomSpec) -> ChatRoom {
    let mut room = ChatRoom::new("lobby", spec);
    room.metadata.namespace = Some("default".into());
    room.metadata.generation = Some(1);
    room.metadata.uid = Some("7d4f2c1e-0000-4000-8000-000000000001".into());
    room.metadata.resource_version = Some("1".into());
    room
}

pub fn with_finalizer(mut room: ChatRoom) -> ChatRoom {
    room.metadata.finalizers = Some(vec!["chatroom.dev/cleanup".into()]);
    room
}
