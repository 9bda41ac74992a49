use protocol::policy::{Webhook, WebhookProvider, hash_credential, url_token_hash};
use rstest::rstest;

use super::*;

const SUB: &str = "abc123def456";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
        .collect()
}

fn visitor<'a>(
    headers: &'a HeaderMap,
    cookies: &'a [String],
    query: &'a str,
    ip: &'a str,
) -> Visitor<'a> {
    Visitor {
        headers,
        cookies,
        raw_query: query,
        source_ip: Some(ip),
        body: b"",
        subdomain: SUB,
        now: 0,
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn request(uri: &str, headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        request_id: "r".into(),
        method: "GET".into(),
        uri: uri.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect(),
        body: String::new(),
        timestamp: 0,
        body_download: None,
        response_upload: None,
    }
}

#[test]
fn an_empty_policy_admits_anything_and_strips_nothing() {
    let h = headers(&[("authorization", "Bearer x")]);
    let admitted = admit(&AccessPolicy::default(), &visitor(&h, &[], "", "1.2.3.4")).unwrap();
    let mut req = request("/a?tunnel_token=x", &[("authorization", "Bearer x")]);
    admitted.apply(&mut req);
    assert_eq!(req.uri, "/a?tunnel_token=x");
    assert!(req.headers.contains_key("authorization"));
}

#[rstest]
#[case::right("ann", "correct horse", true)]
#[case::second_credential("bob", "hunter2hunter2", true)]
#[case::wrong_password("ann", "correct hors", false)]
#[case::wrong_user("bob", "correct horse", false)]
fn basic_auth(#[case] user: &str, #[case] password: &str, #[case] ok: bool) {
    let policy = AccessPolicy {
        basic_auth: vec![
            hash_credential("ann", "correct horse"),
            hash_credential("bob", "hunter2hunter2"),
        ],
        ..AccessPolicy::default()
    };
    let auth = basic(user, password);
    let h = headers(&[("authorization", &auth)]);
    match admit(&policy, &visitor(&h, &[], "", "1.2.3.4")) {
        Ok(admitted) => {
            assert!(ok);
            let mut req = request("/", &[("authorization", &auth), ("accept", "*/*")]);
            admitted.apply(&mut req);
            assert!(!req.headers.contains_key("authorization"), "consumed");
            assert!(req.headers.contains_key("accept"));
        }
        Err(denied) => {
            assert!(!ok);
            assert_eq!(denied, Denied::Credentials);
            assert_eq!(denied.status(), 401);
            assert_eq!(denied.headers().unwrap().0, "www-authenticate");
        }
    }
}

#[rstest]
#[case::none(None)]
#[case::bearer(Some("Bearer abc"))]
#[case::not_base64(Some("Basic %%%"))]
#[case::no_colon(Some("Basic YW5u"))]
fn missing_or_malformed_basic_auth_is_401(#[case] value: Option<&str>) {
    let policy = AccessPolicy {
        basic_auth: vec![hash_credential("ann", "pw")],
        ..AccessPolicy::default()
    };
    let h = match value {
        Some(v) => headers(&[("authorization", v)]),
        None => HeaderMap::new(),
    };
    assert_eq!(
        admit(&policy, &visitor(&h, &[], "", "1.2.3.4")).err(),
        Some(Denied::Credentials)
    );
}

#[rstest]
#[case::inside_v4("10.1.2.3", true)]
#[case::outside_v4("11.1.2.3", false)]
#[case::inside_v6("2001:db8::7", true)]
#[case::outside_v6("2001:db9::7", false)]
#[case::unparsable("not-an-ip", false)]
fn allow_cidr(#[case] ip: &str, #[case] ok: bool) {
    let policy = AccessPolicy {
        allow_cidrs: vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        ..AccessPolicy::default()
    };
    let h = HeaderMap::new();
    let result = admit(&policy, &visitor(&h, &[], "", ip));
    assert_eq!(result.is_ok(), ok);
    if !ok {
        assert_eq!(result.err().unwrap().status(), 403);
    }
}

