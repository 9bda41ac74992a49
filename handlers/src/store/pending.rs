//! The pending requests table: one item per request forwarding is waiting
//! for, completed exactly once by the connection it was posted to.

use std::future::Future;

use protocol::HttpResponse;

use super::outcome::{StoreError, Written};

/// A pending request item, as forwarding writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub request_id: String,
    pub connection_id: String,
    pub api_gateway_request_id: String,
    pub created_at: i64,
    pub ttl: i64,
}

/// What forwarding sees when it polls a pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingState {
    Pending,
    Completed(HttpResponse),
}

/// A response as a pending item stores it (`responseData`): its JSON.
pub fn response_data(request_id: &str, response: &HttpResponse) -> Result<String, StoreError> {
    serde_json::to_string(response).map_err(|source| StoreError::ResponseJson {
        key: request_id.to_string(),
        source,
    })
}

/// The response a pending item's `responseData` holds.
pub fn parse_response_data(request_id: &str, json: &str) -> Result<HttpResponse, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::ResponseJson {
        key: request_id.to_string(),
        source,
    })
}

/// The pending requests table.
pub trait PendingStore {
    /// PutItem a new request with status `pending`.
    fn put_pending(
        &self,
        request: &PendingRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// GetItem (consistent); `None` if the item does not exist.
    fn get_pending(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<PendingState>, StoreError>> + Send;

    /// DeleteItem (no error if it is gone already).
    fn delete_pending(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// UpdateItem to `completed` with `response`, only if the request exists,
    /// is still pending and was posted to `connection_id`. Never creates an
    /// item.
    fn complete_pending(
        &self,
        request_id: &str,
        connection_id: &str,
        response: &HttpResponse,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// Query the `connectionId-index`: ids of the requests posted to
    /// `connection_id` (completed or not), in any order.
    fn pending_for_connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}
