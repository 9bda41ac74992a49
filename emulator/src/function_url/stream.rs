//! A streamed response on its way to the client: the head as soon as the
//! function's prelude is complete, then each piece as the function writes it.
//!
//! With `Content-Type: application/vnd.awslambda.http-integration-response`
//! (what `lambda_runtime` sends for a `StreamResponse`) the body starts with
//! a JSON prelude `{statusCode, headers, cookies}` and 8 NUL bytes; without
//! it the whole body is the response, 200 with the POST's content type.

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response, header};
use serde_json::Value;

use super::UrlBody;
use crate::{
    lambda::stream::{ResponseStream, StreamPiece},
    payload_v2::{HeaderValues, response_head},
};

pub(crate) const HTTP_INTEGRATION_RESPONSE: &str =
    "application/vnd.awslambda.http-integration-response";
const DELIMITER: [u8; 8] = [0; 8];

/// The client's response; `None` when the stream ends or is cut before a
/// complete, valid prelude.
pub(crate) async fn respond(mut stream: ResponseStream) -> Option<Response<UrlBody>> {
    let content_type = stream.content_type.take();
    let has_prelude = content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case(HTTP_INTEGRATION_RESPONSE));
    if !has_prelude {
        let mut response = Response::new(UrlBody::streamed(Bytes::new(), stream.pieces));
        if let Some(value) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        return Some(response);
    }
    let mut seen = BytesMut::new();
    let (prelude, rest) = loop {
        match stream.pieces.recv().await? {
            StreamPiece::Data(data) => seen.extend_from_slice(&data),
            StreamPiece::End => return None,
        }
        // JSON text holds no NUL byte: the first 8 end the prelude.
        if let Some(at) = seen.windows(DELIMITER.len()).position(|w| w == DELIMITER) {
            let rest = seen.split_off(at + DELIMITER.len()).freeze();
            seen.truncate(at);
            break (seen.freeze(), rest);
        }
    };
    let prelude: Value = serde_json::from_slice(&prelude).ok()?;
    let (head, ()) = response_head(prelude.as_object()?, HeaderValues::SingleOrList)?.into_parts();
    Some(Response::from_parts(
        head,
        UrlBody::streamed(rest, stream.pieces),
    ))
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tokio::sync::mpsc;

    use super::*;

    async fn answer(
        content_type: Option<&str>,
        pieces: &[&[u8]],
        end: bool,
    ) -> Option<(Response<()>, Result<Bytes, String>)> {
        let (tx, rx) = mpsc::channel(pieces.len() + 1);
        for piece in pieces {
            tx.send(StreamPiece::Data(Bytes::copy_from_slice(piece)))
                .await
                .unwrap();
        }
        if end {
            tx.send(StreamPiece::End).await.unwrap();
        }
        drop(tx);
        let stream = ResponseStream {
            content_type: content_type.map(str::to_owned),
            pieces: rx,
        };
        let (head, body) = respond(stream).await?.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string());
        Some((Response::from_parts(head, ()), body))
    }

    #[tokio::test]
    async fn the_prelude_makes_the_head_even_split_across_pieces() {
        let (head, body) = answer(
            Some(HTTP_INTEGRATION_RESPONSE),
            &[
                br#"{"statusCode":201,"headers":{"content-type":"text/plain"},"#,
                b"\"cookies\":[\"a=1\"]}\0\0\0\0",
                b"\0\0\0\0hel",
                b"lo",
            ],
            true,
        )
        .await
        .unwrap();
        assert_eq!(head.status(), 201);
        assert_eq!(head.headers()["content-type"], "text/plain");
        assert_eq!(head.headers()["set-cookie"], "a=1");
        assert_eq!(body.unwrap(), "hello");
    }

    #[tokio::test]
    async fn without_a_prelude_the_body_is_the_response() {
        let (head, body) = answer(Some("text/csv"), &[b"a,b\n", b"1,2\n"], true)
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-type"], "text/csv");
        assert_eq!(body.unwrap(), "a,b\n1,2\n");
    }

    #[tokio::test]
    async fn a_cut_stream_ends_the_body_with_an_error() {
        let (_, body) = answer(
            Some(HTTP_INTEGRATION_RESPONSE),
            &[b"{}\0\0\0\0\0\0\0\0partial"],
            false,
        )
        .await
        .unwrap();
        assert!(body.is_err());
    }

    #[tokio::test]
    async fn no_valid_prelude_no_response() {
        for (pieces, end) in [
            (&[&b"{\"statusCode\":200}"[..]][..], true),
            (&[&b"{\"statusCode\":200}"[..]][..], false),
            (&[&b"not json\0\0\0\0\0\0\0\0body"[..]][..], true),
            (&[&b"{\"statusCode\":\"x\"}\0\0\0\0\0\0\0\0"[..]][..], true),
        ] {
            assert!(
                answer(Some(HTTP_INTEGRATION_RESPONSE), pieces, end)
                    .await
                    .is_none()
            );
        }
    }
}
