//! The events API Gateway sends a WebSocket API's integration, built with the
//! `aws_lambda_events` types so that the chat handlers cannot tell the two apart.
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-mapping-template-reference.html>

use std::collections::HashMap;

use axum::http::HeaderMap;
use chatroom_handlers::ApiGatewayWebsocketProxyRequest;
use chrono::{DateTime, Utc};

use super::ids::new_id;
use super::room::Room;

/// What every event of one connection shares.
pub struct ConnectionContext<'a> {
    pub room: &'a Room,
    pub connection_id: &'a str,
    pub connected_at: DateTime<Utc>,
    pub source_ip: &'a str,
    pub user_agent: Option<&'a str>,
    /// Stands in for `{apiId}.execute-api.{region}.amazonaws.com`: the gateway's own authority.
    pub domain_name: &'a str,
    /// The authorizer's context, in a room with auth.
    pub authorizer: Option<&'a HashMap<String, serde_json::Value>>,
}

pub fn connect(
    context: &ConnectionContext<'_>,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base(context, "$connect", "CONNECT");
    event.headers = headers.clone();
    event.multi_value_headers = headers.clone();
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in query {
        multi.entry(key.clone()).or_default().push(value.clone());
    }
    event.query_string_parameters = multi.clone().into();
    event.multi_value_query_string_parameters = multi.into();
    event
}

pub fn text_message(
    context: &ConnectionContext<'_>,
    route: &str,
    body: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base(context, route, "MESSAGE");
    event.request_context.message_id = Some(new_id());
    event.body = Some(body.to_owned());
    event
}

pub fn disconnect(
    context: &ConnectionContext<'_>,
    status_code: u16,
    reason: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base(context, "$disconnect", "DISCONNECT");
    event.request_context.disconnect_status_code = Some(i64::from(status_code));
    event.request_context.disconnect_reason = Some(reason.to_owned());
    event
}

fn base(
    context: &ConnectionContext<'_>,
    route: &str,
    event_type: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let now = Utc::now();
    let request_id = new_id();
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let request = &mut event.request_context;
    request.route_key = Some(route.to_owned());
    request.event_type = Some(event_type.to_owned());
    request.connection_id = Some(context.connection_id.to_owned());
    request.connected_at = context.connected_at.timestamp_millis();
    request.request_time_epoch = now.timestamp_millis();
    request.request_time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    request.extended_request_id = Some(request_id.clone());
    request.request_id = Some(request_id);
    request.message_direction = Some("IN".to_owned());
    request.domain_name = Some(context.domain_name.to_owned());
    request.stage = Some(context.room.key.stage.clone());
    request.apiid = Some(context.room.api_id.clone());
    request.identity.source_ip = Some(context.source_ip.to_owned());
    request.identity.user_agent = context.user_agent.map(str::to_owned);
    if let Some(authorizer) = context.authorizer {
        request.authorizer.fields.clone_from(authorizer);
    }
    event
}
