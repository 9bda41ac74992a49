//! [`ChunkStore`] on DynamoDB: the expressions of the storage scheme in
//! [`crate::store::chunks`].

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};

use super::{
    DynamoPendingStore, Item, STATUS_COMPLETED, STATUS_PENDING, conditional, get_opt_n, get_opt_s,
    n, s, sdk_error, written,
};
use crate::store::{
    ChunkStore, HEAD_PART, Part, Progress, Receiving, StoreError, Written, chunk_key,
};

/// BatchGetItem may leave keys unprocessed under throttling: retried this
/// many times with a short growing pause before giving up.
const BATCH_ATTEMPTS: u32 = 6;

impl ChunkStore for DynamoPendingStore {
    async fn receiving(
        &self,
        request_id: &str,
        connection_id: &str,
    ) -> Result<Option<Receiving>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("requestId", s(request_id))
            .consistent_read(true)
            // Billed by the whole item's size all the same; this only keeps
            // the head's JSON off the wire.
            .projection_expression("connectionId, #status, chunkCount")
            .expression_attribute_names("#status", "status")
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let open = get_opt_s(&item, "connectionId").as_deref() == Some(connection_id)
            && get_opt_s(&item, "status").as_deref() == Some(STATUS_PENDING);
        Ok(open.then(|| Receiving {
            count: get_opt_n(&item, "chunkCount").and_then(|c| u32::try_from(c).ok()),
        }))
    }

    async fn put_chunk(
        &self,
        request_id: &str,
        connection_id: &str,
        index: u32,
        data: &[u8],
        ttl: i64,
    ) -> Result<Written, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("requestId", s(chunk_key(request_id, index)))
            .item("chunkOwner", s(connection_id))
            .item("chunkData", AttributeValue::B(Blob::new(data)))
            .item("ttl", n(ttl))
            // A duplicate from the same connection rewrites the same bytes;
            // another connection can never overwrite a chunk.
            .condition_expression("attribute_not_exists(requestId) OR chunkOwner = :conn")
            .expression_attribute_values(":conn", s(connection_id))
            .send()
            .await;
        written("DynamoDB PutItem", result)
    }

    async fn add_part(
        &self,
        request_id: &str,
        connection_id: &str,
        part: Part<'_>,
    ) -> Result<Option<Progress>, StoreError> {
        const OWNED: &str =
            "attribute_exists(requestId) AND connectionId = :conn AND #status = :pending";
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("requestId", s(request_id))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":conn", s(connection_id))
            .expression_attribute_values(":pending", s(STATUS_PENDING))
            .return_values(ReturnValue::AllNew);
        update = match part {
            Part::Head { json, count } => update
                .condition_expression(OWNED)
                .update_expression(
                    "ADD receivedParts :part SET responseData = :data, chunkCount = :count",
                )
                .expression_attribute_values(
                    ":part",
                    AttributeValue::Ns(vec![HEAD_PART.to_string()]),
                )
                .expression_attribute_values(":data", s(json))
                .expression_attribute_values(":count", n(i64::from(count))),
            // Once the head has declared the count, nothing beyond it counts.
            Part::Chunk(index) => update
                .update_expression("ADD receivedParts :part")
                .condition_expression(format!(
                    "{OWNED} AND (attribute_not_exists(chunkCount) OR chunkCount > :index)"
                ))
                .expression_attribute_values(":part", AttributeValue::Ns(vec![index.to_string()]))
                .expression_attribute_values(":index", n(i64::from(index))),
        };
        let Some(out) = conditional("DynamoDB UpdateItem", update.send().await)? else {
            return Ok(None);
        };
        let item = out.attributes.unwrap_or_default();
        let parts = item
            .get("receivedParts")
            .and_then(|v| v.as_ns().ok())
            .map_or(0, Vec::len);
        let count = item
            .get("chunkCount")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok());
        Ok(Some(Progress { parts, count }))
    }

    async fn complete_chunked(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> Result<Written, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("requestId", s(request_id))
            .update_expression("SET #status = :completed")
            .condition_expression(
                "connectionId = :conn AND #status = :pending AND chunkCount = :count AND size(receivedParts) = :parts",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(STATUS_COMPLETED))
            .expression_attribute_values(":pending", s(STATUS_PENDING))
            .expression_attribute_values(":conn", s(connection_id))
            .expression_attribute_values(":count", n(i64::from(count)))
            .expression_attribute_values(":parts", n(i64::from(count) + 1))
            .send()
            .await;
        written("DynamoDB UpdateItem", result)
    }

    async fn get_chunks(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let keys: Vec<Item> = (0..count)
            .map(|i| HashMap::from([("requestId".to_string(), s(chunk_key(request_id, i)))]))
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .projection_expression("requestId, chunkOwner, chunkData")
                .build()
                .map_err(|e| StoreError::backend("DynamoDB BatchGetItem", e))?,
        );
        let mut chunks = Vec::new();
        let mut attempt = 0;
        while let Some(keys) = request.take() {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(|e| sdk_error("DynamoDB BatchGetItem", e))?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                let key = item.get("requestId").and_then(|v| v.as_s().ok());
                let index = key
                    .and_then(|k| k.rsplit_once('#'))
                    .and_then(|(_, i)| i.parse::<u32>().ok());
                let owner = item.get("chunkOwner").and_then(|v| v.as_s().ok());
                let data = item.get("chunkData").and_then(|v| v.as_b().ok());
                match (index, owner, data) {
                    (Some(i), Some(o), Some(d)) if o == connection_id => {
                        chunks.push((i, d.as_ref().to_vec()))
                    }
                    _ => {
                        tracing::warn!(key = ?key, "chunk item skipped: malformed or not the connection's")
                    }
                }
            }
            request = out
                .unprocessed_keys
                .and_then(|mut m| m.remove(&self.table))
                .filter(|k| !k.keys().is_empty());
            if request.is_some() {
                attempt += 1;
                if attempt >= BATCH_ATTEMPTS {
                    return Err(StoreError::backend(
                        "DynamoDB BatchGetItem",
                        format!("chunks still unprocessed after {BATCH_ATTEMPTS} attempts"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
            }
        }
        Ok(chunks)
    }
}
