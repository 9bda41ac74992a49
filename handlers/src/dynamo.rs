//! [`ConnectionStore`] and [`PendingStore`] on DynamoDB, with the item layout
//! and conditional writes of `docs/contracts.md`.
//!
//! `status` and `ttl` are DynamoDB reserved words: expressions always name
//! attributes through `#placeholders`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use protocol::HttpResponse;

use crate::manifest::PENDING_BY_CONNECTION;
use crate::store::{
    CLAIM_PREFIX, Claim, Connection, ConnectionStore, PendingRequest, PendingState, PendingStore,
    StoreError, Written, claim_key,
};

mod chunks;

type Item = HashMap<String, AttributeValue>;

const STATUS_PENDING: &str = "pending";
const STATUS_COMPLETED: &str = "completed";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn sdk_error<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    aws_sdk_dynamodb::Error: From<SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
{
    StoreError::DynamoDb {
        operation,
        source: Box::new(aws_sdk_dynamodb::Error::from(err)),
    }
}

fn get_s(item: &Item, key: &str, name: &str) -> Result<String, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::Malformed {
            key: key.to_string(),
            problem: format!("{name} is missing or not a string"),
        })
}

fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &Item, key: &str, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Malformed {
            key: key.to_string(),
            problem: format!("{name} is missing or not an integer"),
        })
}

/// The connections table (connection items and subdomain claims).
#[derive(Debug, Clone)]
pub struct DynamoConnectionStore {
    client: Client,
    table: String,
}

impl DynamoConnectionStore {
    /// `table` is the value of `CONNECTIONS_TABLE_NAME`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// The claim item's attributes (key included).
fn claim_item(claim: &Claim) -> Item {
    let mut item: Item = HashMap::from([
        ("connectionId".to_string(), s(claim_key(&claim.subdomain))),
        (
            "ownerConnectionId".to_string(),
            s(&claim.owner_connection_id),
        ),
        ("createdAt".to_string(), n(claim.created_at)),
        ("ttl".to_string(), n(claim.ttl)),
    ]);
    if let Some(hash) = &claim.resume_token_hash {
        item.insert("resumeTokenHash".to_string(), s(hash));
    }
    if let Some(user) = &claim.owner_user {
        item.insert("ownerUser".to_string(), s(user));
    }
    item
}

/// `Ok(Written::ConditionFailed)` for a failed condition, else the error.
fn conditional<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
    is_condition: impl Fn(&E) -> bool,
) -> Result<Written, StoreError>
where
    aws_sdk_dynamodb::Error: From<SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
{
    match result {
        Ok(_) => Ok(Written::Yes),
        Err(e) if e.as_service_error().is_some_and(&is_condition) => Ok(Written::ConditionFailed),
        Err(e) => Err(sdk_error(operation, e)),
    }
}

