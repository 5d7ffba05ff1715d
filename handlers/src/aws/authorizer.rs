//! The room function as its API's REQUEST authorizer for `$connect`: API Gateway invokes it
//! with the connection request, and it answers with a policy allowing exactly that
//! `$connect`, or "Unauthorized" (API Gateway then answers the client 401).
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html>
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-lambda-authorizer-output.html>

use std::collections::HashMap;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use serde::Serialize;
use serde_json::Value;

use crate::auth::{Denied, KeySource, Verifier};

/// Whether a raw invocation event is an authorizer request rather than a route's event.
pub fn is_authorizer_event(event: &Value) -> bool {
    event["type"] == "REQUEST" && event["methodArn"].is_string()
}

/// API Gateway's Lambda authorizer answer (format 1.0, the one WebSocket APIs use).
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub principal_id: String,
    pub policy_document: PolicyDocument,
    pub context: HashMap<String, Value>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub action: &'static str,
    pub effect: &'static str,
    pub resource: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// The exact message API Gateway turns into a 401 for the client.
    #[error("Unauthorized")]
    Unauthorized,
    /// Anything else API Gateway answers 500 for.
    #[error("cannot check tokens: {0}")]
    Unavailable(Denied),
}

/// The answer to one authorizer request; why a token was refused is logged, never the token.
pub async fn authorize<K: KeySource + 'static>(
    verifier: &Verifier<K>,
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<AuthorizerResponse, AuthorizerError> {
    let source = &verifier.settings().identity_source;
    let query = |name: &str| request.query_string_parameters.first(name);
    let verified = match source.token(query, &request.headers) {
        None => Err(Denied::MissingToken),
        Some(token) => verifier.verify(token).await,
    };
    let identity = match verified {
        Ok(identity) => identity,
        Err(denied) if denied.is_server_error() => {
            tracing::error!(reason = %denied, "could not check a token");
            return Err(AuthorizerError::Unavailable(denied));
        }
        Err(denied) => {
            tracing::info!(reason = %denied, "refused a connection");
            return Err(AuthorizerError::Unauthorized);
        }
    };
    Ok(AuthorizerResponse {
        principal_id: identity.sub.clone(),
        policy_document: PolicyDocument {
            version: "2012-10-17",
            statement: vec![Statement {
                action: "execute-api:Invoke",
                effect: "Allow",
                resource: request.method_arn.clone().unwrap_or_default(),
            }],
        },
        context: identity.context(),
    })
}
