//! Properties of the agent's parsers of untrusted or user input: the
//! endpoint and target on the command line, durations, the path a visitor
//! asks for under a base path, and request bodies arriving in chunks. Never a
//! panic, a clear error, round-trips where they apply.
//!
//! Bounded: a fixed number of cases per property and small inputs.

use std::time::Duration;

use agent::chunks::{Assembler, MAX_PARTIAL_REQUESTS};
use agent::config::{UriError, parse_duration, redact_url};
use agent::{Endpoint, Target};
use proptest::collection::vec;
use proptest::prelude::*;
use protocol::chunk::{BodyChunk, ChunkedBody, split};
use protocol::limits::BODY_CHUNK_BYTES;
use protocol::{ErrorCode, HttpRequest};
use tokio::time::Instant;

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

// ------------------------------------------------------------- assembler

fn head(id: &str, len: usize) -> HttpRequest {
    let mut r: HttpRequest = serde_json::from_value(serde_json::json!({
        "request_id": id, "method": "POST", "uri": "/"
    }))
    .unwrap();
    r.body_chunks = Some(ChunkedBody::for_length(len).unwrap());
    r
}

fn body(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i + seed) * 17 % 256) as u8).collect()
}

/// One step a server may take on one connection.
#[derive(Debug, Clone)]
enum Step {
    /// The head of request `r{n}`.
    Head(usize),
    /// Chunk `i` of request `r{n}`.
    Chunk(usize, usize),
    /// A chunk nobody announced, or that lies.
    Garbage {
        id: String,
        index: u32,
        data: String,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..12usize).prop_map(Step::Head),
        (0..12usize, 0..3usize).prop_map(|(n, i)| Step::Chunk(n, i)),
        (
            prop_oneof![Just("r0".to_owned()), "[a-z0-9]{1,6}"],
            prop_oneof![0..4u32, any::<u32>()],
            prop_oneof![
                ".{0,8}",
                (0..8usize).prop_map(|n| protocol::encode_body(&vec![1; n]))
            ],
        )
            .prop_map(|(id, index, data)| Step::Garbage { id, index, data }),
    ]
}

fn len_of(n: usize) -> usize {
    // Every third request spans two chunks; the rest fit in one.
    if n.is_multiple_of(3) {
        BODY_CHUNK_BYTES + n
    } else {
        10 + n
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Many requests, heads and chunks interleaved with garbage: never more
    /// than the cap collected at once, every refusal an error for its own
    /// request, every completed request exactly its body.
    #[test]
    fn the_assembler_stays_bounded_and_exact(steps in vec(step(), 0..60)) {
        let mut a = Assembler::new();
        let now = Instant::now();
        let chunks: Vec<Vec<BodyChunk>> =
            (0..12).map(|n| split(&format!("r{n}"), &body(len_of(n), n))).collect();
        // Ids that received a garbage chunk: the first copy of an index
        // wins, so their body may complete with the garbage in it.
        let mut tainted = std::collections::HashSet::new();
        for step in steps {
            let (id, done) = match step {
                Step::Head(n) => (format!("r{n}"), a.head(head(&format!("r{n}"), len_of(n)), now)),
                Step::Chunk(n, i) => {
                    let Some(chunk) = chunks[n].get(i) else { continue };
                    (format!("r{n}"), a.chunk(chunk, now))
                }
                Step::Garbage { id, index, data } => {
                    tainted.insert(id.clone());
                    let chunk = BodyChunk { request_id: id.clone(), index, data };
                    (id, a.chunk(&chunk, now))
                }
            };
            prop_assert!(a.len() <= MAX_PARTIAL_REQUESTS);
            match done {
                Ok(Some(request)) => {
                    prop_assert_eq!(&request.request_id, &id);
                    let n: usize = id[1..].parse().unwrap();
                    let got = protocol::decode_body(&request.body).unwrap();
                    prop_assert_eq!(got.len(), len_of(n));
                    if !tainted.contains(&id) {
                        prop_assert_eq!(got, body(len_of(n), n));
                    }
                    prop_assert_eq!(request.body_chunks, None);
                }
                Ok(None) => {}
                Err(failed) => {
                    prop_assert_eq!(&failed.request_id, &id);
                    prop_assert!(matches!(failed.code, ErrorCode::InvalidRequest | ErrorCode::Overloaded));
                    prop_assert!(!failed.message.is_empty());
                }
            }
        }
        // Whatever is left times out, each with an error of its own.
        let left = a.len();
        let expired = a.expire(now + agent::chunks::ASSEMBLY_IDLE_TIMEOUT);
        prop_assert_eq!(expired.len(), left);
        prop_assert!(a.is_empty());
    }
}
