//! The buckets, created from `handlers::manifest::BUCKETS` (what Terraform
//! is checked against) with names unique to one harness instance, on the
//! backend's S3 (moto and LocalStack serve it on the same endpoint as
//! DynamoDB).

use std::collections::BTreeMap;

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Region},
    types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, PublicAccessBlockConfiguration,
    },
};
use handlers::manifest::{BUCKETS, Bucket};

use crate::{
    backend::{self, REGION},
    error::{BoxError, HarnessError},
};

/// The harness's buckets: manifest role → bucket name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    names: BTreeMap<&'static str, String>,
}

impl Buckets {
    /// Creates every bucket of the manifest as `{prefix}-{role}`, private,
    /// with its lifecycle rule (as `terraform/modules/bodies` does).
    pub async fn create(client: &Client, prefix: &str) -> Result<Buckets, HarnessError> {
        let buckets = Buckets::named(prefix);
        for bucket in BUCKETS {
            create_bucket(client, bucket, buckets.name(bucket.role)).await?;
        }
        Ok(buckets)
    }

    /// The names [`Buckets::create`] gives, without creating anything.
    pub fn named(prefix: &str) -> Buckets {
        Buckets {
            names: BUCKETS
                .iter()
                .map(|bucket| (bucket.role, format!("{prefix}-{}", bucket.role)))
                .collect(),
        }
    }

    /// The bucket playing `role` in the manifest (`bodies`).
    pub fn name(&self, role: &str) -> &str {
        self.names
            .get(role)
            .unwrap_or_else(|| panic!("the manifest has no bucket with role {role:?}"))
    }

    pub fn bodies(&self) -> &str {
        self.name(handlers::manifest::BODIES.role)
    }

    /// `(environment variable, bucket name)` for every bucket.
    pub fn environment(&self) -> impl Iterator<Item = (&'static str, &str)> {
        BUCKETS
            .iter()
            .map(|bucket| (bucket.env, self.name(bucket.role)))
    }

    /// Empties and deletes the buckets (best effort; for shared endpoints).
    pub async fn delete(&self, client: &Client) {
        for name in self.names.values() {
            if let Ok(listing) = client.list_objects_v2().bucket(name).send().await {
                for object in listing.contents() {
                    if let Some(key) = object.key() {
                        let _ = client.delete_object().bucket(name).key(key).send().await;
                    }
                }
            }
            let _ = client.delete_bucket().bucket(name).send().await;
        }
    }
}

/// An S3 client with the harness's region and dummy credentials, path-style
/// (a local endpoint has no per-bucket host names).
pub fn client_for(endpoint: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(backend::credentials())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

fn bucket_error(
    operation: &'static str,
    bucket: &str,
) -> impl FnOnce(BoxError) -> HarnessError + use<> {
    let bucket = bucket.to_string();
    move |source| HarnessError::Bucket {
        operation,
        bucket,
        source,
    }
}

async fn create_bucket(client: &Client, bucket: &Bucket, name: &str) -> Result<(), HarnessError> {
    // us-east-1 takes no location constraint.
    client
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .map_err(|e| bucket_error("CreateBucket", name)(e.into()))?;
    client
        .put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| bucket_error("PutPublicAccessBlock", name)(e.into()))?;
    let rule = LifecycleRule::builder()
        .id("expire-bodies")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(
            LifecycleExpiration::builder()
                .days(bucket.expiration_days as i32)
                .build(),
        )
        .build()
        .map_err(|e| bucket_error("PutBucketLifecycleConfiguration", name)(e.into()))?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| bucket_error("PutBucketLifecycleConfiguration", name)(e.into()))?,
        )
        .send()
        .await
        .map_err(|e| bucket_error("PutBucketLifecycleConfiguration", name)(e.into()))?;
    Ok(())
}
