//! The fake's store interfaces: each condition of the DynamoDB expressions
//! (`crate::store::dynamo`) in Rust, on items shaped like DynamoDB's. The
//! chunk calls yield first, so concurrent handlers interleave.

use protocol::HttpResponse;
use protocol::limits::BODY_CHUNK_BYTES;

use super::{Fail, Fake, PendingRow, on};
use crate::manifest::{DynamoDbAction, PENDING_BY_CONNECTION};
use crate::store::{
    ChunkStore, Claim, Connection, ConnectionStore, HEAD_PART, Part, PendingRequest, PendingState,
    PendingStore, Progress, Receiving, StoreError, Written, chunk_key, response_data,
};

/// `Written` from whether the condition held.
fn written(held: bool) -> Written {
    if held {
        Written::Yes
    } else {
        Written::ConditionFailed
    }
}

impl ConnectionStore for Fake {
    async fn claim_subdomain(&self, claim: &Claim, now: i64) -> Result<Written, StoreError> {
        self.record(on("connections", "PutItem"), Fail::Claim)?;
        // attribute_not_exists(connectionId) OR #ttl < :now
        Ok(self.with(|s| {
            let free = s.claims.get(&claim.subdomain).is_none_or(|c| c.ttl < now);
            if free {
                s.claims.insert(claim.subdomain.clone(), claim.clone());
            }
            written(free)
        }))
    }

    async fn get_claim(&self, subdomain: &str) -> Result<Option<Claim>, StoreError> {
        self.record(on("connections", "GetItem"), Fail::GetClaim)?;
        Ok(self.claim(subdomain))
    }

    async fn claim_reserved(&self, claim: &Claim, now: i64) -> Result<Written, StoreError> {
        self.record(on("connections", "PutItem"), Fail::Claim)?;
        // ... OR (ownerUser = :user AND attribute_exists(releasedAt))
        Ok(self.with(|s| {
            let free = s.claims.get(&claim.subdomain).is_none_or(|c| {
                c.ttl < now
                    || (claim.owner_user.is_some()
                        && c.owner_user == claim.owner_user
                        && c.released_at.is_some())
            });
            if free {
                s.claims.insert(claim.subdomain.clone(), claim.clone());
            }
            written(free)
        }))
    }

    async fn resume_claim(&self, claim: &Claim, now: i64) -> Result<Written, StoreError> {
        self.record(on("connections", "UpdateItem"), Fail::Claim)?;
        let Some(presented) = claim.resume_token_hash.as_deref() else {
            return Ok(Written::ConditionFailed);
        };
        Ok(self.with(|s| {
            // (resumeTokenHash = :hash OR nextResumeTokenHash = :hash) AND #ttl >= :now
            // [AND (attribute_not_exists(ownerUser) OR ownerUser = :user)];
            // a missing claim fails the comparison.
            let Some(existing) = s.claims.get_mut(&claim.subdomain).filter(|c| {
                (c.resume_token_hash.as_deref() == Some(presented)
                    || c.next_resume_token_hash.as_deref() == Some(presented))
                    && c.ttl >= now
                    && (claim.owner_user.is_none()
                        || c.owner_user.is_none()
                        || c.owner_user == claim.owner_user)
            }) else {
                return Written::ConditionFailed;
            };
            existing.owner_connection_id = claim.owner_connection_id.clone();
            existing.created_at = claim.created_at;
            existing.ttl = claim.ttl;
            existing.resume_token_hash = Some(presented.to_string());
            existing.next_resume_token_hash = None;
            existing.released_at = None;
            existing.policy = claim.policy.clone();
            if claim.owner_user.is_none() {
                existing.owner_user = None;
            }
            Written::Yes
        }))
    }

    async fn offer_resume_token(
        &self,
        subdomain: &str,
        owner: &str,
        next_hash: &str,
    ) -> Result<Written, StoreError> {
        self.record(on("connections", "UpdateItem"), Fail::OfferToken)?;
        // ownerConnectionId = :me
        Ok(self.with(|s| match s.claims.get_mut(subdomain) {
            Some(c) if c.owner_connection_id == owner => {
                c.next_resume_token_hash = Some(next_hash.to_string());
                Written::Yes
            }
            _ => Written::ConditionFailed,
        }))
    }

    async fn release_claim(
        &self,
        subdomain: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Written, StoreError> {
        self.record(on("connections", "UpdateItem"), Fail::ReleaseClaim)?;
        // ownerConnectionId = :me
        Ok(self.with(|s| match s.claims.get_mut(subdomain) {
            Some(c) if c.owner_connection_id == owner => {
                c.released_at = Some(now);
                c.ttl = until;
                c.policy = None;
                Written::Yes
            }
            _ => Written::ConditionFailed,
        }))
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.record(on("connections", "PutItem"), Fail::PutConnection)?;
        self.with(|s| {
            s.connections
                .insert(connection.connection_id.clone(), connection.clone())
        });
        Ok(())
    }

    async fn get_connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        self.record(on("connections", "GetItem"), Fail::GetConnection)?;
        Ok(self.connection(connection_id))
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.record(on("connections", "DeleteItem"), Fail::DeleteConnection)?;
        self.with(|s| s.connections.remove(connection_id));
        Ok(())
    }
}

impl PendingStore for Fake {
    async fn put_pending(&self, request: &PendingRequest) -> Result<(), StoreError> {
        self.record(on("pending", "PutItem"), Fail::PutPending)?;
        self.with(|s| {
            s.saved_pending.push(request.clone());
            s.pending
                .insert(request.request_id.clone(), PendingRow::new(request.clone()))
        });
        Ok(())
    }

