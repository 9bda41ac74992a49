//! Streamed responses, written by hand over TCP: chunk by chunk, with real
//! trailers, as AWS documents them for custom runtimes.

use base64::Engine as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use super::*;
use crate::{
    lambda::{runtime_api::streaming::PIECES_IN_FLIGHT, stream::StreamPiece},
    limits::LAMBDA_STREAM_MAX,
};

/// A function posting a streamed response by hand.
struct RawPost(TcpStream);

impl RawPost {
    async fn start(f: &Fixture, request_id: &str) -> Self {
        let mut stream = TcpStream::connect(f.addr).await.unwrap();
        let head = format!(
            "POST {BASE}/invocation/{request_id}/response HTTP/1.1\r\nHost: {}\r\n\
             Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\
             Content-Type: application/vnd.awslambda.http-integration-response\r\n\
             Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n",
            f.addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        Self(stream)
    }

    /// Writes one chunk; `false` once the emulator closed the connection.
    async fn chunk(&mut self, data: &[u8]) -> bool {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.0.write_all(&out).await.is_ok()
    }

    async fn end(&mut self, trailers: &str) {
        let end = format!("0\r\n{trailers}\r\n");
        self.0.write_all(end.as_bytes()).await.unwrap();
    }

    /// The status line of the emulator's answer.
    async fn status(&mut self) -> u16 {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            if self.0.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&head);
        line.split(' ').nth(1).unwrap_or("0").parse().unwrap()
    }
}

type Streamed = (ResponseStream, oneshot::Receiver<StreamOutcome>);

/// Enqueues an invocation, takes it with `/next` and begins its stream.
async fn begin(f: &Fixture, request_id: &str, on_leave: ClientDisconnect) -> (RawPost, Streamed) {
    let (_started, reply) = enqueue_with(f, request_id, Duration::from_secs(60), on_leave).await;
    f.client
        .get(format!("{}/invocation/next", f.base))
        .send()
        .await
        .unwrap();
    let post = RawPost::start(f, request_id).await;
    match reply.await.unwrap() {
        Ok(Reply::Streamed { stream, outcome }) => (post, (stream, outcome)),
        other => panic!("{other:?}"),
    }
}

async fn next_data(stream: &mut ResponseStream) -> Bytes {
    match stream.pieces.recv().await {
        Some(StreamPiece::Data(data)) => data,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pieces_are_relayed_as_written() {
    let f = fixture().await;
    let (mut post, (mut stream, outcome)) = begin(&f, "s1", ClientDisconnect::Continue).await;
    assert_eq!(
        stream.content_type.as_deref(),
        Some("application/vnd.awslambda.http-integration-response")
    );
    // Each piece arrives before the next is written: nothing waits for the end.
    for piece in ["one", "two", "three"] {
        assert!(post.chunk(piece.as_bytes()).await);
        assert_eq!(next_data(&mut stream).await, piece.as_bytes());
    }
    post.end("").await;
    assert!(matches!(stream.pieces.recv().await, Some(StreamPiece::End)));
    assert!(matches!(outcome.await, Ok(StreamOutcome::Complete)));
    assert_eq!(post.status().await, 202);
}

#[tokio::test]
async fn error_trailers_cut_the_stream_and_carry_the_error() {
    let f = fixture().await;
    let (mut post, (mut stream, outcome)) = begin(&f, "s2", ClientDisconnect::Continue).await;
    post.chunk(b"partial").await;
    assert_eq!(next_data(&mut stream).await, "partial");
    let body = base64::engine::general_purpose::STANDARD
        .encode(r#"{"errorType":"Boom","errorMessage":"it broke"}"#);
    post.end(&format!(
        "Lambda-Runtime-Function-Error-Type: Fixture.Boom\r\nLambda-Runtime-Function-Error-Body: {body}\r\n"
    ))
    .await;
    assert!(stream.pieces.recv().await.is_none(), "cut, not ended");
    match outcome.await {
        Ok(StreamOutcome::Failed {
            error_type,
            message,
        }) => assert_eq!(
            (error_type.as_str(), message.as_str()),
            ("Fixture.Boom", "it broke")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(post.status().await, 202);
}

/// More than the relay holds for a reader: only a relay that keeps reading
/// lets the function finish.
const MORE_THAN_BUFFERED: usize = 4 * PIECES_IN_FLIGHT;

#[tokio::test]
async fn a_departed_reader_leaves_the_function_streaming() {
    let f = fixture().await;
    let (mut post, (stream, outcome)) = begin(&f, "s3", ClientDisconnect::Continue).await;
    drop(stream);
    let piece = vec![b'x'; 64 * 1024];
    for _ in 0..MORE_THAN_BUFFERED {
        assert!(post.chunk(&piece).await, "the function's writes go on");
    }
    post.end("").await;
    assert!(matches!(outcome.await, Ok(StreamOutcome::Complete)));
    assert_eq!(post.status().await, 202);
}

#[tokio::test]
async fn close_stream_closes_the_functions_connection_when_the_reader_leaves() {
    let f = fixture().await;
    let (mut post, (stream, mut outcome)) = begin(&f, "s4", ClientDisconnect::CloseStream).await;
    assert!(post.chunk(b"first").await);
    drop(stream);
    // Answered without waiting for the function's body to end.
    assert_eq!(post.status().await, 410);
    // Until the runtime has taken that answer, its writes are read and
    // discarded, and the invocation is not over.
    let piece = vec![b'x'; 64 * 1024];
    for _ in 0..MORE_THAN_BUFFERED {
        assert!(post.chunk(&piece).await);
    }
    assert!(outcome.try_recv().is_err());
    // Then (its next `/next`) the connection closes: its writes fail.
    let next = tokio::spawn(f.client.get(format!("{}/invocation/next", f.base)).send());
    assert!(matches!(outcome.await, Ok(StreamOutcome::ClosedForClient)));
    let mut failed = false;
    for _ in 0..MORE_THAN_BUFFERED {
        if !post.chunk(&piece).await {
            failed = true;
            break;
        }
    }
    assert!(
        failed,
        "the function's writes fail once the connection is closed"
    );
    next.abort();
}

#[tokio::test]
async fn a_stream_is_cut_at_the_limit() {
    let f = fixture().await;
    let (mut post, (mut stream, outcome)) = begin(&f, "s5", ClientDisconnect::Continue).await;
    let reader = tokio::spawn(async move {
        let mut total = 0;
        while let Some(piece) = stream.pieces.recv().await {
            match piece {
                StreamPiece::Data(data) => total += data.len(),
                StreamPiece::End => panic!("a cut stream does not end"),
            }
        }
        total
    });
    let mib = vec![b'x'; 1024 * 1024];
    let mut written = 0;
    while written <= LAMBDA_STREAM_MAX && post.chunk(&mib).await {
        written += mib.len();
    }
    assert_eq!(
        reader.await.unwrap(),
        LAMBDA_STREAM_MAX,
        "up to the limit, not a byte more"
    );
    assert!(matches!(outcome.await, Ok(StreamOutcome::TooLarge)));
    assert_eq!(post.status().await, 413);
    let mut failed = false;
    for _ in 0..MORE_THAN_BUFFERED {
        if !post.chunk(&mib).await {
            failed = true;
            break;
        }
    }
    assert!(
        failed,
        "the connection is closed: the function's writes fail"
    );
}
