//! The ids AWS hands out, in AWS's formats.

use base64::Engine as _;

use crate::timestamps::now_epoch_ms;

/// An API Gateway id: 11 random bytes as URL-safe base64 with padding, e.g.
/// `L0SM9cOFvHcCIhw=` (connection ids, request ids, message ids).
pub(crate) fn new_api_gateway_id() -> String {
    let bytes: [u8; 11] = rand::random();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// A Lambda request id (a UUID v4).
pub(crate) fn new_lambda_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A Function URL id: 32 lowercase letters and digits, the first label of
/// `<url-id>.lambda-url.<region>.on.aws` (e.g. `2cxn22odiwguak4feg4jtt7cwm0ziblr`).
pub(crate) fn new_function_url_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..32)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// An X-Ray trace header value.
pub(crate) fn new_trace_id() -> String {
    let secs = now_epoch_ms() / 1000;
    let random: [u8; 12] = rand::random();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("Root=1-{secs:08x}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_16_url_safe_base64_chars_with_padding() {
        for _ in 0..100 {
            let id = new_api_gateway_id();
            assert_eq!(id.len(), 16);
            assert!(id.ends_with('='));
            assert!(
                id[..15]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
    }

    #[test]
    fn function_url_ids_are_32_lowercase_alphanumerics() {
        for _ in 0..100 {
            let id = new_function_url_id();
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            );
        }
        assert_ne!(new_function_url_id(), new_function_url_id());
    }

    #[test]
    fn trace_ids_have_the_xray_shape() {
        let id = new_trace_id();
        assert!(id.starts_with("Root=1-"));
        assert_eq!(id.len(), "Root=1-".len() + 8 + 1 + 24);
    }
}
