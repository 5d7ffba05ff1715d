//! A gateway on loopback with real WebSocket clients, and a scriptable integration that records
//! every event the gateway sends it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatroom_handlers::auth::{HttpsKeySource, Verifier};
use chatroom_handlers::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest, RouteSelectionExpression,
};
use chatroom_operator::crd::{ChatRoom, ChatRoomSpec};
use chatroom_operator::gateway::{
    Gateway, GatewayConfig, Integration, Invocation, Limits, PublicUrl, Room, RoomKey,
};
use chatroom_operator::providers::local::LocalProvider;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for something that should happen; generous for debug builds.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test waits to be sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

pub struct TestGateway {
    pub gateway: Gateway,
    /// The clients' listener.
    pub addr: SocketAddr,
    /// The management API's listener.
    pub management_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<()>>,
}

impl TestGateway {
    pub async fn start(limits: Limits) -> Self {
        Self::start_with(|config| GatewayConfig { limits, ..config }).await
    }

    /// A gateway on loopback with the configuration `configure` makes of the local default.
    pub async fn start_with(configure: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let management = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let management_addr = management.local_addr().unwrap();
        let config = configure(GatewayConfig::local(
            PublicUrl::listening_at(addr),
            PublicUrl::listening_at(management_addr),
            Limits::default(),
        ));
        let gateway = Gateway::new(config);
        let (shutdown, signal) = oneshot::channel::<()>();
        let serving = gateway.clone();
        let served = tokio::spawn(async move {
            serving
                .serve(listener, management, async move {
                    let _ = signal.await;
                })
                .await
        });
        Self {
            gateway,
            addr,
            management_addr,
            shutdown: Some(shutdown),
            served: Some(served),
        }
    }

    /// The seed's room, served by the real chat logic through the local provider.
    pub async fn with_chat_room(limits: Limits) -> (Self, String) {
        Self::with_room(limits, ChatRoomSpec::default()).await
    }

    /// `default/lobby` with `spec`, served by the real chat logic through the local provider.
    pub async fn with_room(limits: Limits, spec: ChatRoomSpec) -> (Self, String) {
        let gateway = Self::start(limits).await;
        let provider = LocalProvider::new(gateway.gateway.clone());
        let mut room = ChatRoom::new("lobby", spec);
        room.metadata.namespace = Some("default".into());
        let report = provider.converge(&room).await;
        // Keep the provider's rooms alive for the test's lifetime.
        std::mem::forget(provider);
        (gateway, report.outputs.websocket_url.unwrap())
    }

    /// A room whose integration is the given script.
    pub fn add_scripted_room(&self, script: Arc<Script>) -> String {
        self.add_scripted_room_with(script, None)
    }

    /// A room whose integration is the given script, behind `authorizer`.
    pub fn add_scripted_room_with(
        &self,
        script: Arc<Script>,
        authorizer: Option<Arc<Verifier<HttpsKeySource>>>,
    ) -> String {
        let key = RoomKey {
            namespace: "test".into(),
            name: "scripted".into(),
            stage: "dev".into(),
        };
        self.gateway.upsert_room(Room {
            key: Arc::new(key.clone()),
            api_id: "testapi123".into(),
            route_selection: RouteSelectionExpression::default(),
            routes: vec!["onMessage".into()],
            integration: script,
            throttle: None,
            broadcast_route: Some("onMessage".into()),
            authorizer,
        });
        self.gateway.websocket_url(&key)
    }

    /// A scripted room with one client connected; returns the script, the client and the
    /// client's `@connections/{id}` path.
    pub async fn scripted_connection(&self) -> (Arc<Script>, Client, String) {
        let script = Script::accepting();
        let url = self.add_scripted_room(script.clone());
        let client = connect(&url).await;
        let id = script.connection_ids()[0].clone();
        let path = format!("{}/{id}", path_of(&self.callback_url()));
        (script, client, path)
    }

    /// Connects to `url` (a room of this gateway) and returns the connection's id, which a
    /// backend would have from the room's `$connect` event.
    pub async fn connect_with_id(&self, url: &str) -> (Client, String) {
        let before = self.connection_ids(url);
        let client = connect(url).await;
        (client, self.new_connection_id(url, &before).await)
    }

    /// The open connections of the room at `url`.
    pub fn connection_ids(&self, url: &str) -> Vec<String> {
        self.gateway.connections().ids_in(&room_of(url))
    }