    async fn get_pending(&self, request_id: &str) -> Result<Option<PendingState>, StoreError> {
        self.record(on("pending", "GetItem"), Fail::GetPending)?;
        self.with(|s| {
            let Some(row) = s.pending.get_mut(request_id) else {
                return Ok(None);
            };
            row.polls += 1;
            if let Some((at, response)) = &row.answer_at
                && row.polls >= *at
                && !row.completed
            {
                row.response_data = Some(response_data(request_id, response)?);
                row.completed = true;
            }
            Ok(Some(match row.response()? {
                Some(r) => PendingState::Completed(r),
                None => PendingState::Pending,
            }))
        })
    }

    async fn delete_pending(&self, request_id: &str) -> Result<(), StoreError> {
        self.record(on("pending", "DeleteItem"), Fail::DeletePending)?;
        self.with(|s| {
            s.pending.remove(request_id);
            s.deleted_pending.push(request_id.to_string());
        });
        Ok(())
    }

    async fn complete_pending(
        &self,
        request_id: &str,
        connection_id: &str,
        response: &HttpResponse,
    ) -> Result<Written, StoreError> {
        self.record(on("pending", "UpdateItem"), Fail::Complete)?;
        let data = response_data(request_id, response)?;
        // attribute_exists(requestId) AND #status = :pending AND connectionId = :conn
        Ok(self.with(|s| match s.pending.get_mut(request_id) {
            Some(row) if !row.completed && row.request.connection_id == connection_id => {
                row.completed = true;
                row.response_data = Some(data);
                Written::Yes
            }
            _ => Written::ConditionFailed,
        }))
    }

    async fn pending_for_connection(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        self.record(
            DynamoDbAction {
                table: "pending",
                index: Some(PENDING_BY_CONNECTION.name),
                action: "Query",
            },
            Fail::Query,
        )?;
        Ok(self.with(|s| {
            let mut ids: Vec<String> = s
                .pending
                .values()
                .filter(|p| p.request.connection_id == connection_id)
                .map(|p| p.request.request_id.clone())
                .collect();
            ids.sort();
            ids
        }))
    }
}

impl ChunkStore for Fake {
    async fn receiving(
        &self,
        request_id: &str,
        connection_id: &str,
    ) -> Result<Option<Receiving>, StoreError> {
        tokio::task::yield_now().await;
        self.record(on("pending", "GetItem"), Fail::GetPending)?;
        Ok(self.with(|s| {
            let row = s.pending.get(request_id)?;
            (!row.completed && row.request.connection_id == connection_id).then_some(Receiving {
                count: row.chunk_count,
            })
        }))
    }

    async fn put_chunk(
        &self,
        request_id: &str,
        connection_id: &str,
        index: u32,
        data: &[u8],
        _ttl: i64,
    ) -> Result<Written, StoreError> {
        tokio::task::yield_now().await;
        self.record(on("pending", "PutItem"), Fail::Complete)?;
        // attribute_not_exists(requestId) OR chunkOwner = :conn
        Ok(self.with(|s| {
            let key = chunk_key(request_id, index);
            let free = s
                .chunk_items
                .get(&key)
                .is_none_or(|(owner, _)| owner == connection_id);
            if free {
                s.chunk_items
                    .insert(key, (connection_id.to_string(), data.to_vec()));
            }
            written(free)
        }))
    }

    async fn add_part(
        &self,
        request_id: &str,
        connection_id: &str,
        part: Part<'_>,
    ) -> Result<Option<Progress>, StoreError> {
        tokio::task::yield_now().await;
        self.record(on("pending", "UpdateItem"), Fail::Complete)?;
        // attribute_exists(requestId) AND connectionId = :conn AND #status = :pending
        // [chunk: AND (attribute_not_exists(chunkCount) OR chunkCount > :index)]
        Ok(self.with(|s| {
            let row = s.pending.get_mut(request_id).filter(|r| {
                !r.completed
                    && r.request.connection_id == connection_id
                    && match part {
                        Part::Chunk(i) => r.chunk_count.is_none_or(|n| i < n),
                        Part::Head { .. } => true,
                    }
            })?;
            match part {
                Part::Head { json, count } => {
                    row.received_parts.insert(HEAD_PART);
                    row.response_data = Some(json.to_string());
                    row.chunk_count = Some(count);
                }
                Part::Chunk(i) => {
                    row.received_parts.insert(i64::from(i));
                }
            }
            Some(Progress {
                parts: row.received_parts.len(),
                count: row.chunk_count,
            })
        }))
    }

    async fn complete_chunked(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> Result<Written, StoreError> {
        tokio::task::yield_now().await;
        self.record(on("pending", "UpdateItem"), Fail::Complete)?;
        // connectionId = :conn AND #status = :pending AND chunkCount = :count
        // AND size(receivedParts) = :parts
        Ok(self.with(|s| {
            let Some(row) = s.pending.get_mut(request_id).filter(|r| {
                r.request.connection_id == connection_id
                    && !r.completed
                    && r.chunk_count == Some(count)
                    && r.received_parts.len() == count as usize + 1
            }) else {
                return Written::ConditionFailed;
            };
            row.completed = true;
            s.chunk_completions += 1;
            Written::Yes
        }))
    }

    async fn get_chunks(
        &self,
        request_id: &str,
        connection_id: &str,
        count: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        self.record(on("pending", "BatchGetItem"), Fail::GetPending)?;
        Ok(self.with(|s| {
            if let Some(body) = &s.answer_body {
                return body
                    .chunks(BODY_CHUNK_BYTES)
                    .enumerate()
                    .map(|(i, c)| (i as u32, c.to_vec()))
                    .collect();
            }
            (0..count)
                .filter_map(|i| {
                    let (owner, data) = s.chunk_items.get(&chunk_key(request_id, i))?;
                    (owner == connection_id).then(|| (i, data.clone()))
                })
                .collect()
        }))
    }
}
