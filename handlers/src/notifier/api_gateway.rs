//! [`Notifier`] on the API Gateway Management API (`@connections`).

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use super::{Notifier, PostError};

/// Posts to connections of one WebSocket API stage.
#[derive(Debug, Clone)]
pub struct ApiGatewayNotifier {
    client: Client,
}

impl ApiGatewayNotifier {
    /// `client` must have been built with `endpoint_url` = the
    /// `WEBSOCKET_API_ENDPOINT` (stage included); see [`management_client`].
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// A management API client for `endpoint` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
/// The SDK appends `/@connections/{id}` to the endpoint's path, which is why
/// the stage must be part of it.
pub fn management_client(sdk_config: &aws_config::SdkConfig, endpoint: &str) -> Client {
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk_config)
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

impl Notifier for ApiGatewayNotifier {
    async fn post(&self, connection_id: &str, data: &str) -> Result<(), PostError> {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data.as_bytes()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => Err(PostError::Gone),
                Some(PostToConnectionError::PayloadTooLargeException(_)) => {
                    Err(PostError::PayloadTooLarge)
                }
                _ => Err(PostError::Other(Box::new(
                    aws_sdk_apigatewaymanagement::Error::from(e),
                ))),
            },
        }
    }
}
