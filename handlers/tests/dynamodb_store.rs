//! The DynamoDB connection store against moto.

mod aws_support;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_support::{create_channel_table, create_table};
use chatroom_handlers::aws::DynamoDbStore;
use chatroom_handlers::channels::Subscription;
use chatroom_handlers::contract::channel_table;
use chatroom_handlers::contract::{EXPIRY_MARGIN, MAX_CONNECTION_LIFETIME};
use chatroom_handlers::{Connection, ConnectionStore};
use chatroom_testkit::iam_gate::{policy, records_of, register_principal};
use chatroom_testkit::{moto_endpoint, moto_sdk_config, sdk_config_as};

fn connection(id: &str, name: Option<&str>) -> Connection {
    Connection {
        id: id.into(),
        display_name: name.map(Into::into),
        connected_at_ms: 1_795_593_600_123,
    }
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn connect_writes_the_row_with_its_ttl_and_disconnect_removes_it() {
    let sdk = moto_sdk_config().await;
    let (client, table) = create_table(&sdk, "put-remove").await;
    let store = DynamoDbStore::new(client.clone(), &table);

    store.put(connection("conn-a", Some("ada"))).await.unwrap();
    let item = client
        .get_item()
        .table_name(&table)
        .key("connectionId", AttributeValue::S("conn-a".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the row exists");
    assert_eq!(item["displayName"], AttributeValue::S("ada".into()));
    assert_eq!(
        item["connectedAt"],
        AttributeValue::N("1795593600123".into())
    );
    let expected_expiry = 1_795_593_600 + (MAX_CONNECTION_LIFETIME + EXPIRY_MARGIN).as_secs();
    assert_eq!(
        item["expiresAt"],
        AttributeValue::N(expected_expiry.to_string())
    );

    let removed = store.remove("conn-a").await.unwrap();
    assert_eq!(
        removed.and_then(|r| r.display_name).as_deref(),
        Some("ada"),
        "the room says who left"
    );
    assert!(store.list().await.unwrap().is_empty());
    // Removing twice is not an error: $disconnect and a 410 can race.
    assert_eq!(store.remove("conn-a").await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn listing_pages_through_the_whole_table() {
    let sdk = moto_sdk_config().await;
    let (client, table) = create_table(&sdk, "paging").await;
    let store = DynamoDbStore::new(client, &table).with_page_size(4);
    for i in 0..25 {
        let name = format!("user{i}");
        store
            .put(connection(
                &format!("conn-{i:02}"),
                (i % 2 == 0).then_some(name.as_str()),
            ))
            .await
            .unwrap();
    }

    let mut listed = store.list().await.unwrap().to_vec();
    listed.sort_by(|a, b| a.id.cmp(&b.id));

    assert_eq!(listed.len(), 25, "25 rows at 4 per page need 7 pages");
    assert_eq!(listed[0].id, "conn-00");
    assert_eq!(listed[0].display_name.as_deref(), Some("user0"));
    assert_eq!(listed[1].display_name, None);
    assert_eq!(listed[24].id, "conn-24");

    // A bounded listing reads one page past the bound at most, and says when there are more.
    assert!(store.list_at_most(10).await.unwrap().is_none(), "25 > 10");
    assert_eq!(
        store.list_at_most(25).await.unwrap().map(|all| all.len()),
        Some(25)
    );
    assert_eq!(
        store.list_at_most(200).await.unwrap().map(|all| all.len()),
        Some(25)
    );
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_missing_table_is_a_store_error_that_names_the_operation() {
    let sdk = moto_sdk_config().await;
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&sdk), "no-such-table");
    let error = store.list().await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("connection store could not list"),
        "{message}"
    );
    assert!(message.contains("ResourceNotFoundException"), "{message}");
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_gone_row_is_removed_only_once_it_is_older_than_the_cutoff() {
    let sdk = moto_sdk_config().await;
    let (client, table) = create_table(&sdk, "window").await;
    let store = DynamoDbStore::new(client, &table);
    store.put(connection("young", None)).await.unwrap();
    let connected_at = connection("young", None).connected_at_ms;

    let removed = store
        .remove_if_connected_before("young", connected_at)
        .await
        .unwrap();
    assert!(!removed, "a row made at the cutoff is inside the window");
    assert_eq!(store.list().await.unwrap().len(), 1);

    let removed = store
        .remove_if_connected_before("young", connected_at + 1)
        .await
        .unwrap();
    assert!(removed);
    assert!(store.list().await.unwrap().is_empty());
    // A condition on a missing item is checked against no attributes: attribute_not_exists
    // holds, so DynamoDB answers success. Gone is gone.
    let again = store
        .remove_if_connected_before("young", connected_at + 1)
        .await
        .unwrap();
    assert!(again, "a row already gone is not an error");
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn a_channel_is_read_by_shard_and_left_with_the_room() {
    let sdk = moto_sdk_config().await;
    let (client, table) = create_table(&sdk, "channels").await;
    let (_, channels) = create_channel_table(&sdk, "channels").await;
    let store = DynamoDbStore::new(client.clone(), &table).with_channel_table(&channels);
    let ids: Vec<String> = (0..40).map(|n| format!("conn-{n:02}")).collect();
    for id in &ids {
        store.put(connection(id, Some("ada"))).await.unwrap();
        assert_eq!(
            store.subscribe(id, "orders:42", 2).await.unwrap(),
            Subscription::Subscribed
        );
    }
    assert_eq!(
        store.subscribe("conn-00", "orders:42", 2).await.unwrap(),
        Subscription::AlreadySubscribed
    );
    store.subscribe("conn-00", "ops", 2).await.unwrap();
    assert_eq!(
        store.subscribe("conn-00", "third", 2).await.unwrap(),
        Subscription::TooMany
    );
    assert_eq!(
        store.subscribe("nobody", "ops", 2).await.unwrap(),
        Subscription::NotConnected
    );

    // Forty subscribers spread over more than one partition, read back whole with names.
    let partitions: std::collections::HashSet<String> = ids
        .iter()
        .map(|id| channel_table::partition("orders:42", id))
        .collect();
    assert!(partitions.len() > 1, "{partitions:?}");
    let mut listed: Vec<String> = store
        .list_channel("orders:42")
        .await
        .unwrap()
        .iter()
        .inspect(|r| assert_eq!(r.display_name.as_deref(), Some("ada")))
        .map(|r| r.id.clone())
        .collect();
    listed.sort();
    assert_eq!(listed, ids);

    assert!(store.unsubscribe("conn-01", "orders:42").await.unwrap());
    assert!(!store.unsubscribe("conn-01", "orders:42").await.unwrap());
    // Leaving the room (either way a connection leaves) deletes its subscriptions.
    store.remove("conn-00").await.unwrap();
    assert!(
        store
            .remove_if_connected_before("conn-02", i64::MAX)
            .await
            .unwrap()
    );
    assert!(store.list_channel("ops").await.unwrap().is_empty());
    let left = store.list_channel("orders:42").await.unwrap();
    assert_eq!(left.len(), 37);
    assert!(
        left.iter()
            .all(|r| !["conn-00", "conn-01", "conn-02"].contains(&r.id.as_str()))
    );
    let rows = client.scan().table_name(&channels).send().await.unwrap();
    let subscriptions: Vec<_> = rows
        .items()
        .iter()
        .filter(|row| row["channelShard"] != AttributeValue::S("orders:42#version".into()))
        .filter(|row| row["channelShard"] != AttributeValue::S("ops#version".into()))
        .collect();
    assert_eq!(
        subscriptions.len(),
        37,
        "no subscription row outlives its connection"
    );
    let expires = &subscriptions[0]["expiresAt"];
    let expected_expiry = 1_795_593_600 + (MAX_CONNECTION_LIFETIME + EXPIRY_MARGIN).as_secs();
    assert_eq!(*expires, AttributeValue::N(expected_expiry.to_string()));
}

/// The DynamoDB operations `key` made, in order, as the IAM gate saw them.
fn operations_of(key: &str) -> Vec<String> {
    records_of(key)
        .iter()
        .filter_map(|r| r["operation"].as_str().map(str::to_owned))
        .collect()
}

/// A store signed as a principal of its own, allowed everything, so that its requests can be
/// counted.
async fn counted_store(test: &str) -> (DynamoDbStore, String, String) {
    let key = format!("AKIACOUNTED{}{}", test.to_uppercase(), std::process::id());
    register_principal(
        &key,
        "arn:aws:iam::123456789012:user/counted",
        vec![policy(
            "everything",
            serde_json::json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
            ]}),
        )],
        false,
    );
    let owner = moto_sdk_config().await;
    let (_, table) = create_table(&owner, test).await;
    let (_, channels) = create_channel_table(&owner, test).await;
    let sdk = sdk_config_as(&key, Some(&moto_endpoint())).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoDbStore::new(client, &table).with_channel_table(&channels);
    (store, key, table)
}

#[tokio::test]
#[ignore = "needs moto and the IAM gate; run through scripts/test.sh"]
async fn a_message_reads_one_row_while_nobody_comes_or_goes() {
    let (store, key, table) = counted_store("versions").await;
    for id in ["conn-a", "conn-b"] {
        store.put(connection(id, None)).await.unwrap();
    }
    store.subscribe("conn-a", "x", 10).await.unwrap();
    let before = operations_of(&key).len();
    assert_eq!(
        store.list().await.unwrap().len(),
        2,
        "the version row is no one"
    );
    assert_eq!(store.list_channel("x").await.unwrap().len(), 1);
    let first = operations_of(&key)[before..].to_vec();
    let shards = chatroom_handlers::contract::channel_table::SHARDS as usize;
    assert_eq!(first.len(), 2 + 1 + shards, "{first:?}");

    // Nothing changed: one GetItem each, the listings reused.
    let before = operations_of(&key).len();
    store.list().await.unwrap();
    store.list_channel("x").await.unwrap();
    assert_eq!(operations_of(&key)[before..], ["GetItem", "GetItem"]);

    // Another warm function (its own store) arrives; this one sees it at its next message.
    let other = DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&moto_sdk_config().await),
        &table,
    );
    other.put(connection("conn-c", None)).await.unwrap();
    let before = operations_of(&key).len();
    assert_eq!(store.list().await.unwrap().len(), 3);
    assert_eq!(operations_of(&key)[before..], ["GetItem", "Scan"]);

    // A leave through a 410 counts too, once: the second removal finds nothing to remove.
    assert!(
        store
            .remove_if_connected_before("conn-c", i64::MAX)
            .await
            .unwrap()
    );
    assert!(
        store
            .remove_if_connected_before("conn-c", i64::MAX)
            .await
            .unwrap()
    );
    assert_eq!(store.list().await.unwrap().len(), 2);
    let version = |ops: &[String]| ops.iter().filter(|o| *o == "UpdateItem").count();
    let before = operations_of(&key).len();
    store
        .remove_if_connected_before("conn-c", i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        version(&operations_of(&key)[before..]),
        0,
        "no bump for nothing"
    );
    store.unsubscribe("conn-a", "x").await.unwrap();
    assert!(store.list_channel("x").await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn parts_of_a_broadcast_that_finish_together_are_all_recorded() {
    let sdk = moto_sdk_config().await;
    let (client, table) = create_table(&sdk, "fanout-marks").await;
    let store = DynamoDbStore::new(client, &table);
    // An older broadcast holds the slot (there are 256; 0x101 and 0x001 share one).
    let older = "0000000000000001";
    store.fanout_mark(older, "0@0").await.unwrap();

    // 25 pages of a new broadcast record their parts at once, as its workers finish together.
    let message = "0000000000000101";
    let segments: Vec<String> = (0..25).map(|page| format!("{page}@0")).collect();
    let marked =
        futures::future::join_all(segments.iter().map(|s| store.fanout_mark(message, s))).await;
    assert!(marked.iter().all(Result::is_ok), "{marked:?}");

    for segment in &segments {
        assert!(
            store.fanout_handled(message, segment).await.unwrap(),
            "{segment} was recorded, so a second delivery of it is skipped"
        );
    }
    assert!(
        !store.fanout_handled(older, "0@0").await.unwrap(),
        "the older broadcast's record gave way"
    );
}
