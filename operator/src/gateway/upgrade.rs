//! The room URL: `$connect` runs before the WebSocket handshake completes, and decides it.
//! Before `$connect`, what API Gateway checks first: the URL's length, the account's new
//! connections per second, the room's throttling, and (the gateway's own) its memory budget.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chatroom_handlers::ApiGatewayProxyResponse;
use chatroom_handlers::auth::IdentitySource;
use chatroom_handlers::contract::routes;
use chrono::Utc;
use serde_json::json;
use tungstenite::protocol::WebSocketConfig;

use super::connection::Session;
use super::events;
use super::handshake::{Handshake, NotAHandshake};
use super::ids::new_id;
use super::throttle;
use super::{Gateway, Room, RoomKey};

/// Reading buffer per connection. Tungstenite's default (128 KiB) would cost 1.3 GB for 10,000
/// idle clients; chat frames are small and the buffer grows when a large one arrives.
const READ_BUFFER_BYTES: usize = 1024;
/// Bytes written to a socket in one go: a batch of frames (see `writer.rs`) goes out in one
/// syscall up to this. Measured against the ceiling (docs/benchmarks.md): 8 KiB cost a burst
/// of 500 messages 0.8x of the bare broadcaster, 16 KiB 0.9x, 32 KiB no more. The buffer
/// keeps its size once grown, so it stays small for many connections.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// The longest URL API Gateway takes for a WebSocket API, in characters.
const MAX_URL_CHARS: usize = 4096;

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
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    handshake: Result<Handshake, NotAHandshake>,
) -> Response {
    let Some(room) = gateway.room(&key) else {
        return (
            StatusCode::NOT_FOUND,
            format!("No room is served at /{key}\n"),
        )
            .into_response();
    };
    let handshake = match handshake {
        Ok(handshake) => handshake,
        // A browser visiting the room's URL gets the chat page.
        Err(NotAHandshake::NoUpgrade) => return chat_page(&room),
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(refusal) = admission(&gateway, &room, uri.to_string().len()) {
        return refusal;
    }
    let Some(mut reserve) = gateway.reserve_shedding().await else {
        return busy(AT_BUDGET);
    };

    let query: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let authorizer = match authorize(&room, &query, &headers).await {
        Ok(context) => context,
        Err(refusal) => return refusal,
    };
    let user_agent: Option<Arc<str>> = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(Arc::from);
    // What the connection keeps of its request beyond its reserve, counted: a client may
    // send a 15 KB User-Agent, which every event then carries.
    let kept = user_agent.as_deref().map_or(0, str::len)
        + authorizer.as_ref().map_or(0, |context| {
            serde_json::to_vec(context).map_or(0, |v| v.len())
        });
    if !reserve.keep(gateway.budget(), kept) {
        return busy(AT_BUDGET);
    }
    let session = Session {
        gateway: gateway.clone(),
        room,
        connection_id: new_id(),
        connected_at: Utc::now(),
        source_ip: peer.ip().to_string(),
        user_agent,
        authorizer,
        queries: Arc::new(throttle::Throttle::new(
            gateway.limits().connection_query_rate,
            gateway.limits().connection_query_burst,
        )),
    };
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

    let opened = session.open();
    handshake.accept(socket_config(gateway.limits()), move |socket| async move {
        match socket {
            Ok(socket) => session.run(socket, opened, reserve).await,
            // `$connect` said yes but the client left before the handshake finished.
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade failed after $connect");
                session.abandon(opened).await;
            }
        }
    })
}

/// The room's authorizer on the request, before `$connect`, with API Gateway's answers: no
/// token where the identity source says → 401 without checking anything; a token that does
/// not verify → 401; keys that cannot be fetched → 500. Allowed, the authorizer's context.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html>
async fn authorize(
    room: &Room,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Option<HashMap<String, serde_json::Value>>, Response> {
    let Some(verifier) = &room.authorizer else {
        return Ok(None);
    };
    let parameter = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let unauthorized = || {
        let body = r#"{"message":"Unauthorized"}"#;
        (StatusCode::UNAUTHORIZED, body).into_response()
    };
    let Some(token) = verifier
        .settings()
        .identity_source
        .token(parameter, headers)
    else {
        return Err(unauthorized());
    };
    match verifier.verify(token).await {
        Ok(identity) => Ok(Some(identity.context())),
        Err(denied) if denied.is_server_error() => {
            tracing::error!(room = %room.key, reason = %denied, "could not check a token");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "Internal server error\n").into_response())
        }
        Err(denied) => {
            tracing::info!(room = %room.key, reason = %denied, "refused a connection");
            Err(unauthorized())
        }
    }
}

/// What stops a handshake before `$connect`, as API Gateway answers it.
fn admission(gateway: &Gateway, room: &Room, url_chars: usize) -> Option<Response> {
    if gateway.is_shutting_down() {
        return Some(busy("The gateway is shutting down"));
    }
    if url_chars > MAX_URL_CHARS {
        return Some(
            (
                StatusCode::URI_TOO_LONG,
                format!("The URL is longer than {MAX_URL_CHARS} characters\n"),
            )
                .into_response(),
        );
    }
    let allowed = gateway.shared.new_connections.allows()
        && throttle::allowed(gateway.account_throttle(), room.throttle.as_ref());
    (!allowed).then(|| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "Too Many Requests\n",
        )
            .into_response()
    })
}

const AT_BUDGET: &str = "The gateway is at its memory budget; try again later";

fn busy(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        format!("{reason}\n"),
    )
        .into_response()
}

/// The socket's limits: API Gateway's frame and message quotas for what clients send, and a
/// bounded write buffer for what they do not read (tungstenite's is unbounded by default).
fn socket_config(limits: &super::Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_frame_size(Some(limits.max_frame_bytes))
        .max_message_size(Some(limits.max_message_bytes))
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        // One buffered batch and one whole frame (its header included), and a pong.
        .max_write_buffer_size(WRITE_BUFFER_BYTES + limits.max_frame_bytes + 256)
        .accept_unmasked_frames(false)
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
        // Where the page puts a token: a query parameter, or a header a browser cannot send.
        "auth": room.authorizer.as_ref().map(|verifier| match &verifier.settings().identity_source {
            IdentitySource::Query(parameter) => json!({ "parameter": parameter }),
            IdentitySource::Header(header) => json!({ "header": header }),
        }),
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
