//! The path of a visitor's request, put back into a URI.
//!
//! The HTTP API hands the forwarding function a DECODED path (`rawPath`
//! notwithstanding its name; aws-semantics.md, "HTTP API payload format
//! 2.0"): a visitor's `/a/space%20value` arrives as `/a/space value`, `%23`
//! as `#`, `%3F` (decoded twice) as `?`, `%2525` as `%`. Replayed as is, that
//! is not a URI: the agent would cut the path at the `#` or `?`, or fail on
//! the space. [`encode`] percent-encodes exactly what cannot stand in a URI
//! path and leaves the rest alone, so `/a/space value` goes to the local
//! service as `/a/space%20value`. What the decoding lost cannot come back: a
//! visitor's `%2F` reaches the service as `/`, and `%41` as `A`.

use std::fmt::Write as _;

/// Whether a byte goes out percent-encoded: controls, space, `%`, `#`, `?`
/// (they would end or break the path), non-ASCII (as its UTF-8 bytes), and
/// the rest of WHATWG's path percent-encode set (`"`, `<`, `>`, `` ` ``, `{`,
/// `}`), which browsers never send raw and `http::Uri` refuses in part.
fn must_encode(byte: u8) -> bool {
    matches!(
        byte,
        0x00..=0x20 | 0x7F..=0xFF | b'%' | b'#' | b'?' | b'"' | b'<' | b'>' | b'`' | b'{' | b'}'
    )
}

/// A decoded path as a valid URI path (see the module doc). A path that does
/// not start with `/` gets one: a request target always does.
pub fn encode(decoded: &str) -> String {
    let mut out = String::with_capacity(decoded.len() + 1);
    if !decoded.starts_with('/') {
        out.push('/');
    }
    for &byte in decoded.as_bytes() {
        if must_encode(byte) {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        } else {
            out.push(char::from(byte));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;

    /// What the HTTP API gives forwarding (the right column of the table in
    /// aws-semantics.md) → what the local service receives.
    #[rstest]
    #[case::plain("/a/plain", "/a/plain")]
    #[case::space("/a/space value", "/a/space%20value")]
    #[case::question_cut("/a/question", "/a/question")]
    #[case::hash("/a/hash#value", "/a/hash%23value")]
    #[case::slash_lost("/a/slash/value", "/a/slash/value")]
    #[case::unicode("/a/unicode-λ", "/a/unicode-%CE%BB")]
    #[case::double_decoded_question("/a/literal?value", "/a/literal%3Fvalue")]
    #[case::double_decoded_percent("/a/literal%value", "/a/literal%25value")]
    #[case::controls("/a\t\n\u{7f}", "/a%09%0A%7F")]
    #[case::browser_set("/\"<>`{}", "/%22%3C%3E%60%7B%7D")]
    #[case::kept("/a-b_c.d~e!$&'()*+,;=:@[]|^\\", "/a-b_c.d~e!$&'()*+,;=:@[]|^\\")]
    #[case::empty("", "/")]
    #[case::relative("x", "/x")]
    fn encodes_what_cannot_stand_in_a_path(#[case] decoded: &str, #[case] sent: &str) {
        assert_eq!(encode(decoded), sent);
    }

    fn percent_decode(encoded: &str) -> Vec<u8> {
        let bytes = encoded.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Any decoded path becomes a URI path that `http::Uri` (what the
        /// agent's HTTP stack uses) accepts whole, with no query or
        /// fragment, and that decodes back to the input.
        #[test]
        fn any_path_becomes_a_valid_uri_path_that_decodes_back(decoded in prop_oneof![any::<String>(), "/[ -~]*"]) {
            let encoded = encode(&decoded);
            let uri: http::Uri = encoded.parse().expect("a valid URI");
            prop_assert_eq!(uri.path(), encoded.as_str());
            prop_assert!(uri.query().is_none());
            let expected = if decoded.starts_with('/') { decoded.clone() } else { format!("/{decoded}") };
            prop_assert_eq!(percent_decode(&encoded), expected.into_bytes());
        }
    }
}
