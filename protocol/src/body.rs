//! Bodies are bytes: standard base64 with padding on the wire.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Encodes a body for a message.
pub fn encode_body(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes a body from a message.
pub fn decode_body(encoded: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(encoded)
}

/// Length of `n` bytes once base64-encoded.
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte_value() {
        let bytes: Vec<u8> = (0..=255).collect();
        let encoded = encode_body(&bytes);
        assert_eq!(encoded.len(), encoded_len(bytes.len()));
        assert_eq!(decode_body(&encoded).unwrap(), bytes);
    }

    #[test]
    fn empty_body_is_empty_string() {
        assert_eq!(encode_body(b""), "");
        assert_eq!(decode_body("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn rejects_invalid_base64() {
        assert!(decode_body("not base64!").is_err());
    }
}
