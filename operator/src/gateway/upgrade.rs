//! The room URL: `$connect` runs before the WebSocket handshake completes, and decides it.

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chatroom_handlers::ApiGatewayProxyResponse;
use chatroom_handlers::contract::routes;
use chrono::Utc;

use super::connection::Session;
use super::events;
use super::ids::new_id;
use super::{Gateway, Room, RoomKey};

/// Reading buffer per connection. Tungstenite's default (128 KiB) would cost 1.3 GB for 10,000
/// idle clients; chat frames are small and the buffer grows when a large one arrives.
const READ_BUFFER_BYTES: usize = 1024;

pub async fn index(State(gateway): State<Gateway>) -> Response {
    let rooms: String = gateway
        .room_keys()
        .iter()
        .map(|key| {
            let path = html_escape(&format!("/{key}"));
            let url = html_escape(&gateway.websocket_url(key));
            format!("<li><a href=\"{path}\">{path}</a> <code>{url}</code></li>\n")
        })
        .collect();
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>chatroom-operator</title></head>\n\
         <body style=\"font-family: system-ui, sans-serif\"><h1>Chat rooms</h1>\n<ul>\n{rooms}</ul></body></html>\n"
    );
    with_page_headers(Html(page).into_response())
}

pub async fn room_endpoint(
    State(gateway): State<Gateway>,
    Path(key): Path<RoomKey>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(room) = gateway.room(&key) else {
        return (
            StatusCode::NOT_FOUND,
            format!("No room is served at /{key}\n"),
        )
            .into_response();
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        // A browser visiting the room's URL gets the chat page.
        Err(_) if !headers.contains_key(header::UPGRADE) => return chat_page(&room),
        Err(rejection) => return rejection.into_response(),
    };
    if gateway.is_shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway is shutting down\n",
        )
            .into_response();
    }

    let session = Session {
        gateway: gateway.clone(),
        room,
        connection_id: new_id(),
        connected_at: Utc::now(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let query: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let domain_name = gateway.domain_name().to_owned();
    let context = session.context(&domain_name);
    match session
        .room
        .invoke(events::connect(&context, &headers, &query))
        .await
    {
        Ok(response) if (200..300).contains(&response.status_code) => {}
        Ok(response) => return refusal(response),
        Err(_) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error\n").into_response();
        }
    }

    let limits = gateway.limits();
    let failed = session.clone();
    upgrade
        .max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_failed_upgrade(move |error| {
            // `$connect` said yes but the client left before the handshake finished:
            // `$disconnect` still follows, so the integration can forget the connection.
            tracing::debug!(%error, "WebSocket upgrade failed after $connect");
            tokio::spawn(failed.disconnected(1006, "Upgrade failed".to_owned()));
        })
        .on_upgrade(move |socket| session.run(socket))
}

const CHAT_PAGE: &str = include_str!("page.html");

/// The self-contained chat page; the room's title and the bodies of its message, `who` and
/// (in a room that keeps it) `history` requests go in as JSON that cannot close its
/// `<script>` element.
fn chat_page(room: &Room) -> Response {
    let route = room.routes.first().map_or("$default", String::as_str);
    let request = |route: &str| {
        room.routes
            .iter()
            .any(|r| r == route)
            .then(|| room.route_selection.example_body(route, ""))
    };
    let data = serde_json::json!({
        "title": format!("{} ({}, stage {})", room.key.name, room.key.namespace, room.key.stage),
        "template": room.route_selection.example_body(route, ""),
        "who": request(routes::WHO),
        "history": request(routes::HISTORY),
    });
    let data = data
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    with_page_headers(Html(CHAT_PAGE.replace("__ROOM_JSON__", &data)).into_response())
}

/// Pages load nothing from elsewhere and may talk only to this gateway.
fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `$connect` answered non-2xx: the client gets that status and body, and no WebSocket.
fn refusal(response: ApiGatewayProxyResponse) -> Response {
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => text,
        Some(aws_lambda_events::encodings::Body::Binary(bytes)) => {
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => status.canonical_reason().unwrap_or_default().to_owned(),
    };
    (status, body).into_response()
}