#[test]
fn no_source_ip_is_refused_when_addresses_are_restricted() {
    let policy = AccessPolicy {
        allow_cidrs: vec!["0.0.0.0/0".parse().unwrap()],
        ..AccessPolicy::default()
    };
    let h = HeaderMap::new();
    let mut v = visitor(&h, &[], "", "");
    v.source_ip = None;
    assert_eq!(admit(&policy, &v).err(), Some(Denied::SourceNotAllowed));
}

fn token_policy() -> (AccessPolicy, String) {
    let token = protocol::policy::generate_url_token();
    let policy = AccessPolicy {
        url_token_hash: Some(url_token_hash(&token)),
        ..AccessPolicy::default()
    };
    (policy, token)
}

#[test]
fn a_url_token_in_the_query_passes_sets_a_cookie_and_is_stripped() {
    let (policy, token) = token_policy();
    let h = HeaderMap::new();
    let query = format!("a=1&tunnel_token={token}&b=2");
    let admitted = admit(&policy, &visitor(&h, &[], &query, "1.2.3.4")).unwrap();
    let mut req = request(&format!("/page?{query}"), &[]);
    admitted.apply(&mut req);
    assert_eq!(req.uri, "/page?a=1&b=2");
    assert_eq!(
        admitted.into_set_cookie(),
        Some(format!(
            "tunnel_token_{SUB}={token}; Path=/; Secure; HttpOnly; SameSite=Lax"
        ))
    );

    let mut only = request(&format!("/page?tunnel_token={token}"), &[]);
    admit(
        &policy,
        &visitor(&h, &[], &format!("tunnel_token={token}"), "1.2.3.4"),
    )
    .unwrap()
    .apply(&mut only);
    assert_eq!(only.uri, "/page");
}

#[test]
fn a_url_token_cookie_passes_and_is_stripped() {
    let (policy, token) = token_policy();
    let h = HeaderMap::new();
    let cookies = vec![
        "theme=dark".to_string(),
        format!("tunnel_token_{SUB}={token}"),
    ];
    let admitted = admit(&policy, &visitor(&h, &cookies, "", "1.2.3.4")).unwrap();
    let mut req = request(
        "/app.js",
        &[("cookie", &format!("theme=dark; tunnel_token_{SUB}={token}"))],
    );
    admitted.apply(&mut req);
    assert_eq!(req.headers["cookie"], vec!["theme=dark"]);
    assert_eq!(
        admitted.into_set_cookie(),
        None,
        "no new cookie for a cookie visit"
    );

    // From a Cookie header too (payload format 1.0 style), and alone.
    let h = headers(&[("cookie", &format!("tunnel_token_{SUB}={token}"))]);
    let admitted = admit(&policy, &visitor(&h, &[], "", "1.2.3.4")).unwrap();
    let mut req = request("/", &[("cookie", &format!("tunnel_token_{SUB}={token}"))]);
    admitted.apply(&mut req);
    assert!(!req.headers.contains_key("cookie"));
}

#[rstest]
#[case::missing("", vec![])]
#[case::wrong_query("tunnel_token=AAAAAAAAAAAAAAAAAAAAAA", vec![])]
#[case::another_tunnels_cookie("", vec!["tunnel_token_other=x".to_string()])]
fn a_missing_or_wrong_url_token_is_403(#[case] query: &str, #[case] cookies: Vec<String>) {
    let (policy, _) = token_policy();
    let h = HeaderMap::new();
    let denied = admit(&policy, &visitor(&h, &cookies, query, "1.2.3.4")).unwrap_err();
    assert_eq!((denied.clone(), denied.status()), (Denied::NoUrlToken, 403));
}

