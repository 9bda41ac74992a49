//! [`Notifier`] on the API Gateway Management API (`@connections`):
//! PostToConnection and GetConnection, their errors classified by
//! `x-amzn-ErrorType`; a 403 is logged as an alarm here, for every caller.

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::operation::get_connection::GetConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use super::{Notifier, PostError, Presence, ProbeError, log_forbidden};
use crate::logging::chain;

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
        let Err(e) = result else { return Ok(()) };
        match e.as_service_error() {
            Some(PostToConnectionError::GoneException(_)) => Err(PostError::Gone),
            Some(PostToConnectionError::PayloadTooLargeException(_)) => {
                Err(PostError::PayloadTooLarge)
            }
            Some(PostToConnectionError::ForbiddenException(_)) => {
                let e = aws_sdk_apigatewaymanagement::Error::from(e);
                log_forbidden("PostToConnection", connection_id, &chain(&e));
                Err(PostError::Forbidden(Box::new(e)))
            }
            _ => Err(PostError::Other(Box::new(
                aws_sdk_apigatewaymanagement::Error::from(e),
            ))),
        }
    }

    async fn presence(&self, connection_id: &str) -> Result<Presence, ProbeError> {
        let result = self
            .client
            .get_connection()
            .connection_id(connection_id)
            .send()
            .await;
        let Err(e) = result else {
            return Ok(Presence::Connected);
        };
        match e.as_service_error() {
            Some(GetConnectionError::GoneException(_)) => Ok(Presence::Gone),
            Some(GetConnectionError::ForbiddenException(_)) => {
                let e = aws_sdk_apigatewaymanagement::Error::from(e);
                log_forbidden("GetConnection", connection_id, &chain(&e));
                Err(ProbeError::Forbidden(Box::new(e)))
            }
            _ => Err(ProbeError::Other(Box::new(
                aws_sdk_apigatewaymanagement::Error::from(e),
            ))),
        }
    }
}
