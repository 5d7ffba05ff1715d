use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use chatroom_handlers::auth::{HttpsKeySource, Verifier};
use chatroom_handlers::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest, RouteSelectionExpression,
};
use futures::FutureExt;

use super::throttle::Throttle;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Invocation =
    Pin<Box<dyn Future<Output = Result<ApiGatewayProxyResponse, BoxError>> + Send>>;

/// What a route invokes: on AWS the room's Lambda function, here anything that takes the same
/// event and returns the same response.
pub trait Integration: Send + Sync + 'static {
    fn invoke(&self, event: ApiGatewayWebsocketProxyRequest) -> Invocation;
}

/// A room's address on the gateway: `/{namespace}/{name}/{stage}` (also as path parameters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
pub struct RoomKey {
    pub namespace: String,
    pub name: String,
    pub stage: String,
}

impl fmt::Display for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.name, self.stage)
    }
}

/// One WebSocket API with one stage, served by the gateway.
pub struct Room {
    /// Shared with the room's connections, so that telling whether a connection belongs to
    /// the room is one pointer comparison in the common case.
    pub key: Arc<RoomKey>,
    /// Stands in for API Gateway's API id in events (`requestContext.apiId`).
    pub api_id: String,
    pub route_selection: RouteSelectionExpression,
    /// Custom route keys besides `$connect`, `$disconnect` and `$default`.
    pub routes: Vec<String>,
    pub integration: Arc<dyn Integration>,
    /// The stage's throttling (`spec.throttling`), on top of the account's.
    pub throttle: Option<Throttle>,
    /// The route whose messages go to everyone; every other route is also held to the
    /// per-connection query rate (`Limits::connection_query_rate`).
    pub broadcast_route: Option<String>,
    /// The `$connect` route's authorizer (`spec.auth.jwt`).
    pub authorizer: Option<Arc<Verifier<HttpsKeySource>>>,
}

impl Room {
    /// The route a text frame takes: the custom route it selects, else `$default`.
    pub fn route_for(&self, frame: Option<&str>) -> String {
        frame
            .and_then(|text| self.route_selection.select(text))
            .filter(|key| self.routes.iter().any(|route| route == key))
            .unwrap_or_else(|| "$default".to_owned())
    }

    /// Invokes the integration; an error or a panic comes back as `Err` and never unwinds into
    /// the gateway, so one failing invocation cannot hurt other connections.
    pub async fn invoke(
        &self,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, InvocationFailed> {
        let route = event.request_context.route_key.clone().unwrap_or_default();
        match AssertUnwindSafe(self.integration.invoke(event))
            .catch_unwind()
            .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                tracing::error!(room = %self.key, %route, %error, "integration failed");
                Err(InvocationFailed)
            }
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(room = %self.key, %route, %reason, "integration panicked");
                Err(InvocationFailed)
            }
        }
    }
}

/// The integration failed or panicked; details are in the gateway's log, as in CloudWatch.
#[derive(Debug, Clone, Copy)]
pub struct InvocationFailed;
