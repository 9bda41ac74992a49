//! Bodies too large for a WebSocket message, through the tunnel's bodies
//! bucket (`docs/contracts.md`, "The data path"): a request body the agent
//! downloads from a presigned GET, an answer's body it uploads to a
//! presigned PUT.
//!
//! Memory is bounded: a download never holds more than the announced
//! length, itself at most `MAX_BODY_BYTES` (checked before anything is
//! fetched), and stops as soon as the server sends more. Nothing here ever
//! prints a URL (its query is the signature): errors name the bucket's host
//! and S3's error code only.

use std::time::Duration;

use protocol::limits::MAX_BODY_BYTES;
use protocol::{BodyDownload, SignedUrl};

/// Longest S3 error document read for its `<Code>`.
const MAX_ERROR_BODY_BYTES: usize = 4096;

/// Why a transfer failed. `Display` is for the agent's console; the visitor
/// gets [`TransferError::visitor_message`].
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(
        "the request body is announced as {length} bytes, over the tunnel's limit of {MAX_BODY_BYTES}"
    )]
    AnnouncedTooLarge { length: u64 },
    #[error("the tunnel's storage at {origin} answered the {operation} with HTTP {status}{}", code.as_deref().map(|c| format!(" ({c}{})", hint(c))).unwrap_or_default())]
    Refused {
        operation: &'static str,
        origin: String,
        status: u16,
        /// S3's error code (`AccessDenied`, `NoSuchKey`…), when it sent one.
        code: Option<String>,
    },
    #[error("the request body from the tunnel's storage is {got} bytes, {expected} were announced")]
    WrongLength { got: u64, expected: u64 },
    #[error("could not {operation} the body at the tunnel's storage ({origin}): {source}")]
    Transport {
        operation: &'static str,
        origin: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the {operation} of the body at the tunnel's storage did not finish within {seconds} s"
    )]
    TimedOut {
        operation: &'static str,
        seconds: u64,
    },
}

/// What an S3 error code most likely means for a presigned URL.
fn hint(code: &str) -> &'static str {
    match code {
        "AccessDenied" => {
            ": the link is refused; it may have expired (links live 60 s), or the agent's request was altered on the way"
        }
        "NoSuchKey" => ": nothing is stored under this link any more",
        "SignatureDoesNotMatch" => ": the link was altered on the way",
        _ => "",
    }
}

impl TransferError {
    /// A short reason for the visitor: no host, no code.
    pub fn visitor_message(&self) -> &'static str {
        match self {
            TransferError::AnnouncedTooLarge { .. } => {
                "the request body is over the tunnel's limit"
            }
            TransferError::Refused {
                operation: "upload",
                ..
            }
            | TransferError::Transport {
                operation: "upload",
                ..
            }
            | TransferError::TimedOut {
                operation: "upload",
                ..
            } => "the tunnel agent could not hand over the response body",
            _ => "the tunnel agent could not fetch the request body",
        }
    }
}

/// Transfers bodies to and from the bucket through one pooled client.
#[derive(Debug, Clone)]
pub struct Storage {
    client: reqwest::Client,
    timeout: Duration,
}

impl Storage {
    /// A client that follows no redirect (a presigned URL is answered
    /// directly) and gives each transfer `timeout`.
    pub fn new(timeout: Duration) -> Result<Storage, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout)
            .build()?;
        Ok(Storage { client, timeout })
    }

    /// The request body: exactly `download.length` bytes, or an error.
    pub async fn download(&self, download: &BodyDownload) -> Result<Vec<u8>, TransferError> {
        let expected = download.length;
        if expected > MAX_BODY_BYTES as u64 {
            return Err(TransferError::AnnouncedTooLarge { length: expected });
        }
        let url = &download.url;
        let fetch = async {
            let mut response = self
                .client
                .get(url.expose())
                .send()
                .await
                .map_err(|e| transport("download", url, e))?;
            if !response.status().is_success() {
                return Err(refused("download", url, response).await);
            }
            // Bounded by `expected`, never by what the server claims.
            let mut body = Vec::with_capacity(expected as usize);
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| transport("download", url, e))?
            {
                let got = body.len() as u64 + chunk.len() as u64;
                if got > expected {
                    return Err(TransferError::WrongLength { got, expected });
                }
                body.extend_from_slice(&chunk);
            }
            if body.len() as u64 != expected {
                return Err(TransferError::WrongLength {
                    got: body.len() as u64,
                    expected,
                });
            }
            Ok(body)
        };
        self.within("download", fetch).await
    }

    /// PUTs `body` to `url`.
    pub async fn upload(&self, url: &SignedUrl, body: Vec<u8>) -> Result<(), TransferError> {
        let put = async {
            let response = self
                .client
                .put(url.expose())
                .body(body)
                .send()
                .await
                .map_err(|e| transport("upload", url, e))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(refused("upload", url, response).await)
            }
        };
        self.within("upload", put).await
    }

    async fn within<T>(
        &self,
        operation: &'static str,
        transfer: impl Future<Output = Result<T, TransferError>>,
    ) -> Result<T, TransferError> {
        tokio::time::timeout(self.timeout, transfer)
            .await
            .unwrap_or(Err(TransferError::TimedOut {
                operation,
                seconds: self.timeout.as_secs(),
            }))
    }
}

fn transport(operation: &'static str, url: &SignedUrl, e: reqwest::Error) -> TransferError {
    TransferError::Transport {
        operation,
        origin: url.origin().to_string(),
        source: e.without_url(),
    }
}

