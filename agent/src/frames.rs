//! Splitting a text message into WebSocket frames API Gateway accepts.
//!
//! tungstenite sends a message as one frame, and API Gateway closes the
//! connection on a frame above 32 KB, so longer messages go out as a
//! fragmented text message: a `Text` frame with `fin = false`, `Continue`
//! frames, the last with `fin = true`. The receiver reassembles them, so a
//! split inside a UTF-8 sequence is fine. Client frames are masked by
//! tungstenite whatever their origin (`Message::Frame` included).

use bytes::Bytes;
use protocol::limits::MAX_FRAME_BYTES;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Largest frame header a client writes (2 + 8 length + 4 mask): payloads are
/// kept below the limit by this much so the whole frame fits too.
const MAX_HEADER_BYTES: usize = 14;

/// Payload bytes per frame.
pub const FRAME_PAYLOAD_BYTES: usize = MAX_FRAME_BYTES - MAX_HEADER_BYTES;

/// The WebSocket messages to send for one protocol message.
pub fn text_frames(json: String) -> Vec<WsMessage> {
    if json.len() <= FRAME_PAYLOAD_BYTES {
        return vec![WsMessage::text(json)];
    }
    let bytes = Bytes::from(json);
    let count = bytes.len().div_ceil(FRAME_PAYLOAD_BYTES);
    (0..count)
        .map(|i| {
            let start = i * FRAME_PAYLOAD_BYTES;
            let end = (start + FRAME_PAYLOAD_BYTES).min(bytes.len());
            let opcode = if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            WsMessage::Frame(Frame::message(
                bytes.slice(start..end),
                opcode,
                i + 1 == count,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_messages_are_one_text_frame() {
        let frames = text_frames("x".repeat(FRAME_PAYLOAD_BYTES));
        assert_eq!(frames.len(), 1);
        assert!(matches!(&frames[0], WsMessage::Text(t) if t.len() == FRAME_PAYLOAD_BYTES));
    }

    #[test]
    fn large_messages_are_fragmented_and_reassemble() {
        // Multi-byte characters so splits land inside UTF-8 sequences.
        let json = "é€".repeat(20_000);
        let frames = text_frames(json.clone());
        assert_eq!(frames.len(), json.len().div_ceil(FRAME_PAYLOAD_BYTES));
        let mut joined = Vec::new();
        for (i, m) in frames.iter().enumerate() {
            let WsMessage::Frame(f) = m else {
                panic!("frame {i} is not a raw frame")
            };
            let h = f.header();
            assert!(f.payload().len() <= FRAME_PAYLOAD_BYTES);
            assert_eq!(h.is_final, i + 1 == frames.len());
            let expected = if i == 0 { Data::Text } else { Data::Continue };
            assert_eq!(h.opcode, OpCode::Data(expected));
            joined.extend_from_slice(f.payload());
        }
        assert_eq!(String::from_utf8(joined).unwrap(), json);
    }
}
