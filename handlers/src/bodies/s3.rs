//! [`Bodies`] on S3 (`aws-sdk-s3`).
//!
//! Presigning is SigV4 computed from the function's credentials, no call
//! ("Sharing objects with presigned URLs", Amazon S3 User Guide): a URL can
//! do what its signer's role may do, on the one key and method signed, until
//! it expires (at most the credentials' own expiry). Forwarding's role may
//! only `PutObject`, `GetObject` and `DeleteObject` on the bucket's objects
//! (`crate::manifest::FORWARDING`).

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use protocol::SignedUrl;
use protocol::limits::SIGNED_URL_TTL;

use super::{Bodies, BodiesError};

/// The bodies bucket (`BODIES_BUCKET_NAME`).
#[derive(Debug, Clone)]
pub struct S3Bodies {
    client: Client,
    bucket: String,
}

impl S3Bodies {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

/// The S3 client for `sdk`. With an endpoint override (a local run:
/// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`), path-style addressing: a
/// local endpoint has no per-bucket host names. On AWS, virtual-hosted
/// style, S3's default.
pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    let local = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(local)
        .build();
    Client::from_conf(config)
}

fn presigning() -> Result<PresigningConfig, BodiesError> {
    PresigningConfig::expires_in(SIGNED_URL_TTL)
        .map_err(|e| BodiesError::backend("S3 presigning", e))
}

fn sdk_error<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> BodiesError
where
    aws_sdk_s3::Error: From<SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
{
    BodiesError::backend(operation, aws_sdk_s3::Error::from(err))
}

impl Bodies for S3Bodies {
    async fn presign_get(&self, key: &str) -> Result<SignedUrl, BodiesError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning()?)
            .await
            .map_err(|e| sdk_error("S3 presigning GetObject", e))?;
        Ok(SignedUrl::new(request.uri()))
    }

    async fn presign_put(&self, key: &str) -> Result<SignedUrl, BodiesError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning()?)
            .await
            .map_err(|e| sdk_error("S3 presigning PutObject", e))?;
        Ok(SignedUrl::new(request.uri()))
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), BodiesError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error("S3 PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str, length: u64) -> Result<Vec<u8>, BodiesError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("NoSuchKey") => {
                return Err(BodiesError::Missing);
            }
            Err(e) => return Err(sdk_error("S3 GetObject", e)),
        };
        // S3 always sends the object's size; checked before any byte is read.
        let size = out.content_length.and_then(|n| u64::try_from(n).ok());
        if let Some(actual) = size.filter(|&n| n != length) {
            return Err(BodiesError::WrongLength {
                announced: length,
                actual,
            });
        }
        let mut body = out.body;
        let mut bytes = Vec::with_capacity(length as usize);
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| BodiesError::backend("S3 GetObject (body)", e))?
        {
            if (bytes.len() + chunk.len()) as u64 > length {
                return Err(BodiesError::WrongLength {
                    announced: length,
                    actual: (bytes.len() + chunk.len()) as u64,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.len() as u64 != length {
            return Err(BodiesError::WrongLength {
                announced: length,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    async fn delete(&self, key: &str) -> Result<(), BodiesError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("S3 DeleteObject", e))?;
        Ok(())
    }
}
