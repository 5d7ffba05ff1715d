//! Route selection, `$connect` before the handshake, `$default`, error frames and the event
//! shape, against a gateway on loopback with real WebSocket clients.

mod support;

use chatroom_operator::gateway::Limits;
use futures::SinkExt;
use support::*;
use tokio_tungstenite::tungstenite::{self, Message};

#[tokio::test]
async fn a_message_selecting_the_message_route_reaches_every_client_including_the_sender() {
    let (_gateway, url) = TestGateway::with_chat_room(Limits::default()).await;
    let mut ada = connect(&format!("{url}?name=ada")).await;
    let mut bob = connect(&url).await;

    send_text(
        &mut ada,
        r#"{"action":"onMessage","message":"Hello everyone"}"#,
    )
    .await;

    for client in [&mut ada, &mut bob] {
        let frame = next_json(client).await;
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["from"], "ada");
        assert_eq!(frame["message"], "Hello everyone");
        let sent_at = frame["sentAt"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(sent_at).expect("sentAt is RFC 3339");
    }
}

#[tokio::test]
async fn frames_that_select_no_route_go_to_default_and_only_the_sender_hears_back() {
    let (_gateway, url) = TestGateway::with_chat_room(Limits::default()).await;
    let mut ada = connect(&url).await;
    let mut bob = connect(&url).await;

    let unroutable = [
        Message::text("not json"),
        Message::text(r#"{"action":"shout","message":"x"}"#),
        Message::text(r#"{"message":"no action"}"#),
    ];
    for frame in unroutable {
        ada.send(frame).await.unwrap();
        let reply = next_json(&mut ada).await;
        assert_eq!(reply["type"], "error");
        let hint = reply["message"].as_str().unwrap();
        assert!(
            hint.contains(r#"{"action":"onMessage","message":"<text>"}"#),
            "{hint}"
        );
    }
    assert_silent(&mut bob).await;
}

#[tokio::test]
async fn route_selection_follows_the_rooms_expression_and_routes() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;

    for body in [
        r#"{"action":"onMessage"}"#,
        r#"{"action":"other"}"#,
        r#"{"action":{"nested":1}}"#,
        "[]",
    ] {
        send_text(&mut client, body).await;
    }
    client.close(None).await.unwrap();
    script.wait_for("$disconnect").await;

    assert_eq!(
        script.routes(),
        [
            "$connect",
            "onMessage",
            "$default",
            "$default",
            "$default",
            "$disconnect"
        ]
    );
}

/// "If a client app sends a binary frame, API Gateway rejects it and disconnects the client
/// with code 1003."
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-binary-media-types.html>
#[tokio::test]
async fn a_binary_frame_closes_the_connection_with_1003_and_reaches_no_route() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;
    let mut other = connect(&url).await;

    client
        .send(Message::binary(b"{\"action\":\"onMessage\"}".to_vec()))
        .await
        .unwrap();

    assert_eq!(close_code(&mut client).await, 1003);
    let disconnect = script.wait_for("$disconnect").await;
    assert_eq!(
        disconnect.request_context.disconnect_status_code,
        Some(1003)
    );
    assert_eq!(
        script.routes(),
        ["$connect", "$connect", "$disconnect"],
        "the frame invoked nothing"
    );
    send_text(&mut other, r#"{"action":"onMessage"}"#).await;
    script.wait_for("onMessage").await;
}

#[tokio::test]
async fn a_refused_connect_fails_the_handshake_with_its_status_and_opens_no_websocket() {
    let (_gateway, url) = TestGateway::with_chat_room(Limits::default()).await;
    let too_long = "n".repeat(33);
    let error = tokio_tungstenite::connect_async(format!("{url}?name={too_long}"))
        .await
        .unwrap_err();
    let tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error:?}")
    };
    assert_eq!(response.status(), 400);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains("at most 32 characters"), "{body}");
}

