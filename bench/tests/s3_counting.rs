//! The S3 counter on a real proxy in front of the backend's S3 (moto, or
//! LocalStack with Docker): SDK calls and a presigned GET, as forwarding and
//! the agents will make them, are counted by operation and key prefix and
//! priced.

use std::{sync::Arc, time::Duration};

use aws_sdk_s3::{presigning::PresigningConfig, primitives::ByteStream};
use itest::{Buckets, DynamoDb, Interposed, Tables, buckets};
use tunnel_bench::{
    cost::{CostPerMillion, Usage},
    counting::{CallCounter, S3Class, Upstream, s3_class},
};

#[tokio::test]
async fn s3_requests_through_the_proxy_are_counted_and_priced() -> anyhow::Result<()> {
    let backend = DynamoDb::shared().await?;
    // moto and LocalStack serve S3 on the DynamoDB endpoint.
    let direct = buckets::client_for(backend.endpoint());
    let prefix = Tables::unique_prefix();
    let buckets = Buckets::create(&direct, &prefix).await?;
    let bucket = buckets.bodies().to_string();

    let counter = Arc::new(CallCounter::new(Upstream::S3));
    let proxy = Interposed::start(backend.endpoint(), counter.clone()).await?;
    let s3 = buckets::client_for(&proxy.url());

    let body = vec![b'x'; 70_000];
    s3.put_object()
        .bucket(&bucket)
        .key("req/object-1")
        .body(ByteStream::from(body.clone()))
        .send()
        .await?;
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("req/object-1")
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    assert_eq!(got.len(), body.len());
    // A presigned GET, fetched by plain HTTP as an agent does.
    let presigned = s3
        .get_object()
        .bucket(&bucket)
        .key("req/object-1")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60))?)
        .await?;
    assert!(
        presigned.uri().starts_with(&proxy.url()),
        "{}",
        presigned.uri()
    );
    let fetched = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(presigned.uri())
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    assert_eq!(fetched.len(), body.len());
    s3.delete_object()
        .bucket(&bucket)
        .key("req/object-1")
        .send()
        .await?;

    let counts = counter.counts().for_prefix(&prefix);
    assert_eq!(counts.calls("PutObject", "req"), 1, "{counts:?}");
    assert_eq!(counts.calls("GetObject", "req"), 2, "{counts:?}");
    assert_eq!(counts.calls("DeleteObject", "req"), 1, "{counts:?}");
    assert!(counter.counts().for_prefix("another-stack").ops.is_empty());
    let by_class = |class: S3Class| -> f64 {
        counts
            .ops
            .iter()
            .filter(|(key, _)| s3_class(&key.operation) == class)
            .map(|(_, stats)| stats.calls)
            .sum::<u64>() as f64
    };
    let cost = CostPerMillion::of(&Usage {
        s3_puts: by_class(S3Class::Put),
        s3_gets: by_class(S3Class::Get),
        s3_deletes: by_class(S3Class::Free),
        ..Usage::default()
    });
    // One PUT ($5 per million) and two GETs ($0.40 per million each).
    assert!((cost.s3_requests - 5.8).abs() < 1e-9, "{cost:?}");

    buckets.delete(&direct).await;
    Ok(())
}