#[test]
fn a_webhook_signature_is_checked_on_the_body() {
    // GitHub's documented example (see `webhook`).
    let policy = AccessPolicy {
        webhook: Some(Webhook {
            provider: WebhookProvider::Github,
            secret: "It's a Secret to Everybody".into(),
            header: None,
        }),
        ..AccessPolicy::default()
    };
    let h = headers(&[(
        "x-hub-signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    let mut v = visitor(&h, &[], "", "1.2.3.4");
    v.body = b"Hello, World!";
    assert!(admit(&policy, &v).is_ok());
    v.body = b"Hello, World!!";
    let denied = admit(&policy, &v).unwrap_err();
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.to_string(), "webhook signature does not match");
}

#[test]
fn the_source_address_is_checked_first() {
    let policy = AccessPolicy {
        allow_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        basic_auth: vec![hash_credential("ann", "pw")],
        ..AccessPolicy::default()
    };
    let h = HeaderMap::new();
    assert_eq!(
        admit(&policy, &visitor(&h, &[], "", "8.8.8.8")).err(),
        Some(Denied::SourceNotAllowed)
    );
    assert_eq!(
        admit(&policy, &visitor(&h, &[], "", "10.0.0.1")).err(),
        Some(Denied::Credentials)
    );
}

// --- through forwarding, on the fake ---

mod forwarding {
    use protocol::HttpResponse;

    use super::*;
    use crate::fake::{Fake, Post};
    use crate::forwarding::handle;
    use crate::store::Claim;
    use crate::testing::{forwarding_config, http_event};

    const CONN: &str = "L0SM9cOFvHcCIhw=";

    fn protected(fake: &Fake, policy: AccessPolicy) {
        fake.insert_connection(CONN, SUB);
        let claim = fake.claim(SUB).unwrap();
        fake.put_claim(Claim {
            policy: Some(policy),
            ..claim
        });
        fake.set_agent(Box::new(|req| {
            Some((
                1,
                HttpResponse {
                    request_id: req.request_id.clone(),
                    status_code: 200,
                    headers: Default::default(),
                    body: String::new(),
                    processing_time_ms: 0,
                    body_uploaded: None,
                },
            ))
        }));
    }

    fn ann() -> AccessPolicy {
        AccessPolicy {
            basic_auth: vec![hash_credential("ann", "pw")],
            ..AccessPolicy::default()
        }
    }

    #[rstest]
    #[case::notice_delivered(Post::Ok)]
    #[case::notice_lost(Post::Other)]
    #[case::agent_gone(Post::Gone)]
    #[tokio::test]
    async fn a_refused_request_costs_the_lookup_and_one_notice_only(#[case] notice: Post) {
        let fake = Fake::default();
        protected(&fake, ann());
        fake.script_posts(&[notice]);
        let response = handle(
            &forwarding_config(),
            &fake,
            &fake,
            &fake,
            &fake,
            http_event("forwarding-get.json"),
        )
        .await;
        assert_eq!(response.status_code, 401);
        assert_eq!(
            response.headers["www-authenticate"],
            r#"Basic realm="tunnel", charset="UTF-8""#
        );
        assert_eq!(
            response.body.as_deref(),
            Some("This tunnel needs a user name and password.\n")
        );
        assert_eq!(fake.count("GetItem"), 1);
        assert_eq!(fake.actions().len(), 1, "{:?}", fake.actions());
        let posts = fake.posts();
        if notice == Post::Ok {
            assert_eq!(posts.len(), 1);
            let Message::Rejected(r) = &posts[0].1 else {
                panic!("{posts:?}");
            };
            assert_eq!(r.method, "GET");
            assert_eq!(r.path, "/api/items");
            assert_eq!(r.status, 401);
            assert_eq!(r.reason, "no valid basic-auth credentials");
            assert!(r.source_ip.is_some());
        }
    }

    #[tokio::test]
    async fn an_admitted_request_reaches_the_agent_without_the_consumed_header() {
        let fake = Fake::default();
        protected(&fake, ann());
        let mut event = http_event("forwarding-get.json");
        event.headers.insert(
            http::header::AUTHORIZATION,
            basic("ann", "pw").parse().unwrap(),
        );
        let response = handle(&forwarding_config(), &fake, &fake, &fake, &fake, event).await;
        assert_eq!(response.status_code, 200);
        let posts = fake.posts();
        let Message::HttpRequest(req) = &posts[0].1 else {
            panic!("{posts:?}");
        };
        assert!(!req.headers.contains_key("authorization"));
        assert_eq!(fake.count("GetItem"), 1 + 1, "the lookup, then one poll");
    }
}
