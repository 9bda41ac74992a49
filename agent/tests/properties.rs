//! Properties of the agent's parsers of untrusted or user input: the
//! endpoint and target on the command line, durations, the path a visitor
//! asks for under a base path. Never a panic, a clear error, round-trips
//! where they apply.
//!
//! Bounded: a fixed number of cases per property and small inputs.

use std::time::Duration;

use agent::config::{UriError, parse_duration, redact_url};
use agent::{Endpoint, Target};
use proptest::collection::vec;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        max_shrink_time: 20_000,
        ..ProptestConfig::default()
    }
}

/// A secret as it might sit in an endpoint: distinctive, so finding it in a
/// text means it leaked.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.~-]{6,24}".prop_map(|s| format!("SeCrEt{s}"))
}

/// Endpoint-like text: schemes right and wrong, hosts, stages, queries that
/// carry a secret, userinfo with a password.
fn endpoint_text(secret: String) -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["wss://", "ws://", "https://", "ftp://", "", "wss:"]),
        prop::option::of("[a-z]{1,6}"),
        prop::sample::select(vec![
            "abc.example.com",
            "127.0.0.1:9000",
            "[::1]:1",
            "",
            "a b",
        ]),
        "(/[a-z0-9%]{0,6}){0,3}",
        prop::sample::select(vec!["token", "access_token", "x", ""]),
        "(&[a-z]{1,4}=[a-z0-9]{0,4}){0,2}",
        any::<bool>(),
    )
        .prop_map(move |(scheme, user, host, path, name, more, fragment)| {
            let userinfo = user.map_or(String::new(), |u| format!("{u}:{secret}@"));
            let fragment = if fragment {
                format!("#{secret}")
            } else {
                String::new()
            };
            format!("{scheme}{userinfo}{host}{path}?{name}={secret}{more}{fragment}")
        })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_endpoint_text_parses_or_is_a_clear_error(text in ".{0,80}") {
        match text.parse::<Endpoint>() {
            Ok(endpoint) => prop_assert_eq!(endpoint.as_str().parse::<Endpoint>(), Ok(endpoint.clone())),
            Err(e) => prop_assert!(e.to_string().starts_with("endpoint "), "{e}"),
        }
    }

    /// However the endpoint carries a secret, and whether it is accepted or
    /// refused, no text made from it shows the secret.
    #[test]
    fn an_endpoint_secret_is_never_shown(
        (secret, text) in secret().prop_flat_map(|s| (Just(s.clone()), endpoint_text(s)))
    ) {
        let shown = match text.parse::<Endpoint>() {
            Ok(endpoint) => {
                prop_assert!(endpoint.as_str().contains(&secret), "kept whole for connecting");
                let mut config = agent::Config::new(endpoint.as_str(), "3000").unwrap();
                config.endpoint = endpoint.clone();
                format!("{endpoint} {endpoint:?} {config:?}")
            }
            Err(e) => format!("{e} {e:?}"),
        };
        prop_assert!(!shown.contains(&secret), "{shown}");
    }

    #[test]
    fn redaction_is_total_and_idempotent(text in ".{0,80}") {
        let once = redact_url(&text);
        prop_assert_eq!(redact_url(&once), once);
    }

    #[test]
    fn any_target_text_parses_and_round_trips_or_is_a_clear_error(
        text in prop_oneof![
            ".{0,40}",
            "[0-9]{1,6}",
            "(https?://)?[a-z0-9.]{0,10}(:[0-9]{0,6})?(/[a-zA-Z0-9 %.]{0,6}){0,3}/?([?#][a-z=]{0,4})?",
            "\\[[0-9a-f:]{0,10}\\](:[0-9]{1,5})?",
        ]
    ) {
        match text.parse::<Target>() {
            Ok(target) => {
                // The base parses back to the same target: what the console
                // prints is what the agent uses.
                prop_assert_eq!(target.base().parse::<Target>(), Ok(target.clone()));
                prop_assert!(target.base().starts_with("http"));
                prop_assert!(!target.base().ends_with('/'));
            }
            Err(e) => prop_assert!(e.to_string().starts_with("local target "), "{e}"),
        }
    }

    #[test]
    fn any_duration_text_parses_or_is_a_clear_error(text in prop_oneof![".{0,20}", "[0-9.]{0,6}(ms|s|m|h|min|x)?([0-9]{0,3}(s|ms))?"]) {
        match parse_duration(&text) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().contains("is not valid"), "{e}"),
        }
    }

    #[test]
    fn composed_durations_parse_to_their_sum(m in 0u64..1000, s in 0u64..60, ms in 0u64..1000) {
        let text = format!("{m}m{s}s{ms}ms");
        prop_assert_eq!(
            parse_duration(&text),
            Ok(Duration::from_millis(m * 60_000 + s * 1000 + ms))
        );
    }

    /// Under a base path, no request path built from dot segments in any
    /// spelling and any separator ends up outside it.
    #[test]
    fn no_request_path_leaves_the_base_path(
        segments in vec(prop::sample::select(vec![
            "..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%2e", "a", "app", "", "...", "..a",
        ]), 0..8),
        separators in vec(prop::sample::select(vec!["/", "\\", "%2f", "%5c", "%2F"]), 8),
        query in prop::option::of("[a-z=./%]{0,8}"),
    ) {
        let mut uri = String::from("/");
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                uri.push_str(separators[i % separators.len()]);
            }
            uri.push_str(segment);
        }
        if let Some(query) = query {
            uri.push('?');
            uri.push_str(&query);
        }
        let target: Target = "http://127.0.0.1:3000/app".parse().unwrap();
        match target.url_for(&uri) {
            Ok(url) => {
                let path = url.path();
                prop_assert!(path == "/app" || path.starts_with("/app/"), "{uri} -> {path}");
            }
            Err(e) => prop_assert!(
                matches!(e, UriError::EscapesBasePath | UriError::Invalid),
                "{uri}: {e}"
            ),
        }
    }
}
