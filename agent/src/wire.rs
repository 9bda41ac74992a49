//! The agent's answers as protocol messages: an [`Answer`] encoded into one
//! `http_response` or `error` message, and the check, made before a body is
//! encoded, that it fits one ([`MAX_MESSAGE_BYTES`]).

use protocol::body::encoded_len;
use protocol::limits::MAX_MESSAGE_BYTES;
use protocol::{
    BodyUploaded, ErrorCode, ErrorMessage, HttpResponse, Message, ProtocolError, encode_body,
};

use crate::exchange::{Answer, AnswerBody};
use crate::text::clip;

/// Longest `message` in an `error` the agent sends: a sentence, never a
/// dump (the visitor sees it).
pub(crate) const MAX_ERROR_MESSAGE_CHARS: usize = 512;

/// The message that carries `answer`. Fails only for an answer that
/// [`fits`] refuses, or for a request id too long to fit a message, which
/// the session never passes (it drops requests whose id is not
/// [`protocol::is_valid_request_id`]).
pub(crate) fn answer_json(answer: Answer) -> Result<String, ProtocolError> {
    match answer {
        Answer::Response { head, body } => Message::HttpResponse(response(head, body)).to_json(),
        Answer::Failed {
            request_id,
            code,
            message,
        } => error_json(Some(&request_id), code, &message),
    }
}

/// An `error` message, its text clipped to [`MAX_ERROR_MESSAGE_CHARS`]. Fails
/// only for a request id too long to fit a message.
pub(crate) fn error_json(
    request_id: Option<&str>,
    code: ErrorCode,
    message: &str,
) -> Result<String, ProtocolError> {
    Message::Error(ErrorMessage {
        request_id: request_id.map(str::to_owned),
        code,
        message: clip(message, MAX_ERROR_MESSAGE_CHARS),
    })
    .to_json()
}

/// Whether the response `head` with `body` fits one message: the error
/// [`answer_json`] would give, without encoding the body. Exact: the head is
/// serialized with an empty `body`, and base64 has no character JSON
/// escapes, so an inline body adds exactly its encoded length.
pub(crate) fn fits(head: &HttpResponse, body: &AnswerBody) -> Result<(), ProtocolError> {
    let (without_bytes, inline) = match body {
        AnswerBody::Inline(bytes) => (AnswerBody::Inline(Vec::new()), bytes.len()),
        AnswerBody::Uploaded { length } => (AnswerBody::Uploaded { length: *length }, 0),
    };
    let message = Message::HttpResponse(response(head.clone(), without_bytes));
    let size = serde_json::to_string(&message)
        .map_err(ProtocolError::Malformed)?
        .len()
        + encoded_len(inline);
    if size > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge { size });
    }
    Ok(())
}

/// `head` with `body`: inline as base64, or the note that it was uploaded.
fn response(mut head: HttpResponse, body: AnswerBody) -> HttpResponse {
    match body {
        AnswerBody::Inline(bytes) => head.body = encode_body(&bytes),
        AnswerBody::Uploaded { length } => head.body_uploaded = Some(BodyUploaded { length }),
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(header_bytes: usize) -> HttpResponse {
        serde_json::from_value(serde_json::json!({
            "request_id": "r1",
            "status_code": 200,
            "headers": {"x-fill": ["f".repeat(header_bytes)]},
            "processing_time_ms": 7,
        }))
        .unwrap()
    }

    /// `fits` says what encoding would: the same verdict and the same size,
    /// on both sides of the limit, inline and uploaded.
    #[test]
    fn fits_agrees_with_the_encoding_at_the_limit() {
        let empty = Message::HttpResponse(head(0)).to_json().unwrap().len();
        let room = MAX_MESSAGE_BYTES - empty;
        for (header_bytes, body_bytes) in [
            (0, room / 4 * 3),
            (0, room / 4 * 3 + 1),
            (room - 4, 3),
            (room - 3, 3),
            (room, 0),
            (room + 1, 0),
        ] {
            for body in [
                AnswerBody::Inline(vec![0xA5; body_bytes]),
                AnswerBody::Uploaded {
                    length: body_bytes as u64,
                },
            ] {
                let case = format!("{header_bytes} header bytes, {body:?}");
                let checked = fits(&head(header_bytes), &body);
                let answer = Answer::Response {
                    head: head(header_bytes),
                    body,
                };
                match (checked, answer_json(answer)) {
                    (Ok(()), Ok(json)) => assert!(json.len() <= MAX_MESSAGE_BYTES, "{case}"),
                    (
                        Err(ProtocolError::TooLarge { size }),
                        Err(ProtocolError::TooLarge { size: encoded }),
                    ) => assert_eq!(size, encoded, "{case}"),
                    (checked, encoded) => panic!("{case}: {checked:?} but {encoded:?}"),
                }
            }
        }
    }

    #[test]
    fn an_uploaded_body_leaves_the_message_empty_but_for_its_length() {
        let answer = Answer::Response {
            head: head(0),
            body: AnswerBody::Uploaded { length: 9000 },
        };
        let json: serde_json::Value = serde_json::from_str(&answer_json(answer).unwrap()).unwrap();
        assert_eq!(json["body"], "");
        assert_eq!(json["body_uploaded"]["length"], 9000);
    }

    #[test]
    fn a_failure_is_an_error_message_with_its_text_clipped() {
        let answer = Answer::Failed {
            request_id: "r1".into(),
            code: ErrorCode::Timeout,
            message: "x".repeat(2000),
        };
        let json: serde_json::Value = serde_json::from_str(&answer_json(answer).unwrap()).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["request_id"], "r1");
        assert_eq!(json["code"], "timeout");
        assert_eq!(
            json["message"].as_str().unwrap().chars().count(),
            MAX_ERROR_MESSAGE_CHARS + 1
        );
    }
}
