//! Subdomains and request ids.

use rand::Rng as _;
use rand::distr::Alphanumeric;

use crate::limits::{MAX_REQUEST_ID_LEN, MAX_SUBDOMAIN_LEN, SUBDOMAIN_LEN};

/// A fresh subdomain: [`SUBDOMAIN_LEN`] characters of `[a-z0-9]` from the
/// operating system's CSPRNG (`rand`'s thread RNG is a CSPRNG seeded from it).
pub fn generate_subdomain() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .map(|b| (b as char).to_ascii_lowercase())
        .take(SUBDOMAIN_LEN)
        .collect()
}

/// A fresh request id: a UUID v4.
pub fn generate_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh key for a body in the bodies bucket: 128 bits from the CSPRNG,
/// as 32 lowercase hex digits, unrelated to the request id (which is logged).
pub fn generate_object_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a peer's `request_id` can be echoed back: 1 to
/// [`MAX_REQUEST_ID_LEN`] bytes of printable ASCII. Ids are UUIDs; anything
/// else is a broken or hostile peer, and an answer carrying a longer id might
/// not fit in one message.
pub fn is_valid_request_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_REQUEST_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `s` can be a subdomain: one DNS label of `[a-z0-9-]`, not starting
/// or ending with `-`. Callers lowercase first; uppercase is rejected here.
pub fn is_valid_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SUBDOMAIN_LEN
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::collections::HashSet;

    #[test]
    fn generated_subdomains_are_valid_and_distinct() {
        let many: HashSet<String> = (0..1000).map(|_| generate_subdomain()).collect();
        assert_eq!(many.len(), 1000);
        for s in &many {
            assert_eq!(s.len(), SUBDOMAIN_LEN);
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            );
            assert!(is_valid_subdomain(s), "{s}");
        }
    }

    #[test]
    fn object_ids_are_128_bit_hex_and_distinct() {
        let many: HashSet<String> = (0..1000).map(|_| generate_object_id()).collect();
        assert_eq!(many.len(), 1000);
        for id in &many {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = generate_request_id();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(id, generate_request_id());
    }

    #[rstest]
    #[case("6f1c1c8e-0d4e-4b8a-9d6a-1f2e3d4c5b6a", true)]
    #[case("r1", true)]
    #[case(&"a".repeat(MAX_REQUEST_ID_LEN), true)]
    #[case(&"a".repeat(MAX_REQUEST_ID_LEN + 1), false)]
    #[case("", false)]
    #[case("a b", false)]
    #[case("a\nb", false)]
    #[case("é", false)]
    fn validates_request_ids(#[case] input: &str, #[case] valid: bool) {
        assert_eq!(is_valid_request_id(input), valid);
    }

    #[rstest]
    #[case("abc123", true)]
    #[case("my-app", true)]
    #[case("a", true)]
    #[case("", false)]
    #[case("-abc", false)]
    #[case("abc-", false)]
    #[case("ABC", false)]
    #[case("a.b", false)]
    #[case("a_b", false)]
    #[case("a b", false)]
    #[case(&"a".repeat(63), true)]
    #[case(&"a".repeat(64), false)]
    fn validates_subdomains(#[case] input: &str, #[case] valid: bool) {
        assert_eq!(is_valid_subdomain(input), valid);
    }
}
