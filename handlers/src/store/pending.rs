//! The pending requests table: one item per answer, written once by the
//! response function and never updated nor deleted (`docs/contracts.md`,
//! "The data path").
//!
//! The key is `<request id>#<connection id>` ([`answer_key`]), the
//! connection id being the one API Gateway gives the answering event. The
//! item is written with `attribute_not_exists(requestId)`: a connection's
//! first answer to a request is its only one. Forwarding reads the key made
//! of the request id and the connection it posted the request to, so an
//! answer from any other connection lands under another key and is never
//! read: ownership by construction. TTL reclaims the items (a DeleteItem is
//! billed by the item's size, TTL deletion is free).

use std::future::Future;

use protocol::HttpResponse;

use super::outcome::{StoreError, Written};

/// The key of `connection_id`'s answer to `request_id`: `#` occurs neither in
/// a request id (a UUID) nor in a connection id (URL-safe base64).
pub fn answer_key(request_id: &str, connection_id: &str) -> String {
    format!("{request_id}#{connection_id}")
}

/// An answer as stored: the response and the item's `ttl` (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub response: HttpResponse,
    pub ttl: i64,
}

/// A response as an answer item stores it (`responseData`): its JSON.
pub fn response_data(key: &str, response: &HttpResponse) -> Result<String, StoreError> {
    serde_json::to_string(response).map_err(|source| StoreError::ResponseJson {
        key: key.to_string(),
        source,
    })
}

/// The response an answer item's `responseData` holds.
pub fn parse_response_data(key: &str, json: &str) -> Result<HttpResponse, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::ResponseJson {
        key: key.to_string(),
        source,
    })
}

/// The pending requests table.
pub trait PendingStore {
    /// PutItem `connection_id`'s answer to `response.request_id` with `ttl`,
    /// unless that connection already answered it (`ConditionFailed`).
    fn put_answer(
        &self,
        connection_id: &str,
        response: &HttpResponse,
        ttl: i64,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// GetItem (strongly consistent) `connection_id`'s answer to
    /// `request_id`; `None` while there is none.
    fn get_answer(
        &self,
        request_id: &str,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<StoredAnswer>, StoreError>> + Send;
}
