//! `$disconnect` follows every close, whoever closed; shutdown closes everyone with 1001.

mod support;

use chatroom_operator::gateway::Limits;
use support::*;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

#[tokio::test]
async fn disconnect_reports_the_clients_close_code() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut client = connect(&url).await;
    client
        .close(Some(CloseFrame {
            code: 4000.into(),
            reason: "done".into(),
        }))
        .await
        .unwrap();
    let disconnect = script.wait_for("$disconnect").await;
    assert_eq!(
        disconnect.request_context.disconnect_status_code,
        Some(4000)
    );
    assert_eq!(
        disconnect.request_context.disconnect_reason.as_deref(),
        Some("done")
    );
}

#[tokio::test]
async fn a_client_that_vanishes_still_gets_a_disconnect() {
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let client = connect(&url).await;
    drop(client);
    let disconnect = script.wait_for("$disconnect").await;
    assert_eq!(
        disconnect.request_context.disconnect_status_code,
        Some(1006)
    );
    assert!(gateway.gateway.connections().is_empty());
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001_after_which_each_gets_its_disconnect() {
    let mut gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room(script.clone());
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(&url).await);
    }
    let closes = tokio::spawn(async move {
        let mut codes = Vec::new();
        for client in &mut clients {
            codes.push(close_code(client).await);
        }
        codes
    });

    gateway.shut_down().await;

    assert_eq!(closes.await.unwrap(), [1001; 5]);
    let disconnects = script
        .events()
        .into_iter()
        .filter(|e| e.request_context.route_key.as_deref() == Some("$disconnect"))
        .count();
    assert_eq!(
        disconnects, 5,
        "every $disconnect ran before shutdown finished"
    );
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn removing_a_room_closes_its_connections_and_keeps_others() {
    let (gateway, chat_url) = TestGateway::with_chat_room(Limits::default()).await;
    let scripted_url = gateway.add_scripted_room(Script::accepting());
    let mut chat_client = connect(&chat_url).await;
    let mut scripted_client = connect(&scripted_url).await;
    let key = chatroom_operator::gateway::RoomKey {
        namespace: "test".into(),
        name: "scripted".into(),
        stage: "dev".into(),
    };

    assert!(gateway.gateway.remove_room(&key));

    assert_eq!(close_code(&mut scripted_client).await, 1001);
    send_text(
        &mut chat_client,
        r#"{"action":"onMessage","message":"still here"}"#,
    )
    .await;
    assert_eq!(next_json(&mut chat_client).await["message"], "still here");
    let refused = tokio_tungstenite::connect_async(&scripted_url)
        .await
        .unwrap_err();
    assert!(matches!(refused, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 404));
}
