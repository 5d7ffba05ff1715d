//! What a room with its own backend does besides chatting: hands the backend's routes to it,
//! answers the sender with what it says, and tells it who came and went.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use super::{Chat, ChatError, authorized_name, response};
use crate::backend::forwarded_event;
use crate::frames::ChatFrame;
use crate::history::HistoryStore;
use crate::sender::Sender;
use crate::store::{ConnectionStore, Recipient, anonymous_label};

impl<S: ConnectionStore, T: Sender, H: HistoryStore> Chat<S, T, H> {
    pub(super) fn forwards_route(&self, route: &str) -> bool {
        self.backend
            .as_ref()
            .is_some_and(|link| link.forwarded.takes_route(route))
    }

    /// A message on one of the backend's routes: its event goes to the backend, and a non-empty
    /// answer goes back to the sender as it is. A backend that fails costs the sender one error
    /// frame, never a hung route.
    pub(super) async fn forward(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
        received: Option<&serde_json::Value>,
    ) -> Result<ApiGatewayProxyResponse, ChatError> {
        let Some(link) = &self.backend else {
            return Ok(response(200, None));
        };
        let route = event
            .request_context
            .route_key
            .as_deref()
            .unwrap_or_default();
        let name = self.name_of(connection_id, event).await?;
        let outcome = match forwarded_event(event, received, &name) {
            Ok(body) => link
                .backend
                .deliver(body)
                .await
                .map_err(|e| (e.to_string(), e.for_client())),
            Err(error) => {
                let reason = format!("the event could not be written: {error}");
                Err((reason.clone(), reason))
            }
        };
        match outcome {
            Ok(answer) if answer.is_empty() => Ok(response(200, None)),
            Ok(answer) => {
                self.post_to(connection_id, answer).await;
                Ok(response(200, None))
            }
            Err((reason, told)) => {
                tracing::warn!(%route, %reason, "the room's backend failed");
                let message = format!(
                    "The {route} route's backend failed ({told}); nothing was done. Try again later."
                );
                self.reply(connection_id, &ChatFrame::Error { message })
                    .await;
                Ok(response(502, None))
            }
        }
    }

    /// Tells the backend of an arrival or a departure, if it asked. Its answer is not read,
    /// and its failure does not stop the connection: a backend that is down must not take the
    /// chat down with it.
    pub(super) async fn tell_backend(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        received: Option<&serde_json::Value>,
        whom: &Recipient,
    ) {
        let Some(link) = &self.backend else { return };
        let wanted = match event.request_context.event_type.as_deref() {
            Some("CONNECT") => link.forwarded.connect,
            Some("DISCONNECT") => link.forwarded.disconnect,
            _ => false,
        };
        if !wanted {
            return;
        }
        let outcome = match forwarded_event(event, received, &whom.sender_label()) {
            Ok(body) => link
                .backend
                .deliver(body)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(reason) = outcome {
            let route = event
                .request_context
                .route_key
                .as_deref()
                .unwrap_or_default();
            tracing::warn!(%route, %reason, "the room's backend was not told");
        }
    }

    /// The sender's name: its authorizer's, else the one it connected with, else its label.
    async fn name_of(
        &self,
        connection_id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<String, ChatError> {
        if let Some(name) = authorized_name(event) {
            return Ok(name.to_owned());
        }
        Ok(self
            .store
            .get(connection_id)
            .await?
            .map_or_else(|| anonymous_label(connection_id), |r| r.sender_label()))
    }
}
