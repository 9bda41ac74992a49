//! The S3 part of the harness: the bodies bucket the stack creates is
//! private and expires its objects as the manifest says, and the agent's
//! transfers (`agent::bodies`) work with real presigned URLs signed by
//! `aws-sdk-s3`, the way forwarding will sign them.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use handlers::manifest::BODIES;
use itest::{Buckets, DynamoDb, Tables, buckets};
use protocol::limits::SIGNED_URL_TTL;
use protocol::{BodyDownload, SignedUrl};

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i + seed) * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn the_bodies_bucket_is_private_and_expires_objects() -> anyhow::Result<()> {
    let backend = DynamoDb::shared().await?;
    let s3 = buckets::client_for(backend.endpoint());
    let created = Buckets::create(&s3, &Tables::unique_prefix()).await?;
    let bucket = created.bodies();

    let block = s3.get_public_access_block().bucket(bucket).send().await?;
    let block = block
        .public_access_block_configuration()
        .expect("a public access block");
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.block_public_policy(), Some(true));
    assert_eq!(block.ignore_public_acls(), Some(true));
    assert_eq!(block.restrict_public_buckets(), Some(true));

    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await?;
    let days: Vec<Option<i32>> = lifecycle
        .rules()
        .iter()
        .map(|rule| rule.expiration().and_then(|e| e.days()))
        .collect();
    assert_eq!(days, [Some(BODIES.expiration_days as i32)]);

    created.delete(&s3).await;
    Ok(())
}

#[tokio::test]
async fn the_agent_transfers_bodies_through_real_presigned_urls() -> anyhow::Result<()> {
    let backend = DynamoDb::shared().await?;
    let s3 = buckets::client_for(backend.endpoint());
    let created = Buckets::create(&s3, &Tables::unique_prefix()).await?;
    let bucket = created.bodies();
    let storage = agent::bodies::Storage::new(Duration::from_secs(20))?;
    let presigning = PresigningConfig::expires_in(SIGNED_URL_TTL)?;

    // A request body forwarding stored: fetched byte for byte.
    let request_body = pattern(1 << 20, 1);
    s3.put_object()
        .bucket(bucket)
        .key("req/a")
        .body(ByteStream::from(request_body.clone()))
        .send()
        .await?;
    let get = s3
        .get_object()
        .bucket(bucket)
        .key("req/a")
        .presigned(presigning.clone())
        .await?;
    let download = BodyDownload {
        url: SignedUrl::new(get.uri()),
        length: request_body.len() as u64,
    };
    let fetched = storage.download(&download).await?;
    assert!(fetched == request_body, "the downloaded body differs");

    // Announced one byte longer than stored: refused, not padded.
    let wrong = BodyDownload {
        length: download.length + 1,
        ..download
    };
    let err = storage.download(&wrong).await.unwrap_err();
    assert!(
        matches!(err, agent::bodies::TransferError::WrongLength { .. }),
        "{err}"
    );

    // An answer body: uploaded through a presigned PUT, stored as sent.
    let answer = pattern(300_000, 2);
    let put = s3
        .put_object()
        .bucket(bucket)
        .key("res/b")
        .presigned(presigning)
        .await?;
    storage
        .upload(&SignedUrl::new(put.uri()), answer.clone())
        .await?;
    let stored = s3
        .get_object()
        .bucket(bucket)
        .key("res/b")
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    assert!(stored == answer, "the uploaded body differs");

    // A key nothing was stored under: S3's own refusal, reported by code.
    let missing = s3
        .get_object()
        .bucket(bucket)
        .key("req/none")
        .presigned(PresigningConfig::expires_in(SIGNED_URL_TTL)?)
        .await?;
    let err = storage
        .download(&BodyDownload {
            url: SignedUrl::new(missing.uri()),
            length: 1,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchKey"), "{err}");
    assert!(!err.to_string().contains("X-Amz-Signature"), "{err}");

    created.delete(&s3).await;
    Ok(())
}
