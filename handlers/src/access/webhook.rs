//! Webhook signature checks: HMAC-SHA256 of the raw body (and, for Stripe
//! and Slack, a timestamp bound into the signed text and checked against
//! [`WEBHOOK_TOLERANCE_SECS`] to stop replays). Compared in constant time
//! (`hmac`'s `verify_slice`).
//!
//! - GitHub: <https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>
//! - Stripe: <https://docs.stripe.com/webhooks#verify-manually>
//! - Slack: <https://api.slack.com/authentication/verifying-requests-from-slack>

use hmac::{KeyInit as _, Mac as _};
use http::HeaderMap;
use protocol::policy::{WEBHOOK_TOLERANCE_SECS, Webhook, WebhookProvider};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a signature was refused (the visitor's page says only "invalid").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

impl SignatureError {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureError::Missing => "webhook signature missing",
            SignatureError::Malformed => "webhook signature malformed",
            SignatureError::Stale => "webhook timestamp outside the tolerance",
            SignatureError::Mismatch => "webhook signature does not match",
        }
    }
}

/// Checks `body`'s signature in `headers` under `webhook` at `now` (epoch
/// seconds).
pub fn verify(
    webhook: &Webhook,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or(SignatureError::Missing)
    };
    let secret = webhook.secret.as_bytes();
    match webhook.provider {
        WebhookProvider::Github => {
            let hex = header("x-hub-signature-256")?
                .strip_prefix("sha256=")
                .ok_or(SignatureError::Malformed)?;
            check(secret, &[body], hex)
        }
        WebhookProvider::Hmac => {
            let name = webhook.header.as_deref().unwrap_or_default();
            let value = header(name)?;
            let hex = value.strip_prefix("sha256=").unwrap_or(value);
            check(secret, &[body], hex)
        }
        WebhookProvider::Slack => {
            let ts = header("x-slack-request-timestamp")?;
            fresh(ts, now)?;
            let hex = header("x-slack-signature")?
                .strip_prefix("v0=")
                .ok_or(SignatureError::Malformed)?;
            check(secret, &[b"v0:", ts.as_bytes(), b":", body], hex)
        }
        WebhookProvider::Stripe => {
            // `t=<ts>,v1=<sig>[,v1=<sig>…][,v0=…]`: any v1 may match (Stripe
            // sends several while a secret is being rolled).
            let value = header("stripe-signature")?;
            let mut ts = None;
            let mut signatures = Vec::new();
            for part in value.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", t)) => ts = Some(t),
                    Some(("v1", s)) => signatures.push(s),
                    _ => {}
                }
            }
            let ts = ts.ok_or(SignatureError::Malformed)?;
            if signatures.is_empty() {
                return Err(SignatureError::Malformed);
            }
            fresh(ts, now)?;
            let parts: [&[u8]; 3] = [ts.as_bytes(), b".", body];
            let mut last = SignatureError::Mismatch;
            for s in signatures {
                match check(secret, &parts, s) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

/// The timestamp (epoch seconds) is within the tolerance of `now`.
fn fresh(ts: &str, now: i64) -> Result<(), SignatureError> {
    let ts: i64 = ts.parse().map_err(|_| SignatureError::Malformed)?;
    if (now - ts).abs() > WEBHOOK_TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// HMAC-SHA256 over the concatenated `parts` equals the hex `expected`.
fn check(secret: &[u8], parts: &[&[u8]], expected: &str) -> Result<(), SignatureError> {
    let expected = from_hex(expected).ok_or(SignatureError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn webhook(provider: WebhookProvider, secret: &str) -> Webhook {
        Webhook {
            provider,
            secret: secret.into(),
            header: (provider == WebhookProvider::Hmac).then(|| "x-signature".into()),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    // GitHub's documented example: secret "It's a Secret to Everybody",
    // payload "Hello, World!", signature below.
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_documented_example_verifies() {
        let w = webhook(WebhookProvider::Github, GITHUB_SECRET);
        let h = headers(&[("x-hub-signature-256", GITHUB_SIGNATURE)]);
        assert_eq!(verify(&w, &h, b"Hello, World!", 0), Ok(()));
    }

    #[rstest]
    #[case::tampered_body(
        GITHUB_SECRET,
        GITHUB_SIGNATURE,
        b"Hello, World?",
        SignatureError::Mismatch
    )]
    #[case::wrong_secret("not it", GITHUB_SIGNATURE, b"Hello, World!", SignatureError::Mismatch)]
    #[case::no_prefix(GITHUB_SECRET, &GITHUB_SIGNATURE[7..], b"Hello, World!", SignatureError::Malformed)]
    #[case::not_hex(
        GITHUB_SECRET,
        "sha256=zz",
        b"Hello, World!",
        SignatureError::Malformed
    )]
    fn github_refusals(
        #[case] secret: &str,
        #[case] signature: &str,
        #[case] body: &[u8],
        #[case] expected: SignatureError,
    ) {
        let w = webhook(WebhookProvider::Github, secret);
        let h = headers(&[("x-hub-signature-256", signature)]);
        assert_eq!(verify(&w, &h, body, 0), Err(expected));
    }

    #[test]
    fn a_missing_signature_is_refused() {
        for provider in [
            WebhookProvider::Github,
            WebhookProvider::Stripe,
            WebhookProvider::Slack,
            WebhookProvider::Hmac,
        ] {
            let w = webhook(provider, "s");
            assert_eq!(
                verify(&w, &HeaderMap::new(), b"x", 0),
                Err(SignatureError::Missing),
                "{provider:?}"
            );
        }
    }

    // Slack's documented example (secret, timestamp, body, signature).
    // https://api.slack.com/authentication/verifying-requests-from-slack#a_recipe_for_security
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TS: i64 = 1531420618;
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn slack(ts: i64, now: i64, body: &str) -> Result<(), SignatureError> {
        let w = webhook(WebhookProvider::Slack, SLACK_SECRET);
        let h = headers(&[
            ("x-slack-request-timestamp", &ts.to_string()),
            ("x-slack-signature", SLACK_SIGNATURE),
        ]);
        verify(&w, &h, body.as_bytes(), now)
    }

    #[test]
    fn slack_documented_example_verifies_within_the_tolerance() {
        assert_eq!(slack(SLACK_TS, SLACK_TS, SLACK_BODY), Ok(()));
        assert_eq!(slack(SLACK_TS, SLACK_TS + 300, SLACK_BODY), Ok(()));
        assert_eq!(
            slack(SLACK_TS, SLACK_TS + 301, SLACK_BODY),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            slack(SLACK_TS + 1, SLACK_TS, SLACK_BODY),
            Err(SignatureError::Mismatch),
            "the timestamp is signed"
        );
        assert_eq!(
            slack(SLACK_TS, SLACK_TS, &SLACK_BODY.replace("foobar", "foobaz")),
            Err(SignatureError::Mismatch)
        );
    }

    // Stripe publishes the scheme (signed payload "<t>.<body>", HMAC-SHA256
    // with the endpoint secret, hex in `v1`) but no fixed example; this one
    // was made with Python's standard library:
    //   hmac.new(b"whsec_test_secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    // https://docs.stripe.com/webhooks#verify-manually
    const STRIPE_SECRET: &str = "whsec_test_secret";
    const STRIPE_BODY: &str = r#"{"id":"evt_test","object":"event"}"#;
    const STRIPE_V1: &str = "8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724";

    fn stripe(header: &str, now: i64, body: &str) -> Result<(), SignatureError> {
        let w = webhook(WebhookProvider::Stripe, STRIPE_SECRET);
        verify(
            &w,
            &headers(&[("stripe-signature", header)]),
            body.as_bytes(),
            now,
        )
    }

    #[test]
    fn stripe_signatures_verify_with_any_v1_within_the_tolerance() {
        let valid = format!("t=1700000000,v1={STRIPE_V1}");
        assert_eq!(stripe(&valid, 1_700_000_000, STRIPE_BODY), Ok(()));
        let rolled = format!("t=1700000000,v1={},v1={STRIPE_V1},v0=abc", "0".repeat(64));
        assert_eq!(stripe(&rolled, 1_700_000_100, STRIPE_BODY), Ok(()));
        assert_eq!(
            stripe(&valid, 1_700_000_301, STRIPE_BODY),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            stripe(&valid, 1_700_000_000, &STRIPE_BODY.replace("test", "tost")),
            Err(SignatureError::Mismatch)
        );
        let other_t = format!("t=1700000001,v1={STRIPE_V1}");
        assert_eq!(
            stripe(&other_t, 1_700_000_000, STRIPE_BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            stripe("v1=abc", 1_700_000_000, STRIPE_BODY),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn generic_hmac_reads_its_header_with_or_without_prefix() {
        // The GitHub example's digest, in a header of the agent's choice.
        let w = webhook(WebhookProvider::Hmac, GITHUB_SECRET);
        for value in [GITHUB_SIGNATURE, &GITHUB_SIGNATURE[7..]] {
            let h = headers(&[("x-signature", value)]);
            assert_eq!(verify(&w, &h, b"Hello, World!", 0), Ok(()));
        }
        let h = headers(&[("x-signature", GITHUB_SIGNATURE)]);
        assert_eq!(verify(&w, &h, b"Hello", 0), Err(SignatureError::Mismatch));
    }
}
