//! Stand-ins for AWS on loopback: moto (started by scripts/test.sh) for DynamoDB, and a small
//! server that speaks the API Gateway Management API with scriptable answers.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;

/// A connections table as the operator makes it, with a name unique to the calling test.
pub async fn create_table(sdk: &SdkConfig, test: &str) -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let name = format!("chat-{test}-{}", std::process::id());
    chatroom_testkit::create_connection_table(&client, &name, &[]).await;
    (client, name)
}

/// A history table as the operator makes it (partition key `room`, sort key `messageId`).
pub async fn create_history_table(
    sdk: &SdkConfig,
    test: &str,
) -> (aws_sdk_dynamodb::Client, String) {
    let name = format!("chat-{test}-{}-history", std::process::id());
    create_keyed_table(sdk, name, "room", "messageId").await
}

/// A channel table as the operator makes it (partition key `channelShard`, sort key
/// `connectionId`).
pub async fn create_channel_table(
    sdk: &SdkConfig,
    test: &str,
) -> (aws_sdk_dynamodb::Client, String) {
    let name = format!("chat-{test}-{}-channels", std::process::id());
    create_keyed_table(sdk, name, "channelShard", "connectionId").await
}

async fn create_keyed_table(
    sdk: &SdkConfig,
    name: String,
    partition: &str,
    sort: &str,
) -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(attribute(partition))
        .attribute_definitions(attribute(sort))
        .key_schema(key(partition, KeyType::Hash))
        .key_schema(key(sort, KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    (client, name)
}

/// `POST /{stage}/@connections/{id}` as API Gateway answers it: 410 `GoneException` for
/// `gone` ids, 500 for `failing` ones, 200 otherwise; records posts and peak concurrency.
#[derive(Default)]
pub struct ManagementApi {
    pub gone: Mutex<HashSet<String>>,
    pub failing: Mutex<HashSet<String>>,
    pub delay: Option<Duration>,
    pub posts: Mutex<Vec<(String, String)>>,
    pub attempts: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub peak: AtomicUsize,
    /// Answers this many posts 429 `LimitExceededException` first, whoever they are for: a
    /// storm of throttling.
    pub throttle_first: AtomicUsize,
    pub throttled: AtomicUsize,
}

impl ManagementApi {
    /// Serves on loopback; returns the endpoint (`http://127.0.0.1:PORT/dev`) and the state.
    pub async fn start(self) -> (String, Arc<Self>) {
        let state = Arc::new(self);
        let app = Router::new()
            .route("/{stage}/@connections/{id}", post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/dev"), state)
    }

    pub fn posted_to(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .posts
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

async fn answer(
    State(api): State<Arc<ManagementApi>>,
    Path((_stage, id)): Path<(String, String)>,
    body: Bytes,
) -> impl IntoResponse {
    api.attempts.fetch_add(1, Ordering::SeqCst);
    let now = api.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    api.peak.fetch_max(now, Ordering::SeqCst);
    if let Some(delay) = api.delay {
        tokio::time::sleep(delay).await;
    }
    api.in_flight.fetch_sub(1, Ordering::SeqCst);
    let storm = api
        .throttle_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if storm.is_ok() {
        api.throttled.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("x-amzn-ErrorType", "LimitExceededException")],
            r#"{"message":"Rate exceeded"}"#.to_owned(),
        );
    }
    if api.gone.lock().unwrap().contains(&id) {
        return (
            StatusCode::GONE,
            [("x-amzn-ErrorType", "GoneException")],
            "{}".to_owned(),
        );
    }
    if api.failing.lock().unwrap().contains(&id) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-amzn-ErrorType", "InternalServerError")],
            "{}".to_owned(),
        );
    }
    api.posts
        .lock()
        .unwrap()
        .push((id, String::from_utf8_lossy(&body).into_owned()));
    (StatusCode::OK, [("x-amzn-ErrorType", "")], String::new())
}
