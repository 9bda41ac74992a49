//! Who may reach a tunnel: the access policy an agent declares for its
//! tunnel, checked by the forwarding function before a request costs a
//! write or a WebSocket message.
//!
//! The agent sends it in the handshake header [`HEADER_POLICY`]
//! (base64url of the JSON); `$connect` validates it ([`AccessPolicy::from_header`])
//! and stores it on the subdomain's claim item, where forwarding reads it
//! with the lookup it already does. Every field is optional: an agent that
//! sends no header (an old one) gets no policy, an open tunnel.
//!
//! Secrets: basic-auth passwords and the URL token never leave the agent;
//! the policy carries salted SHA-256 hashes ([`credential_hash`],
//! [`url_token_hash`]). A webhook secret is needed for the HMAC, so it is
//! sent as is and lives on the claim item only while the connection does
//! (releasing the claim removes the policy). Its `Debug` output is redacted.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Handshake header carrying the agent's [`AccessPolicy`].
pub const HEADER_POLICY: &str = "x-tunnel-policy";

/// Longest [`HEADER_POLICY`] value accepted: API Gateway bounds a request's
/// headers to 10 KB in all, and the agent's token and resume token ride in
/// the same handshake.
pub const MAX_POLICY_HEADER_BYTES: usize = 6 * 1024;
/// Most basic-auth credentials in one policy.
pub const MAX_CREDENTIALS: usize = 16;
/// Most CIDR blocks in one policy.
pub const MAX_CIDRS: usize = 64;
/// Longest webhook secret (Stripe's and Slack's are well under 100 bytes).
pub const MAX_WEBHOOK_SECRET_BYTES: usize = 256;
/// The URL token's query parameter (and the prefix of its cookie's name).
pub const URL_TOKEN_PARAM: &str = "tunnel_token";
/// How far a Stripe or Slack signature's timestamp may be from the
/// server's clock, in seconds (both providers recommend five minutes).
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// What a tunnel lets through. All present checks must pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    /// Visitors must present one of these (HTTP Basic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basic_auth: Vec<CredentialHash>,
    /// Visitors' source IP must be in one of these blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_cidrs: Vec<Cidr>,
    /// Visitors must present the token whose [`url_token_hash`] this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_token_hash: Option<String>,
    /// Requests must carry a valid webhook signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// One basic-auth credential as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialHash {
    /// base64url of 16 random bytes.
    pub salt: String,
    /// base64url SHA-256 of salt ‖ `user:password` ([`credential_hash`]).
    pub hash: String,
}

