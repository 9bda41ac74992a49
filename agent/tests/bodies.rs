//! Bodies through the bodies bucket, end to end through the agent: the
//! server side sends `http_request`s with `body_download` / `response_upload`
//! pointing at a stand-in bucket (axum on an ephemeral port; the real S3
//! presigned URLs are exercised by `integration-tests/tests/presigned.rs`),
//! the local service answers, the test checks what each side saw.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use protocol::limits::INLINE_ANSWER_BODY_BYTES;
use protocol::{BodyDownload, ErrorCode, HttpRequest, SignedUrl};
use rstest::rstest;
use support::*;

/// Everything the stand-in bucket was sent, by key.
type Puts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

struct Bucket {
    base: String,
    puts: Puts,
}

/// Signature-looking query, to check nothing prints it.
const SIGNATURE: &str = "X-Amz-Signature=5ecret";

impl Bucket {
    /// `GET /req/N`: N patterned bytes; `PUT /res/{key}`: kept; `/denied/…`:
    /// S3's answer to an expired link.
    async fn start() -> Bucket {
        let puts: Puts = Arc::default();
        let app = Router::new()
            .route(
                "/req/{n}",
                get(|Path(n): Path<usize>| async move { pattern(n) }),
            )
            .route(
                "/res/{key}",
                axum::routing::put(
                    |State(puts): State<Puts>, Path(key): Path<String>, body: Bytes| async move {
                        puts.lock().unwrap().push((key, body.to_vec()));
                        StatusCode::OK
                    },
                ),
            )
            .route("/denied/{key}", get(denied).put(denied))
            .with_state(Arc::clone(&puts));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Bucket { base, puts }
    }

    fn url(&self, path: &str) -> SignedUrl {
        SignedUrl::new(format!("{}{path}?{SIGNATURE}", self.base))
    }

    fn puts(&self) -> Vec<(String, Vec<u8>)> {
        self.puts.lock().unwrap().clone()
    }
}

async fn denied() -> (StatusCode, &'static str) {
    (
        StatusCode::FORBIDDEN,
        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
    )
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn stored(mut req: HttpRequest, url: SignedUrl, length: u64) -> HttpRequest {
    req.body = String::new();
    req.body_download = Some(BodyDownload { url, length });
    req
}

/// A 1 MB request body comes from the bucket, reaches the local service
/// byte for byte, and its echo goes back up to the upload URL: only the
/// head crosses the WebSocket.
#[tokio::test]
async fn a_stored_request_body_and_a_large_answer_go_through_the_bucket() {
    let bucket = Bucket::start().await;
    let mut s = setup(|_| {}).await;
    let n = 1 << 20;
    let mut req = stored(
        request("big", "POST", "/echo"),
        bucket.url(&format!("/req/{n}")),
        n as u64,
    );
    req.response_upload = Some(bucket.url("/res/a1"));
    let r = expect_response(s.conn.roundtrip(req).await);
    assert_eq!(r.status_code, 200);
    assert_eq!(r.body, "");
    assert_eq!(r.body_uploaded.map(|u| u.length), Some(n as u64));
    let puts = bucket.puts();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].0, "a1");
    assert!(puts[0].1 == pattern(n), "the uploaded body differs");
}

/// Up to the threshold an answer stays in the message even with an upload
/// URL (one write beats a PUT + GET there); one byte more is uploaded.
#[tokio::test]
async fn answers_up_to_the_inline_threshold_stay_in_the_message() {
    let bucket = Bucket::start().await;
    let mut s = setup(|_| {}).await;
    let at = INLINE_ANSWER_BODY_BYTES;
    let mut req = request("at", "GET", &format!("/big/{at}"));
    req.response_upload = Some(bucket.url("/res/at"));
    let r = expect_response(s.conn.roundtrip(req).await);
    assert_eq!(protocol::decode_body(&r.body).unwrap().len(), at);
    assert_eq!(r.body_uploaded, None);
    assert!(bucket.puts().is_empty());

    let mut req = request("over", "GET", &format!("/big/{}", at + 1));
    req.response_upload = Some(bucket.url("/res/over"));
    let r = expect_response(s.conn.roundtrip(req).await);
    assert_eq!(r.body, "");
    assert_eq!(r.body_uploaded.map(|u| u.length), Some(at as u64 + 1));
    assert_eq!(bucket.puts()[0].1.len(), at + 1);
}

