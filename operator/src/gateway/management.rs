//! The `@connections` API: what a back end uses to push to, inspect and drop a connection.
//! Errors carry `x-amzn-ErrorType` as AWS's do, so the AWS SDK maps them to the same
//! exceptions (`GoneException`, `PayloadTooLargeException`).
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html>

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::registry::{ConnectionHandle, data_frame};
use super::{Gateway, RoomKey};

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
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!(
                "Message of {} bytes exceeds the limit of {limit} bytes",
                body.len()
            ),
        );
    }
    match gateway
        .connections()
        .post(&key, &connection_id, data_frame(body))
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
            user_agent: handle.user_agent.clone(),
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

fn aws_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let body = Json(serde_json::json!({ "message": message }));
    (status, [("x-amzn-ErrorType", error_type)], body).into_response()
}
