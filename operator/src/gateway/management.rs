//! The `@connections` API: what a back end uses to push to, inspect and drop a connection,
//! on the gateway's management listener only. Errors carry `x-amzn-ErrorType` as AWS's do, so
//! the AWS SDK maps them to the same exceptions (`GoneException`, `PayloadTooLargeException`,
//! `InvalidSignatureException`, …).
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html>

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::outbound::Outgoing;
use super::registry::ConnectionHandle;
use super::sigv4::{self, SignedRequest};
use super::{Gateway, ManagementAuth, RoomKey};

pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route(
            "/{namespace}/{name}/{stage}/@connections/{connection_id}",
            get(get_connection)
                .post(post_to_connection)
                .delete(delete_connection),
        )
        // The body is read, bounded, by `authenticate`.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            gateway.clone(),
            authenticate,
        ))
        .with_state(gateway)
}

/// Checks the caller before any handler runs: what the headers decide first, then the body,
/// read only after, bounded in bytes and time and counted in the memory budget while held.
async fn authenticate(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let limits = gateway.limits();
    let (parts, body) = request.into_parts();
    let keys = match &gateway.shared.config.management_auth {
        ManagementAuth::SigV4(keys) => Some(keys),
        _ => None,
    };
    // An unsigned caller, or one with another key or a stale date, costs the gateway no body.
    if let Some(keys) = keys
        && let Err(refused) = sigv4::check_headers(keys, &parts.headers, SystemTime::now())
    {
        tracing::info!(path = %parts.uri.path(), error = %refused, "management request refused");
        return aws_error(StatusCode::FORBIDDEN, refused.error_type, &refused.message);
    }
    // Every `@connections` call is a request to the API, counted in the account's rate as a
    // client's message is; past it, PostToConnection's documented 429.
    // <https://docs.aws.amazon.com/apigatewaymanagementapi/latest/APIReference/API_PostToConnection.html>
    if !gateway.account_throttle().allows() {
        return aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "Rate exceeded",
        );
    }
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(declared) = declared
        && declared > limits.max_message_bytes
    {
        return too_large(Some(declared), limits.max_message_bytes);
    }
    // One byte over the message limit is enough to know the body is too large.
    let most = declared.unwrap_or(limits.max_message_bytes + 1);
    let Some(_held) = gateway.budget().try_charge(most) else {
        return aws_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "The gateway is at its memory budget; try again later",
        );
    };
    let read = axum::body::to_bytes(body, limits.max_message_bytes + 1);
    let body = match tokio::time::timeout(limits.header_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return too_large(None, limits.max_message_bytes),
        Err(_) => {
            return aws_error(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeoutException",
                "The request body did not arrive in time",
            );
        }
    };
    if let Some(keys) = keys {
        let signed = SignedRequest {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            body: &body,
        };
        if let Err(refused) = sigv4::verify(keys, &signed, SystemTime::now()) {
            tracing::info!(path = %parts.uri.path(), error = %refused, "management request refused");
            return aws_error(StatusCode::FORBIDDEN, refused.error_type, &refused.message);
        }
    }
    // The body is counted until the handler has queued it, where the queue counts it by its
    // length. Read in one piece, it is a view into hyper's read buffer (up to 16 KiB), which
    // would stay pinned while the post waits in a queue — a thousand 100-byte posts to a client
    // that does not read would hold 16 MB counted as 100 KB. Copied, it holds what is counted.
    let body = Bytes::copy_from_slice(&body);
    next.run(Request::from_parts(parts, axum::body::Body::from(body)))
        .await
}

/// `/{namespace}/{name}/{stage}/@connections/{connection_id}`
#[derive(Deserialize)]
pub struct ConnectionPath {
    #[serde(flatten)]
    key: RoomKey,
    connection_id: String,
}

pub async fn post_to_connection(
    State(gateway): State<Gateway>,
    Path(ConnectionPath { key, connection_id }): Path<ConnectionPath>,
    body: Bytes,
) -> Response {
    if gateway.room(&key).is_none() {
        return no_such_room(&key);
    }
    let limit = gateway.limits().max_message_bytes;
    if body.len() > limit {
        return too_large(Some(body.len()), limit);
    }
    match gateway
        .connections()
        .post(&key, &connection_id, Outgoing::data(body))
    {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => gone(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionInfo {
    connected_at: String,
    identity: Identity,
    last_active_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    source_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
}

pub async fn get_connection(
    State(gateway): State<Gateway>,
    Path(ConnectionPath { key, connection_id }): Path<ConnectionPath>,
) -> Response {
    match open_connection(&gateway, key, &connection_id) {
        Ok(handle) => Json(info(&handle)).into_response(),
        Err(missing) => missing.into_response(),
    }
}

pub async fn delete_connection(
    State(gateway): State<Gateway>,
    Path(ConnectionPath { key, connection_id }): Path<ConnectionPath>,
) -> Response {
    match open_connection(&gateway, key, &connection_id) {
        Ok(handle) => {
            handle.request_close(super::CloseRequest::NORMAL);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(missing) => missing.into_response(),
    }
}

/// The open connection `id` of the room at `key`, or the error response AWS would give.
fn open_connection(
    gateway: &Gateway,
    key: RoomKey,
    id: &str,
) -> Result<Arc<ConnectionHandle>, Missing> {
    match gateway.connections().get(&key, id) {
        Some(handle) => Ok(handle),
        None if gateway.room(&key).is_none() => Err(Missing::Room(key)),
        None => Err(Missing::Connection),
    }
}

enum Missing {
    Room(RoomKey),
    Connection,
}

impl IntoResponse for Missing {
    fn into_response(self) -> Response {
        match self {
            Self::Room(key) => no_such_room(&key),
            Self::Connection => gone(),
        }
    }
}

fn info(handle: &ConnectionHandle) -> ConnectionInfo {
    ConnectionInfo {
        connected_at: iso8601(handle.connected_at),
        identity: Identity {
            source_ip: handle.source_ip.clone(),
            user_agent: handle.user_agent.as_deref().map(str::to_owned),
        },
        last_active_at: iso8601(handle.last_active()),
    }
}

fn iso8601(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn gone() -> Response {
    aws_error(
        StatusCode::GONE,
        "GoneException",
        "The connection is gone or was never open",
    )
}

fn no_such_room(key: &RoomKey) -> Response {
    aws_error(
        StatusCode::NOT_FOUND,
        "NotFoundException",
        &format!("No room is served at /{key}"),
    )
}

fn too_large(bytes: Option<usize>, limit: usize) -> Response {
    let size = bytes.map_or_else(
        || "more than the limit".to_owned(),
        |b| format!("{b} bytes"),
    );
    aws_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLargeException",
        &format!("Message of {size} exceeds the limit of {limit} bytes"),
    )
}

fn aws_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let body = Json(serde_json::json!({ "message": message }));
    (status, [("x-amzn-ErrorType", error_type)], body).into_response()
}