#[tokio::test]
async fn connect_runs_before_the_handshake_and_a_failing_connect_answers_500() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::new(|event| match event.request_context.route_key.as_deref() {
        Some("$connect") => Outcome::Fail,
        _ => Outcome::Respond(200, None),
    });
    let url = gateway.add_scripted_room(script.clone());
    let error = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    let tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error:?}")
    };
    assert_eq!(response.status(), 500);
    // No WebSocket was opened, so no $disconnect follows a refused $connect.
    tokio::time::sleep(QUIET).await;
    assert_eq!(script.routes(), ["$connect"]);
}

#[tokio::test]
async fn a_failing_or_panicking_handler_answers_the_caller_and_everyone_else_is_still_served() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::new(|event| match event.body.as_deref() {
        Some("fail") => Outcome::Fail,
        Some("panic") => Outcome::Panic,
        _ => Outcome::Respond(200, None),
    });
    let url = gateway.add_scripted_room(script.clone());
    let mut ada = connect(&url).await;
    let mut bob = connect(&url).await;

    for trigger in ["fail", "panic"] {
        send_text(&mut ada, trigger).await;
        let frame = next_json(&mut ada).await;
        assert_eq!(frame["message"], "Internal server error");
        let connection_id = script.connection_ids()[0].clone();
        assert_eq!(frame["connectionId"], connection_id.as_str());
        let failed_event = script
            .events()
            .into_iter()
            .rev()
            .find(|e| e.body.as_deref() == Some(trigger))
            .unwrap();
        assert_eq!(
            frame["requestId"],
            failed_event.request_context.request_id.unwrap().as_str()
        );
    }
    assert_silent(&mut bob).await;

    // The gateway still routes both clients' frames after the failures.
    send_text(&mut bob, "after").await;
    send_text(&mut ada, "after").await;
    script.wait_for_bodies("after", 2).await;
}

#[tokio::test]
async fn events_carry_api_gateways_request_context_headers_query_and_body() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&format!("{url}?name=ada&tag=a&tag=b")).await;
    send_text(&mut client, r#"{"action":"onMessage","message":"hi"}"#).await;
    let bye = tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    };
    client.close(Some(bye)).await.unwrap();
    script.wait_for("$disconnect").await;

    let events = script.events();
    let ids: Vec<_> = events
        .iter()
        .map(|e| e.request_context.connection_id.clone().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one connection id throughout: {ids:?}"
    );
    let request_ids: std::collections::HashSet<_> = events
        .iter()
        .map(|e| e.request_context.request_id.clone().unwrap())
        .collect();
    assert_eq!(request_ids.len(), 3, "a request id per event");

    let connect = serde_json::to_value(&events[0]).unwrap();
    let context = &connect["requestContext"];
    assert_eq!(context["routeKey"], "$connect");
    assert_eq!(context["eventType"], "CONNECT");
    assert_eq!(context["stage"], "dev");
    assert_eq!(context["apiId"], "testapi123");
    assert_eq!(context["domainName"], gateway.addr.to_string());
    assert_eq!(context["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(context["messageDirection"], "IN");
    assert!(context["connectedAt"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(
        context["requestTimeEpoch"].as_i64().unwrap() >= context["connectedAt"].as_i64().unwrap()
    );
    assert!(
        connect["headers"]["sec-websocket-key"].is_string(),
        "{connect}"
    );
    assert_eq!(events[0].query_string_parameters.first("name"), Some("ada"));
    assert_eq!(
        events[0].multi_value_query_string_parameters.all("tag"),
        Some(vec!["a", "b"])
    );

    let message = serde_json::to_value(&events[1]).unwrap();
    assert_eq!(message["requestContext"]["eventType"], "MESSAGE");
    assert_eq!(message["requestContext"]["routeKey"], "onMessage");
    assert!(message["requestContext"]["messageId"].is_string());
    assert_eq!(message["body"], r#"{"action":"onMessage","message":"hi"}"#);

    let disconnect = serde_json::to_value(&events[2]).unwrap();
    assert_eq!(disconnect["requestContext"]["eventType"], "DISCONNECT");
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1000);
    assert_eq!(disconnect["requestContext"]["disconnectReason"], "bye");
}
