//! What the workspace's tests share, written once: where moto listens, an AWS SDK
//! configuration for it, a connections table as the operator makes it, and where the
//! repository is.

pub mod iam_gate;
pub mod jwt;
pub mod lambda_runtime;
pub mod lambda_service;

use std::path::PathBuf;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// moto's address, from `MOTO_ENDPOINT` (scripts/test.sh starts moto_server and sets it).
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("set MOTO_ENDPOINT to a running moto_server (scripts/test.sh does)")
}

/// The access key id of the account's owner: the tests' own credentials, with which they set up
/// and inspect moto. The IAM gate in front of moto (tools/iam-gate) lets them through
/// unchecked and counts them.
pub const OWNER_ACCESS_KEY_ID: &str = "testing";

/// An SDK configuration for us-east-1 with the owner's dummy credentials and quick retries,
/// pointed at `endpoint` (moto, or a stand-in of the test's own) when given.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    sdk_config_as(OWNER_ACCESS_KEY_ID, endpoint).await
}

/// [`sdk_config`] signed with `access_key_id`.
pub async fn sdk_config_as(access_key_id: &str, endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            access_key_id,
            "testing",
            None,
            None,
            "tests",
        ))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(5)),
        );
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// An SDK configuration pointed at moto, as the account's owner.
pub async fn moto_sdk_config() -> SdkConfig {
    sdk_config(Some(&moto_endpoint())).await
}

/// The workspace's root directory.
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The environment that points a child process's AWS SDK at moto, with the owner's dummy
/// credentials.
pub fn moto_env() -> [(&'static str, String); 4] {
    moto_env_as(OWNER_ACCESS_KEY_ID)
}

/// The environment that points a child process's AWS SDK at moto, signing with `access_key_id`.
pub fn moto_env_as(access_key_id: &str) -> [(&'static str, String); 4] {
    [
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_ACCESS_KEY_ID", access_key_id.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// A connections table with the operator's key schema (`connectionId` S), on demand, with
/// `tags`.
pub async fn create_connection_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    tags: &[(&str, &str)],
) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Tag,
    };
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
        .collect::<Vec<_>>();
    dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("connectionId")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("connectionId")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .set_tags((!tags.is_empty()).then_some(tags))
        .send()
        .await
        .unwrap();
}

/// Writes a connection row for each of `ids`, long settled (`connectedAt` 1 ms after the
/// epoch), 25 to a BatchWriteItem: a crowd for a room's broadcasts to reach.
pub async fn write_settled_connections(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    ids: &[String],
) {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    for batch in ids.chunks(25) {
        let writes = batch
            .iter()
            .map(|id| {
                let item = std::collections::HashMap::from([
                    ("connectionId".to_owned(), AttributeValue::S(id.clone())),
                    ("connectedAt".to_owned(), AttributeValue::N("1".into())),
                ]);
                let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        dynamodb
            .batch_write_item()
            .request_items(table, writes)
            .send()
            .await
            .unwrap();
    }
}