/// Without an upload URL (servers always offer one; connect refuses agents
/// that cannot use it), an answer up to one message goes inline and a
/// larger one is a short 502 (`payload_too_large`): no panic, no hang, and
/// the connection serves on.
#[rstest]
#[case::fits_one_message(90_000, true)]
#[case::just_over_one_message(98_300, false)]
#[case::half_a_megabyte(500_000, false)]
#[tokio::test]
async fn without_an_upload_url_an_answer_too_large_for_a_message_is_a_502(
    #[case] n: usize,
    #[case] inline: bool,
) {
    let mut s = setup(|_| {}).await;
    let answer = s
        .conn
        .roundtrip(request("big", "GET", &format!("/big/{n}")))
        .await;
    if inline {
        let r = expect_response(answer);
        assert_eq!(protocol::decode_body(&r.body).unwrap().len(), n);
        assert_eq!(r.body_uploaded, None);
    } else {
        let e = expect_error(answer);
        assert_eq!(e.request_id.as_deref(), Some("big"));
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        assert_eq!(e.code.http_status(), 502);
        assert_eq!(
            e.message,
            format!(
                "the local service's response ({n} bytes) is too large for one message, \
                 and the server offered no upload for it"
            )
        );
    }
    let r = expect_response(s.conn.roundtrip(request("ok", "GET", "/big/10")).await);
    assert_eq!(r.status_code, 200);
}

/// A link the bucket refuses: the visitor gets a 502 saying what failed,
/// the console the host and S3's code, nobody the signature. The local
/// service is never called with a missing body: `/gate` answers nobody
/// without a permit, so a call would have ended in a timeout instead.
#[tokio::test]
async fn a_refused_download_is_an_error_and_the_service_is_not_called() {
    let bucket = Bucket::start().await;
    let mut s = setup(|_| {}).await;
    let req = stored(
        request("gone", "POST", "/gate"),
        bucket.url("/denied/x"),
        10,
    );
    let e = expect_error(s.conn.roundtrip(req).await);
    assert_eq!(e.request_id.as_deref(), Some("gone"));
    assert_eq!(e.code, ErrorCode::InternalError);
    assert_eq!(
        e.message,
        "the tunnel agent could not fetch the request body"
    );
    let agent::Event::Request(log) =
        wait_event(&mut s.agent, |e| matches!(e, agent::Event::Request(_))).await
    else {
        unreachable!()
    };
    let agent::RequestOutcome::Failed { message, .. } = &log.outcome else {
        panic!("{log:?}")
    };
    assert!(
        message.contains("AccessDenied") && message.contains(&bucket.base),
        "{message}"
    );
    assert!(!message.contains("5ecret"), "{message}");
}

/// A body shorter or longer than announced is refused, not forwarded cut
/// or padded.
#[tokio::test]
async fn a_stored_body_of_another_length_is_refused() {
    let bucket = Bucket::start().await;
    let mut s = setup(|_| {}).await;
    for (id, served, announced) in [("short", 100, 101), ("long", 101, 100)] {
        let req = stored(
            request(id, "POST", "/echo"),
            bucket.url(&format!("/req/{served}")),
            announced,
        );
        let e = expect_error(s.conn.roundtrip(req).await);
        assert_eq!(e.code, ErrorCode::InternalError, "{id}");
        assert_eq!(
            e.message, "the tunnel agent could not fetch the request body",
            "{id}"
        );
    }
}

/// An upload the bucket refuses is a 502 for the visitor, never a response
/// announcing a body nobody stored.
#[tokio::test]
async fn a_refused_upload_is_an_error() {
    let bucket = Bucket::start().await;
    let mut s = setup(|_| {}).await;
    let mut req = request("up", "GET", "/big/100000");
    req.response_upload = Some(bucket.url("/denied/up"));
    let e = expect_error(s.conn.roundtrip(req).await);
    assert_eq!(e.code, ErrorCode::InternalError);
    assert_eq!(
        e.message,
        "the tunnel agent could not hand over the response body"
    );
}
