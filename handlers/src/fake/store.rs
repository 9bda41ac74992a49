//! The fake's store interfaces: each condition of the DynamoDB expressions
//! (`crate::store::dynamo`) in Rust, on items shaped like DynamoDB's; and
//! the bodies bucket.

use protocol::{HttpResponse, SignedUrl};

use super::{AnswerRow, Fail, Fake, on};
use crate::bodies::{Bodies, BodiesError};
use crate::store::{
    Claim, Connection, ConnectionStore, PendingStore, StoreError, StoredAnswer, Written,
    answer_key, parse_response_data, response_data,
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
    async fn put_answer(
        &self,
        connection_id: &str,
        response: &HttpResponse,
        ttl: i64,
    ) -> Result<Written, StoreError> {
        self.record(on("pending", "PutItem"), Fail::PutAnswer)?;
        let key = answer_key(&response.request_id, connection_id);
        let response_data = response_data(&key, response)?;
        // attribute_not_exists(requestId)
        Ok(self.with(|s| {
            let free = !s.answers.contains_key(&key);
            if free {
                s.answers.insert(key, AnswerRow { response_data, ttl });
            }
            written(free)
        }))
    }

    async fn get_answer(
        &self,
        request_id: &str,
        connection_id: &str,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        self.record(on("pending", "GetItem"), Fail::GetAnswer)?;
        let key = answer_key(request_id, connection_id);
        self.with(|s| {
            // The fake agent's answer lands at its poll.
            if let Some(scheduled) = s.scheduled.get_mut(&key) {
                scheduled.polls += 1;
                if scheduled.polls >= scheduled.at {
                    let response = s.scheduled.remove(&key).expect("present").response;
                    let response_data = response_data(&key, &response)?;
                    s.answers.entry(key.clone()).or_insert(AnswerRow {
                        response_data,
                        ttl: i64::MAX,
                    });
                }
            }
            let Some(row) = s.answers.get(&key) else {
                return Ok(None);
            };
            Ok(Some(StoredAnswer {
                response: parse_response_data(&key, &row.response_data)?,
                ttl: row.ttl,
            }))
        })
    }
}

/// The key a URL the fake presigned for `method` names.
pub(super) fn key_of(url: &SignedUrl, method: &str) -> Option<String> {
    let rest = url.expose().strip_prefix(BODIES_ORIGIN)?;
    let (key, signed) = rest.split_once('?')?;
    (signed == format!("X-Amz-Signature={method}")).then(|| key.to_string())
}

/// Where the fake's presigned URLs point.
const BODIES_ORIGIN: &str = "https://bodies.fake/";

impl Fake {
    fn record_s3(&self, operation: &str, key: &str, fail: Fail) -> Result<(), BodiesError> {
        self.with(|s| {
            s.s3_calls.push(format!("{operation} {key}"));
            if s.failures.contains(&fail) {
                Err(BodiesError::backend("S3", "injected failure"))
            } else {
                Ok(())
            }
        })
    }
}

impl Bodies for Fake {
    async fn presign_get(&self, key: &str) -> Result<SignedUrl, BodiesError> {
        self.record_s3("PresignGet", key, Fail::Presign)?;
        Ok(SignedUrl::new(format!(
            "{BODIES_ORIGIN}{key}?X-Amz-Signature=GET"
        )))
    }

    async fn presign_put(&self, key: &str) -> Result<SignedUrl, BodiesError> {
        self.record_s3("PresignPut", key, Fail::Presign)?;
        Ok(SignedUrl::new(format!(
            "{BODIES_ORIGIN}{key}?X-Amz-Signature=PUT"
        )))
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), BodiesError> {
        self.record_s3("PutObject", key, Fail::PutBody)?;
        self.with(|s| s.objects.insert(key.to_string(), body));
        Ok(())
    }

    async fn get(&self, key: &str, length: u64) -> Result<Vec<u8>, BodiesError> {
        self.record_s3("GetObject", key, Fail::GetBody)?;
        let body = self
            .with(|s| s.objects.get(key).cloned())
            .ok_or(BodiesError::Missing)?;
        if body.len() as u64 != length {
            return Err(BodiesError::WrongLength {
                announced: length,
                actual: body.len() as u64,
            });
        }
        Ok(body)
    }

    async fn delete(&self, key: &str) -> Result<(), BodiesError> {
        self.record_s3("DeleteObject", key, Fail::DeleteBody)?;
        self.with(|s| s.objects.remove(key));
        Ok(())
    }
}