    /// The id of the room's connection that `before` did not have (waits, bounded: a
    /// connection joins the registry just after its 101 goes out).
    pub async fn new_connection_id(&self, url: &str, before: &[String]) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(id) = self
                .connection_ids(url)
                .into_iter()
                .find(|id| !before.contains(id))
            {
                return id;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no new connection at {url}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn callback_url(&self) -> String {
        let key = RoomKey {
            namespace: "test".into(),
            name: "scripted".into(),
            stage: "dev".into(),
        };
        self.gateway.callback_url(&key)
    }

    /// Stops the gateway as SIGTERM would and waits until it has finished.
    pub async fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            tokio::time::timeout(PATIENCE, served)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

/// What the scripted integration does for a given event.
pub type Behaviour = dyn Fn(&ApiGatewayWebsocketProxyRequest) -> Outcome + Send + Sync;

/// Runs in place of the script's behaviour for `$connect`, given the new connection's id.
pub type ConnectHook = dyn Fn(String) -> Invocation + Send + Sync;

pub enum Outcome {
    Respond(i64, Option<String>),
    Fail,
    Panic,
}

/// Records every event and answers as `behaviour` says.
pub struct Script {
    pub events: Mutex<Vec<ApiGatewayWebsocketProxyRequest>>,
    behaviour: Box<Behaviour>,
    pub connect_hook: Mutex<Option<Box<ConnectHook>>>,
}

impl Script {
    pub fn new(
        behaviour: impl Fn(&ApiGatewayWebsocketProxyRequest) -> Outcome + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::default(),
            behaviour: Box::new(behaviour),
            connect_hook: Mutex::default(),
        })
    }

    pub fn accepting() -> Arc<Self> {
        Self::new(|_| Outcome::Respond(200, None))
    }

    pub fn events(&self) -> Vec<ApiGatewayWebsocketProxyRequest> {
        self.events.lock().unwrap().clone()
    }

    pub fn routes(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e.request_context.route_key.clone().unwrap_or_default())
            .collect()
    }

    pub fn connection_ids(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e.request_context.event_type.as_deref() == Some("CONNECT"))
            .map(|e| e.request_context.connection_id.clone().unwrap())
            .collect()
    }

    /// Waits until `count` message events with exactly this body were recorded.
    pub async fn wait_for_bodies(&self, body: &str, count: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self
            .events()
            .iter()
            .filter(|e| e.body.as_deref() == Some(body))
            .count()
            < count
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} frame(s) {body:?} not routed within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until an event for `route` was recorded, and returns it.
    pub async fn wait_for(&self, route: &str) -> ApiGatewayWebsocketProxyRequest {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let found = self
                .events()
                .into_iter()
                .find(|e| e.request_context.route_key.as_deref() == Some(route));
            if let Some(event) = found {
                return event;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {route} event within {PATIENCE:?}; saw {:?}",
                self.routes()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Integration for Script {
    fn invoke(&self, event: ApiGatewayWebsocketProxyRequest) -> Invocation {
        self.events.lock().unwrap().push(event.clone());
        if event.request_context.route_key.as_deref() == Some("$connect")
            && let Some(hook) = self.connect_hook.lock().unwrap().as_ref()
        {
            return hook(event.request_context.connection_id.clone().unwrap());
        }
        let outcome = (self.behaviour)(&event);
        Box::pin(async move {
            match outcome {
                Outcome::Respond(status, body) => {
                    let mut response = ApiGatewayProxyResponse::default();
                    response.status_code = status;
                    response.body = body.map(aws_lambda_events::encodings::Body::Text);
                    Ok(response)
                }
                Outcome::Fail => Err("scripted failure".into()),
                Outcome::Panic => panic!("scripted panic"),
            }
        })
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("connect to {url} failed: {e}"));
    client
}

/// The next text frame that is not a presence announcement, parsed as JSON: every room tells
/// its connections who joins and leaves, which most tests do not look at.
pub async fn next_json(client: &mut Client) -> Value {
    loop {
        let frame = next_any_json(client).await;
        if frame["type"] != "presence" {
            return frame;
        }
    }
}

/// The next text frame, presence announcements included, parsed as JSON.
pub async fn next_any_json(client: &mut Client) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("no frame in time");
        match frame.expect("stream ended").expect("read failed") {
            Message::Text(text) => return serde_json::from_str(&text).expect("a JSON frame"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Asserts that no data frame arrives for a short while.
pub async fn assert_silent(client: &mut Client) {
    if let Ok(Some(Ok(frame))) = tokio::time::timeout(QUIET, client.next()).await {
        panic!("expected no frame, got {frame:?}");
    }
}

/// Reads until the server's close frame and returns its code.
pub async fn close_code(client: &mut Client) -> u16 {
    loop {
        let frame = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("no close in time");
        match frame {
            Some(Ok(Message::Close(Some(CloseFrame { code, .. })))) => return u16::from(code),
            Some(Ok(Message::Close(None))) => return 1005,
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("read failed before a close frame: {error}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

pub async fn send_text(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.unwrap();
}

/// A minimal HTTP/1.1 exchange: (status, headers lower-cased, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The path part of a URL such as `http://127.0.0.1:1234/a/b`.
/// The room a `ws://host/{namespace}/{name}/{stage}[?query]` URL names.
pub fn room_of(url: &str) -> RoomKey {
    let path = path_of(url);
    let path = path.split('?').next().unwrap_or_default();
    let mut segments = path.trim_start_matches('/').split('/').map(str::to_owned);
    RoomKey {
        namespace: segments.next().unwrap_or_default(),
        name: segments.next().unwrap_or_default(),
        stage: segments.next().unwrap_or_default(),
    }
}

pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/')
        .map_or("/".to_owned(), |i| rest[i..].to_owned())
}
