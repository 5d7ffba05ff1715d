//! `spec.auth.jwt` on the local gateway: the room's authorizer runs before `$connect`, with API
//! Gateway's answers, against a key set served on loopback by the test.

mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use chatroom_handlers::auth::{HttpsKeySource, IdentitySource, JwtSettings, Verifier};
use chatroom_operator::crd::{AuthSpec, ChatRoomSpec, JwtSpec};
use chatroom_operator::gateway::Limits;
use chatroom_testkit::jwt::{AUDIENCE, ISSUER, claims, now, sign};
use serde_json::{Value, json};
use support::{Script, TestGateway, http, next_json, path_of, send_text};
use tokio_tungstenite::tungstenite;

/// The issuer's keys `rsa-a` and `ec-c` at `http://127.0.0.1:{port}/jwks.json`.
async fn serve_keys() -> String {
    let body = chatroom_testkit::jwt::jwks(&["rsa-a", "ec-c"]);
    let app = Router::new().route("/jwks.json", get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks.json")
}

fn jwt(jwks_uri: String, identity_source: &str) -> JwtSpec {
    JwtSpec {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        jwks_uri,
        identity_source: identity_source.into(),
        name_claim: None,
    }
}

/// The status a handshake to `url` gets: 101 when it connects.
async fn handshake_status(request: impl tungstenite::client::IntoClientRequest + Unpin) -> u16 {
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("the handshake failed without an HTTP answer: {other}"),
    }
}

#[tokio::test]
async fn only_a_valid_token_connects_and_its_name_claim_is_the_sender_whatever_name_says() {
    let jwks_uri = serve_keys().await;
    let spec = ChatRoomSpec {
        auth: Some(AuthSpec {
            jwt: jwt(jwks_uri, "querystring.token"),
        }),
        ..ChatRoomSpec::default()
    };
    let (gateway, url) = TestGateway::with_room(Limits::default(), spec).await;
    let grace = claims("user-7", "Grace");
    let with = |change: fn(&mut Value)| {
        let mut claims = grace.clone();
        change(&mut claims);
        claims
    };
    let refused = [
        ("no token", None),
        (
            "another key",
            Some(sign("rsa-stranger", &grace).replace("rsa-stranger", "rsa-a")),
        ),
        (
            "a key the issuer never published",
            Some(sign("rsa-stranger", &grace)),
        ),
        (
            "expired",
            Some(sign("rsa-a", &with(|c| c["exp"] = json!(now() - 600)))),
        ),
        (
            "another audience",
            Some(sign("ec-c", &with(|c| c["aud"] = json!("billing")))),
        ),
        (
            "another issuer",
            Some(sign(
                "ec-c",
                &with(|c| c["iss"] = json!("https://evil.example/")),
            )),
        ),
        ("not a JWT", Some("abc".to_owned())),
    ];
    for (what, token) in refused {
        let target = match token {
            None => format!("{url}?name=mallory"),
            Some(token) => format!("{url}?name=mallory&token={token}"),
        };
        assert_eq!(handshake_status(target).await, 401, "{what}");
    }

    let token = sign("ec-c", &grace);
    let (mut client, _) =
        tokio_tungstenite::connect_async(format!("{url}?name=mallory&token={token}"))
            .await
            .expect("a valid token connects");
    send_text(
        &mut client,
        &json!({"action": "onMessage", "message": "hi"}).to_string(),
    )
    .await;
    let frame = next_json(&mut client).await;
    assert_eq!(frame["from"], "Grace", "{frame}");
    send_text(&mut client, r#"{"action":"who"}"#).await;
    assert_eq!(next_json(&mut client).await["online"], json!(["Grace"]));

    // The chat page of this room asks for a token and knows where to put it.
    let (status, _, page) = http(gateway.addr, "GET", &path_of(&url), b"").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#""auth":{"parameter":"token"}"#), "{page}");
}

#[tokio::test]
async fn a_header_identity_source_takes_a_bearer_token_and_the_context_reaches_every_event() {
    let settings = JwtSettings {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        jwks_uri: serve_keys().await,
        identity_source: IdentitySource::Header("Authorization".into()),
        name_claim: None,
    };
    let verifier = Verifier::new(settings, HttpsKeySource::new().unwrap());
    let gateway = TestGateway::start(Limits::default()).await;
    let script = Script::accepting();
    let url = gateway.add_scripted_room_with(script.clone(), Some(Arc::new(verifier)));

    // The token in the query string is not where this room looks.
    let token = sign("rsa-a", &claims("user-9", "Ada"));
    assert_eq!(handshake_status(format!("{url}?token={token}")).await, 401);
    assert!(script.events().is_empty(), "nothing was invoked");

    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    send_text(&mut client, r#"{"action":"onMessage","message":"x"}"#).await;
    script.wait_for("onMessage").await;
    drop(client);
    script.wait_for("$disconnect").await;
    let events = script.events();
    assert_eq!(events.len(), 3, "{:?}", script.routes());
    for event in events {
        let fields = &event.request_context.authorizer.fields;
        assert_eq!(
            fields["name"], "Ada",
            "{:?}",
            event.request_context.route_key
        );
        assert_eq!(fields["sub"], "user-9");
    }
}