/// A refusal, with S3's error code from the start of its XML document.
async fn refused(
    operation: &'static str,
    url: &SignedUrl,
    mut response: reqwest::Response,
) -> TransferError {
    let status = response.status().as_u16();
    let mut text = Vec::new();
    while text.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            _ => break,
        }
    }
    TransferError::Refused {
        operation,
        origin: url.origin().to_string(),
        status,
        code: error_code(&String::from_utf8_lossy(&text)),
    }
}

/// `<Code>X</Code>` of an S3 error document, if it is a plain word.
fn error_code(xml: &str) -> Option<String> {
    let start = xml.find("<Code>")? + "<Code>".len();
    let len = xml[start..].find("</Code>")?;
    let code = &xml[start..start + len];
    (!code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;

    use super::*;

    /// What the fake bucket saw of the last upload: its body and headers.
    type Seen = Arc<Mutex<Option<(Vec<u8>, HeaderMap)>>>;

    /// A stand-in for S3 on 127.0.0.1:0: `/ok/N` answers N bytes, `/long`
    /// more than anyone asks for, `/denied` S3's expired-link error; PUT
    /// `/ok/…` keeps the body.
    async fn bucket() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/ok/{n}",
                get(
                    |axum::extract::Path(n): axum::extract::Path<usize>| async move {
                        (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>()
                    },
                )
                .put(
                    |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                        *seen.lock().unwrap() = Some((body.to_vec(), headers));
                        StatusCode::OK
                    },
                ),
            )
            .route(
                "/long",
                get(|| async { axum::body::Body::from(vec![7u8; 8 << 20]) }),
            )
            .route("/denied", get(denied).put(denied))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    async fn denied() -> (StatusCode, &'static str) {
        (
            StatusCode::FORBIDDEN,
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        )
    }

    fn storage() -> Storage {
        Storage::new(Duration::from_secs(10)).unwrap()
    }

    fn link(base: &str, path: &str, length: u64) -> BodyDownload {
        BodyDownload {
            url: SignedUrl::new(format!("{base}{path}?X-Amz-Signature=secret")),
            length,
        }
    }

    #[tokio::test]
    async fn downloads_exactly_the_announced_bytes() {
        let (base, _) = bucket().await;
        let body = storage()
            .download(&link(&base, "/ok/300000", 300_000))
            .await;
        let body = body.unwrap();
        assert_eq!(body.len(), 300_000);
        assert!(body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        assert!(
            storage()
                .download(&link(&base, "/ok/0", 0))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_body_of_another_length_is_refused_without_reading_it_all() {
        let (base, _) = bucket().await;
        let short = storage().download(&link(&base, "/ok/10", 11)).await;
        assert!(
            matches!(
                short,
                Err(TransferError::WrongLength {
                    got: 10,
                    expected: 11
                })
            ),
            "{short:?}"
        );
        // 8 MB offered, 100 bytes announced: stopped at the first chunk past 100.
        let long = storage().download(&link(&base, "/long", 100)).await;
        match long {
            Err(TransferError::WrongLength { got, expected: 100 }) => {
                assert!(got < 1 << 20, "read {got} bytes before stopping")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_announced_length_over_the_ceiling_is_refused_before_fetching() {
        // Nothing listens there: only the announcement is checked.
        let too_large = link("http://127.0.0.1:9", "/x", MAX_BODY_BYTES as u64 + 1);
        let got = storage().download(&too_large).await;
        assert!(
            matches!(got, Err(TransferError::AnnouncedTooLarge { .. })),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_refusal_names_the_host_and_s3_code_never_the_url() {
        let (base, _) = bucket().await;
        let err = storage()
            .download(&link(&base, "/denied", 5))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("HTTP 403") && text.contains("AccessDenied") && text.contains(&base),
            "{text}"
        );
        assert!(text.contains("expired"), "{text}");
        assert!(
            !text.contains("secret") && !text.contains("/denied"),
            "{text}"
        );
        assert_eq!(
            err.visitor_message(),
            "the tunnel agent could not fetch the request body"
        );

        let url = SignedUrl::new(format!("{base}/denied?X-Amz-Signature=secret"));
        let err = storage().upload(&url, vec![1, 2, 3]).await.unwrap_err();
        assert!(
            err.to_string().contains("upload") && !err.to_string().contains("secret"),
            "{err}"
        );
        assert_eq!(
            err.visitor_message(),
            "the tunnel agent could not hand over the response body"
        );

        // Nothing listening: a transport error, still without the URL.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = storage()
            .download(&link(&format!("http://{closed}"), "/x", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TransferError::Transport { .. }) && !err.to_string().contains("secret"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn uploads_the_body_with_its_length() {
        let (base, seen) = bucket().await;
        let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let url = SignedUrl::new(format!("{base}/ok/1?X-Amz-Signature=s"));
        storage().upload(&url, body.clone()).await.unwrap();
        let (got, headers) = seen.lock().unwrap().take().unwrap();
        assert!(got == body, "uploaded bytes differ");
        assert_eq!(headers["content-length"], "200000");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_transfer_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let storage = Storage::new(Duration::from_secs(5)).unwrap();
        let err = storage
            .download(&link(&format!("http://{addr}"), "/x", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransferError::TimedOut {
                    operation: "download",
                    seconds: 5
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn reads_only_plain_error_codes() {
        assert_eq!(
            error_code("<Error><Code>NoSuchKey</Code></Error>").as_deref(),
            Some("NoSuchKey")
        );
        assert_eq!(error_code("<Code>a b</Code>"), None);
        assert_eq!(error_code("<Code></Code>"), None);
        assert_eq!(error_code("nothing"), None);
    }
}
