//! The `@connections` management API: POST, GET, DELETE, and 410 Gone for unknown, closed and
//! still-connecting connections; the Lambda function's own client against its SigV4 check.

mod support;

use std::sync::{Arc, Mutex};

use chatroom_operator::gateway::Limits;
use support::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn post_sends_the_body_as_a_text_frame() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;
    let id = script.connection_ids()[0].clone();
    let path = format!("{}/{id}", path_of(&gateway.callback_url()));

    let (status, _, _) = http(
        gateway.management_addr,
        "POST",
        &path,
        br#"{"hello":"from the back end"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(next_json(&mut client).await["hello"], "from the back end");
}

#[tokio::test]
async fn unknown_and_closed_connections_answer_410_gone_exception() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let base = path_of(&gateway.callback_url());

    let (status, headers, body) = http(
        gateway.management_addr,
        "POST",
        &format!("{base}/NoSuchConnection"),
        b"x",
    )
    .await;
    assert_eq!(status, 410);
    assert_eq!(header(&headers, "x-amzn-errortype"), Some("GoneException"));
    assert!(body.contains("message"), "{body}");

    let client = connect(&url).await;
    let id = script.connection_ids()[0].clone();
    drop(client);
    script.wait_for("$disconnect").await;
    for method in ["POST", "GET", "DELETE"] {
        let (status, headers, _) = http(
            gateway.management_addr,
            method,
            &format!("{base}/{id}"),
            b"x",
        )
        .await;
        assert_eq!(status, 410, "{method} to a closed connection");
        assert_eq!(header(&headers, "x-amzn-errortype"), Some("GoneException"));
    }
}

#[tokio::test]
async fn a_post_during_connect_answers_410() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let (addr, base) = (gateway.management_addr, path_of(&gateway.callback_url()));
    let seen = statuses.clone();
    *script.connect_hook.lock().unwrap() = Some(Box::new(move |connection_id| {
        let seen = seen.clone();
        let path = format!("{base}/{connection_id}");
        Box::pin(async move {
            let (status, _, _) = http(addr, "POST", &path, b"too early").await;
            seen.lock().unwrap().push(status);
            {
                let mut ok = chatroom_handlers::ApiGatewayProxyResponse::default();
                ok.status_code = 200;
                Ok(ok)
            }
        })
    }));
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;
    assert_eq!(*statuses.lock().unwrap(), [410]);
    assert_silent(&mut client).await;
}

#[tokio::test]
async fn get_describes_the_connection_as_aws_does() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("user-agent", "chat-test/1.0".parse().unwrap());
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let id = script.connection_ids()[0].clone();
    let path = format!("{}/{id}", path_of(&gateway.callback_url()));

    let (status, headers, body) = http(gateway.management_addr, "GET", &path, b"").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(info["identity"]["userAgent"], "chat-test/1.0");
    let connected_at =
        chrono::DateTime::parse_from_rfc3339(info["connectedAt"].as_str().unwrap()).unwrap();
    let first_active =
        chrono::DateTime::parse_from_rfc3339(info["lastActiveAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        connected_at, first_active,
        "no frame yet, so last active is the connect time"
    );

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    send_text(&mut client, "activity").await;
    script.wait_for("$default").await;
    let (_, _, body) = http(gateway.management_addr, "GET", &path, b"").await;
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    let last_active =
        chrono::DateTime::parse_from_rfc3339(info["lastActiveAt"].as_str().unwrap()).unwrap();
    assert!(last_active > connected_at, "a frame moves lastActiveAt");
}

#[tokio::test]
async fn delete_closes_the_connection_and_disconnect_follows() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;
    let mut other = connect(&url).await;
    let id = script.connection_ids()[0].clone();
    let path = format!("{}/{id}", path_of(&gateway.callback_url()));

    let (status, _, _) = http(gateway.management_addr, "DELETE", &path, b"").await;
    assert_eq!(status, 204);
    assert_eq!(close_code(&mut client).await, 1000);
    let disconnect = script.wait_for("$disconnect").await;
    assert_eq!(
        disconnect.request_context.connection_id.as_deref(),
        Some(id.as_str())
    );
    let (status, _, _) = http(gateway.management_addr, "GET", &path, b"").await;
    assert_eq!(status, 410);

    // The other connection is untouched.
    let other_id = script.connection_ids()[1].clone();
    let other_path = format!("{}/{other_id}", path_of(&gateway.callback_url()));
    assert_eq!(
        http(
            gateway.management_addr,
            "POST",
            &other_path,
            b"{\"still\":true}"
        )
        .await
        .0,
        200
    );
    assert_eq!(next_json(&mut other).await["still"], true);
}

