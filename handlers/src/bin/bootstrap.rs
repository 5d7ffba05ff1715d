//! The room's Lambda function (runtime `provided.al2023`): API Gateway invokes it for
//! `$connect`, `$disconnect`, `$default` and the message route, and, in a room with auth, as
//! the `$connect` route's REQUEST authorizer; it invokes itself, asynchronously, with the
//! pages of a large broadcast.

// The AWS SDK's nested futures need more than the default depth to lay out `main`'s future.
#![recursion_limit = "256"]

use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayProxyResponse,
    ApiGatewayWebsocketProxyRequest,
};
use chatroom_handlers::aws::{
    FANOUT_EVENT_KEY, FanoutPage, Function, FunctionConfig, is_authorizer_event, is_fanout_event,
};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

// One thread: below 1,769 MB a function has a fraction of a vCPU, where a second runtime
// thread buys no parallelism and costs a cross-thread wake-up per I/O (the broadcast to
// 100,000 in docs/benchmarks.md took 15.4 s with the multi-threaded runtime, 12.6 s without).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .init();

    let config =
        FunctionConfig::from_env().inspect_err(|error| tracing::error!(%error, "cannot start"))?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let function = Arc::new(
        Function::new(&sdk, config).inspect_err(|error| tracing::error!(%error, "cannot start"))?,
    );

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move { dispatch(&function, event).await }
    }))
    .await
}

/// An authorizer request or a route's event, told apart by their shapes.
async fn dispatch(
    function: &Function,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let (mut payload, context) = event.into_parts();
    if is_fanout_event(&payload) {
        let part: FanoutPage = serde_json::from_value(payload[FANOUT_EVENT_KEY].take())?;
        let span = tracing::info_span!("fan-out", request_id = %context.request_id);
        let deadline = std::time::UNIX_EPOCH + std::time::Duration::from_millis(context.deadline);
        let report = function.fan_out(&part, deadline).instrument(span).await?;
        return Ok(serde_json::json!({ "delivered": report.delivered, "skipped": report.skipped }));
    }
    if is_authorizer_event(&payload) {
        let request: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(payload)?;
        let span = tracing::info_span!("authorizer", request_id = %context.request_id);
        let answer = function.authorize(&request).instrument(span).await?;
        return Ok(serde_json::to_value(answer)?);
    }
    // Read from a reference: a room's backend gets the event as it came, not as parsed.
    let request = ApiGatewayWebsocketProxyRequest::deserialize(&payload)?;
    let response = invoke(function, request, &payload, &context).await?;
    Ok(serde_json::to_value(response)?)
}

/// One invocation, logged under its request id and route; message bodies are never logged.
async fn invoke(
    function: &Function,
    payload: ApiGatewayWebsocketProxyRequest,
    received: &Value,
    context: &lambda_runtime::Context,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let route = payload
        .request_context
        .route_key
        .clone()
        .unwrap_or_default();
    let span = tracing::info_span!("invocation", request_id = %context.request_id, %route);
    async move {
        let result = function.handle_received(&payload, received).await;
        match &result {
            Ok(response) => tracing::info!(status = response.status_code, "handled"),
            Err(error) => tracing::error!(%error, "failed"),
        }
        Ok(result?)
    }
    .instrument(span)
    .await
}
