//! [`PendingStore`] on DynamoDB: the pending request items.

use protocol::HttpResponse;

use super::{
    DynamoPendingStore, Item, STATUS_COMPLETED, STATUS_PENDING, get_s, n, s, sdk_error, written,
};
use crate::manifest::PENDING_BY_CONNECTION;
use crate::store::{
    PendingRequest, PendingState, PendingStore, StoreError, Written, parse_response_data,
    response_data,
};

impl PendingStore for DynamoPendingStore {
    async fn put_pending(&self, r: &PendingRequest) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("requestId", s(&r.request_id))
            .item("connectionId", s(&r.connection_id))
            .item("apiGatewayRequestId", s(&r.api_gateway_request_id))
            .item("createdAt", n(r.created_at))
            .item("ttl", n(r.ttl))
            .item("status", s(STATUS_PENDING))
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB PutItem", e))?;
        Ok(())
    }

    async fn get_pending(&self, request_id: &str) -> Result<Option<PendingState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("requestId", s(request_id))
            .consistent_read(true)
            .projection_expression("#status, responseData")
            .expression_attribute_names("#status", "status")
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let status = get_s(&item, request_id, "status")?;
        match status.as_str() {
            STATUS_PENDING => Ok(Some(PendingState::Pending)),
            STATUS_COMPLETED => {
                let json = get_s(&item, request_id, "responseData")?;
                let response = parse_response_data(request_id, &json)?;
                Ok(Some(PendingState::Completed(response)))
            }
            other => Err(StoreError::Malformed {
                key: request_id.to_string(),
                problem: format!("unknown status {other:?}"),
            }),
        }
    }

    async fn delete_pending(&self, request_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("requestId", s(request_id))
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB DeleteItem", e))?;
        Ok(())
    }

    async fn complete_pending(
        &self,
        request_id: &str,
        connection_id: &str,
        response: &HttpResponse,
    ) -> Result<Written, StoreError> {
        let data = response_data(request_id, response)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("requestId", s(request_id))
            .update_expression("SET #status = :completed, responseData = :data")
            // attribute_exists: UpdateItem would otherwise create an item for
            // an unknown (or already deleted) request.
            .condition_expression(
                "attribute_exists(requestId) AND #status = :pending AND connectionId = :conn",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(STATUS_COMPLETED))
            .expression_attribute_values(":pending", s(STATUS_PENDING))
            .expression_attribute_values(":conn", s(connection_id))
            .expression_attribute_values(":data", s(data))
            .send()
            .await;
        written("DynamoDB UpdateItem", result)
    }

    async fn pending_for_connection(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_BY_CONNECTION.name)
                .key_condition_expression("connectionId = :conn")
                .expression_attribute_values(":conn", s(connection_id))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("DynamoDB Query", e))?;
            for item in out.items() {
                ids.push(get_s(item, connection_id, "requestId")?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(ids),
            }
        }
    }
}