impl ConnectionStore for DynamoConnectionStore {
    async fn claim_subdomain(&self, claim: &Claim, now: i64) -> Result<Written, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(claim_item(claim)))
            // A claim whose TTL has passed may not be deleted yet (TTL deletion
            // is lazy): it no longer protects anything, take it over. A
            // released claim inside its resume window has `ttl >= now`: taken.
            .condition_expression("attribute_not_exists(connectionId) OR #ttl < :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        conditional("PutItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn claim_reserved(&self, claim: &Claim, now: i64) -> Result<Written, StoreError> {
        let Some(user) = &claim.owner_user else {
            return self.claim_subdomain(claim, now).await;
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(claim_item(claim)))
            // The user's own released claim is theirs to take back (a
            // restarted agent has no resume token); a live one is not.
            .condition_expression(
                "attribute_not_exists(connectionId) OR #ttl < :now \
                 OR (ownerUser = :user AND attribute_exists(releasedAt))",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":user", s(user))
            .send()
            .await;
        conditional("PutItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn resume_claim(
        &self,
        claim: &Claim,
        token_hash: &str,
        now: i64,
    ) -> Result<Written, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("connectionId", s(claim_key(&claim.subdomain)))
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":me", s(&claim.owner_connection_id))
            .expression_attribute_values(":created", n(claim.created_at))
            .expression_attribute_values(":ttl", n(claim.ttl))
            .expression_attribute_values(":hash", s(token_hash))
            .expression_attribute_values(":now", n(now));
        // The new token's hash replaces the presented one: a token works once.
        let set = "SET ownerConnectionId = :me, createdAt = :created, #ttl = :ttl, \
                   resumeTokenHash = :newhash";
        update = update.expression_attribute_values(
            ":newhash",
            s(claim.resume_token_hash.as_deref().unwrap_or_default()),
        );
        let condition = "resumeTokenHash = :hash AND #ttl >= :now";
        update = match &claim.owner_user {
            Some(user) => update
                .update_expression(format!("{set} REMOVE releasedAt"))
                .condition_expression(format!(
                    "{condition} AND (attribute_not_exists(ownerUser) OR ownerUser = :user)"
                ))
                .expression_attribute_values(":user", s(user)),
            None => update
                .update_expression(format!("{set} REMOVE releasedAt, ownerUser"))
                .condition_expression(condition),
        };
        conditional("UpdateItem", update.send().await, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn get_claim(&self, subdomain: &str) -> Result<Option<Claim>, StoreError> {
        let key = claim_key(subdomain);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connectionId", s(&key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        Ok(Some(Claim {
            subdomain: subdomain.to_string(),
            owner_connection_id: get_s(&item, &key, "ownerConnectionId")?,
            created_at: get_n(&item, &key, "createdAt")?,
            ttl: get_n(&item, &key, "ttl")?,
            resume_token_hash: get_opt_s(&item, "resumeTokenHash"),
            owner_user: get_opt_s(&item, "ownerUser"),
            released_at: item
                .get("releasedAt")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok()),
        }))
    }

    async fn release_claim(
        &self,
        subdomain: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Written, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("connectionId", s(claim_key(subdomain)))
            .update_expression("SET releasedAt = :now, #ttl = :until")
            // Only our own claim: a late `$disconnect` must not touch a claim
            // that moved to the agent's new connection.
            .condition_expression("ownerConnectionId = :me")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":until", n(until))
            .send()
            .await;
        conditional("UpdateItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn put_connection(&self, c: &Connection) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            ("connectionId".to_string(), s(&c.connection_id)),
            ("publicSubdomain".to_string(), s(&c.public_subdomain)),
            ("publicUrl".to_string(), s(&c.public_url)),
            ("createdAt".to_string(), n(c.created_at)),
            ("ttl".to_string(), n(c.ttl)),
        ]);
        for (name, value) in [
            ("agentVersion", &c.agent_version),
            ("agentPlatform", &c.agent_platform),
            ("sourceIp", &c.source_ip),
            ("resumeToken", &c.resume_token),
        ] {
            if let Some(v) = value {
                item.insert(name.to_string(), s(v));
            }
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }

    async fn get_connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        if connection_id.starts_with(CLAIM_PREFIX) {
            return Ok(None);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connectionId", s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let key = connection_id;
        Ok(Some(Connection {
            connection_id: connection_id.to_string(),
            public_subdomain: get_s(&item, key, "publicSubdomain")?,
            public_url: get_s(&item, key, "publicUrl")?,
            created_at: get_n(&item, key, "createdAt")?,
            ttl: get_n(&item, key, "ttl")?,
            agent_version: get_opt_s(&item, "agentVersion"),
            agent_platform: get_opt_s(&item, "agentPlatform"),
            source_ip: get_opt_s(&item, "sourceIp"),
            resume_token: get_opt_s(&item, "resumeToken"),
        }))
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("connectionId", s(connection_id))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(())
    }
}

/// The pending requests table.
#[derive(Debug, Clone)]
pub struct DynamoPendingStore {
    client: Client,
    table: String,
}

impl DynamoPendingStore {
    /// `table` is the value of `PENDING_REQUESTS_TABLE_NAME`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

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
            .map_err(|e| sdk_error("PutItem", e))?;
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
            .map_err(|e| sdk_error("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let status = get_s(&item, request_id, "status")?;
        match status.as_str() {
            STATUS_PENDING => Ok(Some(PendingState::Pending)),
            STATUS_COMPLETED => {
                let json = get_s(&item, request_id, "responseData")?;
                let response =
                    serde_json::from_str(&json).map_err(|source| StoreError::ResponseJson {
                        key: request_id.to_string(),
                        source,
                    })?;
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
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(())
    }

    async fn complete_pending(
        &self,
        request_id: &str,
        connection_id: &str,
        response: &HttpResponse,
    ) -> Result<Written, StoreError> {
        let data = serde_json::to_string(response).map_err(|source| StoreError::ResponseJson {
            key: request_id.to_string(),
            source,
        })?;
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
        match result {
            Ok(_) => Ok(Written::Yes),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Written::ConditionFailed)
            }
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
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
                .map_err(|e| sdk_error("Query", e))?;
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