/// Which webhook signature scheme to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookProvider {
    /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`.
    Github,
    /// `Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256("<ts>.<body>")>`.
    Stripe,
    /// `X-Slack-Signature: v0=<hex HMAC-SHA256("v0:<ts>:<body>")>` with
    /// `X-Slack-Request-Timestamp: <ts>`.
    Slack,
    /// A header of the agent's choice carrying hex HMAC-SHA256(body)
    /// (optionally prefixed `sha256=`).
    Hmac,
}

impl WebhookProvider {
    pub const NAMES: &'static str = "github, stripe, slack, hmac";
}

impl FromStr for WebhookProvider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "github" => Ok(Self::Github),
            "stripe" => Ok(Self::Stripe),
            "slack" => Ok(Self::Slack),
            "hmac" => Ok(Self::Hmac),
            _ => Err(format!(
                "unknown webhook provider {s:?} (one of {})",
                Self::NAMES
            )),
        }
    }
}

/// A webhook check: the provider's scheme and the shared secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub provider: WebhookProvider,
    /// The signing secret. Never log it.
    pub secret: String,
    /// For [`WebhookProvider::Hmac`]: the header carrying the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

// By hand: the secret must never reach a log.
impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("provider", &self.provider)
            .field("secret", &"***")
            .field("header", &self.header)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "the access policy is {0} bytes encoded, over the {MAX_POLICY_HEADER_BYTES}-byte limit"
    )]
    TooLarge(usize),
    #[error("the access policy is not base64url-encoded JSON of a policy")]
    Malformed,
    #[error("the access policy is invalid: {0}")]
    Invalid(String),
}

impl AccessPolicy {
    /// No check at all: stored as no policy.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Checks bounds and well-formedness (what `$connect` enforces).
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |s: String| Err(PolicyError::Invalid(s));
        if self.basic_auth.len() > MAX_CREDENTIALS {
            return invalid(format!(
                "more than {MAX_CREDENTIALS} basic-auth credentials"
            ));
        }
        if self.allow_cidrs.len() > MAX_CIDRS {
            return invalid(format!("more than {MAX_CIDRS} CIDR blocks"));
        }
        let digest = |s: &str| URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32);
        if self
            .basic_auth
            .iter()
            .any(|c| !digest(&c.hash) || c.salt.is_empty() || c.salt.len() > 64)
        {
            return invalid("a basic-auth credential hash is malformed".into());
        }
        if self.url_token_hash.as_deref().is_some_and(|h| !digest(h)) {
            return invalid("the URL token hash is malformed".into());
        }
        if let Some(w) = &self.webhook {
            if w.secret.is_empty() || w.secret.len() > MAX_WEBHOOK_SECRET_BYTES {
                return invalid(format!(
                    "the webhook secret must be 1 to {MAX_WEBHOOK_SECRET_BYTES} bytes"
                ));
            }
            match (w.provider, w.header.as_deref()) {
                (WebhookProvider::Hmac, Some(h)) if http_token(h) => {}
                (WebhookProvider::Hmac, _) => {
                    return invalid("the hmac webhook check needs a valid header name".into());
                }
                (_, None) => {}
                (_, Some(_)) => {
                    return invalid("only the hmac webhook check takes a header name".into());
                }
            }
        }
        Ok(())
    }

    /// The [`HEADER_POLICY`] value: base64url of the JSON.
    pub fn to_header(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a policy serializes"))
    }

    /// Parses and validates a [`HEADER_POLICY`] value.
    pub fn from_header(value: &str) -> Result<Self, PolicyError> {
        let value = value.trim();
        if value.len() > MAX_POLICY_HEADER_BYTES {
            return Err(PolicyError::TooLarge(value.len()));
        }
        let json = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| PolicyError::Malformed)?;
        let policy: Self = serde_json::from_slice(&json).map_err(|_| PolicyError::Malformed)?;
        policy.validate()?;
        Ok(policy)
    }
}

/// A header name: RFC 9110 token characters, bounded.
fn http_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// base64url SHA-256 of `salt` ‖ `user:password`. Fast by design (checked
/// on every request): long random passwords are what make it safe.
pub fn credential_hash(salt: &str, user: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(user.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// A credential with a fresh random salt (the agent's side).
pub fn hash_credential(user: &str, password: &str) -> CredentialHash {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = URL_SAFE_NO_PAD.encode(salt);
    let hash = credential_hash(&salt, user, password);
    CredentialHash { salt, hash }
}

/// A fresh URL token: 128 random bits, base64url (22 characters).
pub fn generate_url_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the server keeps of the URL token: base64url SHA-256 (the token
/// is random, so a plain hash cannot be reversed).
pub fn url_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// An IPv4 or IPv6 block, `addr/prefix` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `width` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, prefix: u8, width: u32) -> bool {
    let shift = width - u32::from(prefix);
    shift >= width || (a >> shift) == (b >> shift)
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a CIDR block (like 203.0.113.0/24 or 2001:db8::/32)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(bad)?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Server → agent: a visitor's request was refused by the policy (it never
/// reached the agent). No body, no credentials: what the agent's user needs
/// to see that someone tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub method: String,
    /// The path the visitor asked for (without the query: it may carry a token).
    pub path: String,
    /// Which check refused it, in a few words.
    pub reason: String,
    /// The source IP API Gateway reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// The status the visitor got.
    pub status: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn full() -> AccessPolicy {
        AccessPolicy {
            basic_auth: vec![hash_credential("ann", "correct horse battery staple")],
            allow_cidrs: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            url_token_hash: Some(url_token_hash(&generate_url_token())),
            webhook: Some(Webhook {
                provider: WebhookProvider::Hmac,
                secret: "s3cret".into(),
                header: Some("X-Signature".into()),
            }),
        }
    }

    #[test]
    fn header_round_trips() {
        let p = full();
        assert_eq!(AccessPolicy::from_header(&p.to_header()).unwrap(), p);
    }

    #[test]
    fn an_empty_policy_is_an_empty_object() {
        assert_eq!(
            serde_json::to_string(&AccessPolicy::default()).unwrap(),
            "{}"
        );
        assert!(
            AccessPolicy::from_header(&AccessPolicy::default().to_header())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let value = URL_SAFE_NO_PAD.encode(br#"{"allow_cidrs":["1.2.3.4"],"later":1}"#);
        let p = AccessPolicy::from_header(&value).unwrap();
        assert_eq!(p.allow_cidrs, vec!["1.2.3.4/32".parse().unwrap()]);
    }

    #[rstest]
    #[case::not_base64("%%%")]
    #[case::not_json("bm90IGpzb24")]
    #[case::bad_cidr(&URL_SAFE_NO_PAD.encode(br#"{"allow_cidrs":["10.0.0.0/33"]}"#))]
    fn malformed_headers_are_refused(#[case] value: &str) {
        assert_eq!(
            AccessPolicy::from_header(value),
            Err(PolicyError::Malformed)
        );
    }

    #[test]
    fn oversized_and_invalid_policies_are_refused() {
        let big = "A".repeat(MAX_POLICY_HEADER_BYTES + 1);
        assert!(matches!(
            AccessPolicy::from_header(&big),
            Err(PolicyError::TooLarge(_))
        ));

        let mut p = full();
        p.webhook.as_mut().unwrap().header = None;
        assert!(matches!(p.validate(), Err(PolicyError::Invalid(_))));
        let mut p = full();
        p.webhook.as_mut().unwrap().secret = String::new();
        assert!(matches!(p.validate(), Err(PolicyError::Invalid(_))));
        let mut p = full();
        p.basic_auth[0].hash = "short".into();
        assert!(matches!(p.validate(), Err(PolicyError::Invalid(_))));
        let mut p = full();
        p.basic_auth = vec![p.basic_auth[0].clone(); MAX_CREDENTIALS + 1];
        assert!(matches!(p.validate(), Err(PolicyError::Invalid(_))));
    }

    #[test]
    fn the_webhook_secret_is_not_in_debug_output() {
        assert!(!format!("{:?}", full()).contains("s3cret"));
    }

    #[test]
    fn credential_hashes_are_salted() {
        let a = hash_credential("ann", "pw");
        let b = hash_credential("ann", "pw");
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.hash, credential_hash(&a.salt, "ann", "pw"));
        assert_ne!(a.hash, credential_hash(&a.salt, "ann", "pW"));
    }

    #[rstest]
    #[case("10.0.0.0/8", "10.255.1.2", true)]
    #[case("10.0.0.0/8", "11.0.0.1", false)]
    #[case("203.0.113.7", "203.0.113.7", true)]
    #[case("203.0.113.7", "203.0.113.8", false)]
    #[case("0.0.0.0/0", "198.51.100.1", true)]
    #[case("127.0.0.1/32", "::ffff:127.0.0.1", true)]
    #[case("2001:db8::/32", "2001:db8:ffff::1", true)]
    #[case("2001:db8::/32", "2001:db9::1", false)]
    #[case("::/0", "::1", true)]
    #[case("::/0", "10.0.0.1", false)]
    #[case("10.0.0.0/8", "::1", false)]
    #[case("10.1.2.3/31", "10.1.2.2", true)]
    fn cidr_membership(#[case] cidr: &str, #[case] ip: &str, #[case] inside: bool) {
        let cidr: Cidr = cidr.parse().unwrap();
        assert_eq!(cidr.contains(ip.parse().unwrap()), inside);
    }

    #[rstest]
    #[case("10.0.0.0/33")]
    #[case("::/129")]
    #[case("10.0.0/8")]
    #[case("example.com/8")]
    #[case("10.0.0.0/")]
    fn bad_cidrs_are_refused(#[case] s: &str) {
        assert!(s.parse::<Cidr>().is_err());
    }

    #[test]
    fn url_tokens_are_128_random_bits() {
        let t = generate_url_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 16);
        assert_ne!(t, generate_url_token());
    }
}