#[tokio::test]
async fn a_connection_id_of_another_room_is_gone_here() {
    let (gateway, chat_url) = TestGateway::with_chat_room(Limits::default()).await;
    let script = Script::accepting();
    let _scripted_url = gateway.add_scripted_room(script.clone());
    let (mut chat_client, chat_id) = gateway.connect_with_id(&chat_url).await;

    let scripted_path = format!("{}/{chat_id}", path_of(&gateway.callback_url()));
    assert_eq!(
        http(gateway.management_addr, "POST", &scripted_path, b"x")
            .await
            .0,
        410
    );
    let chat_path = format!("{}/@connections/{chat_id}", path_of(&chat_url));
    assert_eq!(
        http(gateway.management_addr, "POST", &chat_path, b"{\"ok\":1}")
            .await
            .0,
        200
    );
    assert_eq!(next_json(&mut chat_client).await["ok"], 1);
}

#[tokio::test]
async fn an_oversize_post_answers_413_and_non_utf8_goes_out_as_binary() {
    let gateway = TestGateway::start(Limits::default()).await;
    let (_script, mut client, path) = gateway.scripted_connection().await;

    let (status, headers, _) = http(
        gateway.management_addr,
        "POST",
        &path,
        &vec![b'x'; 128 * 1024 + 1],
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(
        header(&headers, "x-amzn-errortype"),
        Some("PayloadTooLargeException")
    );

    assert_eq!(
        http(gateway.management_addr, "POST", &path, &[0xff, 0xfe])
            .await
            .0,
        200
    );
    let frame = tokio::time::timeout(PATIENCE, futures::StreamExt::next(&mut client))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame, Message::binary(vec![0xff, 0xfe]));
}

/// API Gateway's account-level rate is shared by every API call, `@connections` included: a
/// back end that pushes past it is answered PostToConnection's 429 `LimitExceededException`,
/// and so is a client's message once the pushes have spent the bucket.
#[tokio::test]
async fn connections_calls_count_against_the_accounts_rate() {
    let limits = Limits {
        account_rate_limit: 1.0 / 3600.0,
        account_burst_limit: 4,
        ..Limits::default()
    };
    let gateway = TestGateway::start(limits).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    // The handshake's `$connect` takes one request of the four.
    let mut client = connect(&url).await;
    let id = script.connection_ids()[0].clone();
    let path = format!("{}/{id}", path_of(&gateway.callback_url()));

    let mut statuses = Vec::new();
    for method in ["GET", "POST", "POST", "POST"] {
        let (status, headers, _) = http(gateway.management_addr, method, &path, b"{}").await;
        if status == 429 {
            assert_eq!(
                header(&headers, "x-amzn-errortype"),
                Some("LimitExceededException")
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // The two posts that went through arrived; the bucket is spent for the client too.
    next_json(&mut client).await;
    next_json(&mut client).await;
    send_text(&mut client, r#"{"action":"onMessage"}"#).await;
    let refused = next_json(&mut client).await;
    assert_eq!(refused["message"], "Too Many Requests", "{refused}");
}

/// The room's Lambda function signs its posts itself (`aws-sigv4`, not the SDK's client); the
/// gateway's check re-signs the request as it arrived — path, host and body as hyper sent them
/// — and compares. A post signed with the key's secret passes; one signed with another secret
/// is refused with 403 and delivers nothing.
#[tokio::test]
async fn the_functions_own_signed_posts_pass_the_gateways_sigv4_check() {
    use bytes::Bytes;
    use chatroom_handlers::aws::{ConnectionsApi, ManagementApiSender};
    use chatroom_handlers::{SendError, Sender};
    use chatroom_operator::gateway::{GatewayConfig, ManagementAuth, ManagementKeys};

    const KEY_ID: &str = "AKIAFUNCTIONSIGNS";
    let keys = ManagementKeys {
        access_key_id: KEY_ID.into(),
        secret_access_key: "function-signing-secret".into(),
    };
    let gateway = TestGateway::start_with(|config| GatewayConfig {
        management_auth: ManagementAuth::SigV4(keys),
        ..config
    })
    .await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;
    let id = script.connection_ids()[0].clone();
    let endpoint = gateway.callback_url();
    let sender = |secret: &str| {
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new(KEY_ID, secret, None, None, "test"),
                ),
            )
            .build();
        ManagementApiSender::new(
            ConnectionsApi::new(&sdk).unwrap(),
            endpoint.trim_end_matches("/@connections"),
        )
    };

    sender("function-signing-secret")
        .post(&id, Bytes::from_static(br#"{"from":"the function"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut client).await["from"], "the function");

    let forged = sender("another-secret")
        .post(&id, Bytes::from_static(br#"{"from":"someone else"}"#))
        .await;
    match forged {
        Err(SendError::Failed(why)) => assert!(why.contains("HTTP 403"), "{why}"),
        other => panic!("a post signed with another secret got {other:?}"),
    }
    assert_silent(&mut client).await;
}
