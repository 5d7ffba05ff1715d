use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::DisplayErrorContext;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use bytes::Bytes;

use crate::sender::{SendError, Sender};

/// Posts to connections through the API Gateway Management API (`@connections`).
#[derive(Clone, Debug)]
pub struct ManagementApiSender {
    client: Client,
}

impl ManagementApiSender {
    /// A sender for the API at `endpoint` (`https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

/// The management endpoint for an event: `CALLBACK_URL` when set (custom domains, local
/// testing; with or without its `/@connections` suffix), else `https://{domainName}/{stage}`.
pub fn management_endpoint(callback_url: Option<&str>, domain_name: &str, stage: &str) -> String {
    match callback_url {
        Some(url) => url
            .trim_end_matches('/')
            .trim_end_matches("/@connections")
            .to_owned(),
        None => format!("https://{domain_name}/{stage}"),
    }
}

impl Sender for ManagementApiSender {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), SendError> {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(payload.to_vec()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) => {
                let gone = error
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception())
                    || error
                        .raw_response()
                        .is_some_and(|r| r.status().as_u16() == 410);
                if gone {
                    Err(SendError::Gone)
                } else {
                    Err(SendError::Failed(DisplayErrorContext(error).to_string()))
                }
            }
        }
    }
}
