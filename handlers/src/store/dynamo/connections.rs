//! [`ConnectionStore`] on DynamoDB: connection items and subdomain claims.

use std::collections::HashMap;

use super::{
    DynamoConnectionStore, Item, get_n, get_opt_n, get_opt_s, get_s, n, s, sdk_error, written,
};
use protocol::policy::AccessPolicy;

use crate::store::{
    CLAIM_PREFIX, Claim, Connection, ConnectionStore, StoreError, Written, claim_key,
};

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
    if let Some(hash) = &claim.next_resume_token_hash {
        item.insert("nextResumeTokenHash".to_string(), s(hash));
    }
    if let Some(user) = &claim.owner_user {
        item.insert("ownerUser".to_string(), s(user));
    }
    if let Some(policy) = &claim.policy {
        item.insert("accessPolicy".to_string(), s(policy_json(policy)));
    }
    item
}

fn policy_json(policy: &AccessPolicy) -> String {
    serde_json::to_string(policy).expect("a policy serializes")
}

/// The stored policy; unreadable is an error, never "no policy": a tunnel
/// whose policy cannot be read must not be served open.
fn get_policy(item: &Item, key: &str) -> Result<Option<AccessPolicy>, StoreError> {
    get_opt_s(item, "accessPolicy")
        .map(|json| {
            serde_json::from_str(&json).map_err(|e| StoreError::Malformed {
                key: key.to_string(),
                problem: format!("accessPolicy is not a policy: {e}"),
            })
        })
        .transpose()
}

impl DynamoConnectionStore {
    /// GetItem, strongly consistent: a claim written a moment ago is seen.
    async fn get_item(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connectionId", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB GetItem", e))?;
        Ok(out.item)
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
        written("DynamoDB PutItem", result)
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
        written("DynamoDB PutItem", result)
    }

    async fn resume_claim(&self, claim: &Claim, now: i64) -> Result<Written, StoreError> {
        let Some(presented) = &claim.resume_token_hash else {
            // No token, nothing to match: a resume without one never holds.
            return Ok(Written::ConditionFailed);
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("connectionId", s(claim_key(&claim.subdomain)))
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":me", s(&claim.owner_connection_id))
            .expression_attribute_values(":created", n(claim.created_at))
            .expression_attribute_values(":ttl", n(claim.ttl))
            .expression_attribute_values(":hash", s(presented))
            .expression_attribute_values(":now", n(now));
        // The presented token becomes the current one and the other slot is
        // voided (crate::claims: the agent presents the newest it received).
        let mut set = "SET ownerConnectionId = :me, createdAt = :created, #ttl = :ttl, \
                       resumeTokenHash = :hash"
            .to_string();
        let mut remove = "REMOVE releasedAt, nextResumeTokenHash".to_string();
        // The resuming agent re-declares its policy: the new one, or none.
        match &claim.policy {
            Some(policy) => {
                set.push_str(", accessPolicy = :policy");
                update = update.expression_attribute_values(":policy", s(policy_json(policy)));
            }
            None => remove.push_str(", accessPolicy"),
        }
        // A stored hash exists only on an existing claim: no upsert.
        let condition = "(resumeTokenHash = :hash OR nextResumeTokenHash = :hash) AND #ttl >= :now";
        update = match &claim.owner_user {
            Some(user) => update
                .update_expression(format!("{set} {remove}"))
                .condition_expression(format!(
                    "{condition} AND (attribute_not_exists(ownerUser) OR ownerUser = :user)"
                ))
                .expression_attribute_values(":user", s(user)),
            None => update
                .update_expression(format!("{set} {remove}, ownerUser"))
                .condition_expression(condition),
        };
        written("DynamoDB UpdateItem", update.send().await)
    }

    async fn offer_resume_token(
        &self,
        subdomain: &str,
        owner: &str,
        next_hash: &str,
    ) -> Result<Written, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("connectionId", s(claim_key(subdomain)))
            .update_expression("SET nextResumeTokenHash = :next")
            // Only the holder's own claim (a missing one fails the
            // comparison: no upsert).
            .condition_expression("ownerConnectionId = :me")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":next", s(next_hash))
            .send()
            .await;
        written("DynamoDB UpdateItem", result)
    }

    async fn get_claim(&self, subdomain: &str) -> Result<Option<Claim>, StoreError> {
        let key = claim_key(subdomain);
        let Some(item) = self.get_item(&key).await? else {
            return Ok(None);
        };
        Ok(Some(Claim {
            subdomain: subdomain.to_string(),
            owner_connection_id: get_s(&item, &key, "ownerConnectionId")?,
            created_at: get_n(&item, &key, "createdAt")?,
            ttl: get_n(&item, &key, "ttl")?,
            resume_token_hash: get_opt_s(&item, "resumeTokenHash"),
            next_resume_token_hash: get_opt_s(&item, "nextResumeTokenHash"),
            owner_user: get_opt_s(&item, "ownerUser"),
            released_at: get_opt_n(&item, "releasedAt"),
            policy: get_policy(&item, &key)?,
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
            // The policy may hold a webhook secret: it lives only as long as
            // the connection (a resuming agent declares it again).
            .update_expression("SET releasedAt = :now, #ttl = :until REMOVE accessPolicy")
            // Only our own claim: a late `$disconnect` must not touch a claim
            // that moved to the agent's new connection (and a missing claim
            // fails the comparison: no upsert).
            .condition_expression("ownerConnectionId = :me")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":until", n(until))
            .send()
            .await;
        written("DynamoDB UpdateItem", result)
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
            .map_err(|e| sdk_error("DynamoDB PutItem", e))?;
        Ok(())
    }

    async fn get_connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        if connection_id.starts_with(CLAIM_PREFIX) {
            return Ok(None);
        }
        let Some(item) = self.get_item(connection_id).await? else {
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
        }))
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("connectionId", s(connection_id))
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB DeleteItem", e))?;
        Ok(())
    }
}
