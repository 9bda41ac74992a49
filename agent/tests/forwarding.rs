//! Requests through the agent: the server side sends `http_request`s, a local
//! axum service answers, the test checks what each side saw.

mod support;

use std::collections::HashSet;

use protocol::limits::MAX_FRAME_BYTES;
use protocol::{ErrorCode, Message};
use rstest::rstest;
use support::*;

#[tokio::test]
async fn answers_concurrent_requests_each_with_its_own_response() {
    let mut s = setup(|_| {}).await;
    const N: usize = 8;
    // Every request waits at a barrier until all N reached the local service:
    // this only completes if the agent forwards them concurrently.
    for i in 0..N {
        let mut req = request(&format!("r{i}"), "POST", &format!("/barrier/{N}"));
        req.body = protocol::encode_body(format!("body {i}").as_bytes());
        s.conn.send(&Message::HttpRequest(req)).await;
    }
    let mut seen = HashSet::new();
    for _ in 0..N {
        let r = expect_response(s.conn.recv_answer().await);
        let i: usize = r.request_id[1..].parse().unwrap();
        assert_eq!(r.status_code, 200);
        assert_eq!(
            protocol::decode_body(&r.body).unwrap(),
            format!("body {i}").as_bytes()
        );
        assert!(seen.insert(i), "duplicate answer for r{i}");
    }
    assert_eq!(seen.len(), N);
}

#[tokio::test]
async fn binary_bodies_are_byte_exact_both_ways() {
    let mut s = setup(|_| {}).await;
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let mut req = request("bin", "PUT", "/echo");
    req.body = protocol::encode_body(&bytes);
    let r = expect_response(s.conn.roundtrip(req).await);
    assert_eq!(protocol::decode_body(&r.body).unwrap(), bytes);
    assert!(r.processing_time_ms < 10_000);
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed() {
    let mut s = setup(|_| {}).await;
    let r = expect_response(s.conn.roundtrip(request("r", "GET", "/redirect")).await);
    assert_eq!(r.status_code, 302);
    assert_eq!(r.headers["location"], ["/elsewhere"]);
    assert_eq!(protocol::decode_body(&r.body).unwrap(), b"moved");
}

#[tokio::test]
async fn compressed_bodies_are_untouched_and_no_accept_encoding_is_added() {
    let mut s = setup(|_| {}).await;
    let r = expect_response(s.conn.roundtrip(request("gz", "GET", "/gzip")).await);
    assert_eq!(r.headers["content-encoding"], ["gzip"]);
    assert_eq!(protocol::decode_body(&r.body).unwrap(), GZIP_HELLO);

    let seen = Seen::from_response(&expect_response(
        s.conn.roundtrip(request("i", "GET", "/inspect")).await,
    ));
    assert!(seen.header("accept-encoding").is_empty(), "{seen:?}");

    // The visitor's own Accept-Encoding goes through as sent.
    let req = with_headers(
        request("i2", "GET", "/inspect"),
        &[("accept-encoding", &["gzip, br"])],
    );
    let seen = Seen::from_response(&expect_response(s.conn.roundtrip(req).await));
    assert_eq!(seen.header("accept-encoding"), ["gzip, br"]);
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let mut s = setup(|_| {}).await;
    let req = with_headers(
        request("h", "GET", "/inspect"),
        &[
            ("host", &["abc123.tunnel.test"]),
            ("connection", &["keep-alive, X-Custom-Hop"]),
            ("x-custom-hop", &["1"]),
            ("keep-alive", &["timeout=5"]),
            ("te", &["trailers"]),
            ("upgrade", &["h2c"]),
            ("proxy-authorization", &["Basic Zm9vOmJhcg=="]),
            ("transfer-encoding", &["chunked"]),
            ("x-kept", &["yes"]),
            ("x-forwarded-for", &["203.0.113.9"]),
        ],
    );
    let seen = Seen::from_response(&expect_response(s.conn.roundtrip(req).await));
    for gone in [
        "x-custom-hop",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "transfer-encoding",
    ] {
        assert!(
            seen.header(gone).is_empty(),
            "{gone} reached the service: {seen:?}"
        );
    }
    assert_eq!(seen.header("x-kept"), ["yes"]);
    assert_eq!(seen.header("x-forwarded-for"), ["203.0.113.9"]);
    assert_eq!(seen.header("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.header("x-forwarded-host"), ["abc123.tunnel.test"]);
    // Host rewritten to the local target by default.
    assert_eq!(seen.header("host"), [s.local.authority.as_str()]);

    let r = expect_response(s.conn.roundtrip(request("h2", "GET", "/headers")).await);
    for gone in ["connection", "x-hop", "keep-alive", "transfer-encoding"] {
        assert!(
            !r.headers.contains_key(gone),
            "{gone} came back: {:?}",
            r.headers
        );
    }
    assert_eq!(r.headers["x-kept"], ["yes"]);
    assert_eq!(
        protocol::decode_body(&r.body).unwrap(),
        b"chunk one,chunk two"
    );
}

#[tokio::test]
async fn repeated_headers_and_every_set_cookie_survive() {
    let mut s = setup(|_| {}).await;
    let req = with_headers(
        request("c", "GET", "/inspect"),
        &[
            ("accept", &["text/html", "application/json"]),
            ("cookie", &["a=1", "b=2"]),
        ],
    );
    let seen = Seen::from_response(&expect_response(s.conn.roundtrip(req).await));
    assert_eq!(seen.header("accept"), ["text/html", "application/json"]);
    assert_eq!(seen.header("cookie"), ["a=1", "b=2"]);

    let r = expect_response(s.conn.roundtrip(request("c2", "GET", "/headers")).await);
    assert_eq!(r.headers["set-cookie"], ["a=1; Path=/", "b=2; HttpOnly"]);
    assert_eq!(r.headers["x-multi"], ["one", "two"]);
}

#[rstest]
#[case::encoded_slash_and_plus("/inspect/a%2Fb/c?x=%2F&y=+&z=%20")]
#[case::repeats_and_odd_order("/inspect?z=1&a=2&z=0&a=&flag&=v&&x=%41%42")]
#[case::encoded_reserved("/inspect/%3F%23%25?q=%26%3D%3F%23&plus=a+b%2Bc")]
#[case::utf8_escapes("/inspect/%E2%82%AC?name=%C3%A9t%C3%A9&raw=~!$*(),;:@/?")]
#[case::empty_query("/inspect?")]
#[case::only_path("/inspect/x/")]
#[tokio::test]
async fn path_and_query_arrive_byte_exact(#[case] uri: &str) {
    let mut s = setup(|_| {}).await;
    let seen = Seen::from_response(&expect_response(
        s.conn.roundtrip(request("q", "GET", uri)).await,
    ));
    assert_eq!(seen.uri, uri);
    assert_eq!(seen.method, "GET");
}

/// `url::Url` (inside reqwest) normalises these; pinned here so a change is
/// noticed (see the `forward::local` module docs).
#[rstest]
#[case::single_quote_in_query("/inspect?q='x'", "/inspect?q=%27x%27")]
#[case::dot_segments("/inspect/a/../b/./c", "/inspect/b/c")]
#[tokio::test]
async fn url_normalisations_are_known(#[case] uri: &str, #[case] arrives: &str) {
    let mut s = setup(|_| {}).await;
    let seen = Seen::from_response(&expect_response(
        s.conn.roundtrip(request("q", "GET", uri)).await,
    ));
    assert_eq!(seen.uri, arrives);
}

#[tokio::test]
async fn methods_and_host_header_modes() {
    let mut s = setup(|c| c.host_header = agent::HostHeader::Preserve).await;
    let mut req = with_headers(
        request("m", "PATCH", "/inspect"),
        &[
            ("host", &["abc123.tunnel.test"]),
            ("x-forwarded-proto", &["http"]),
        ],
    );
    req.body = protocol::encode_body(b"{\"a\":1}");
    let seen = Seen::from_response(&expect_response(s.conn.roundtrip(req).await));
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.header("host"), ["abc123.tunnel.test"]);
    assert_eq!(seen.header("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.body, b"{\"a\":1}");
    assert_eq!(seen.header("content-length"), ["7"]);

    let mut s = setup(|c| c.host_header = agent::HostHeader::Custom("api.local".into())).await;
    let req = with_headers(
        request("m2", "GET", "/inspect"),
        &[("host", &["abc123.tunnel.test"])],
    );
    let seen = Seen::from_response(&expect_response(s.conn.roundtrip(req).await));
    assert_eq!(seen.header("host"), ["api.local"]);
}

#[tokio::test]
async fn invalid_base64_body_is_an_invalid_request() {
    let mut s = setup(|_| {}).await;
    let mut req = request("b", "POST", "/echo");
    req.body = "not base64!".into();
    let e = expect_error(s.conn.roundtrip(req).await);
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(e.message.contains("base64"), "{}", e.message);
}

#[tokio::test]
async fn local_service_down_is_reported_in_plain_words() {
    // A port nothing listens on: bind, note it, release it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut s = setup(|c| c.target = addr.to_string().parse().unwrap()).await;
    let e = expect_error(s.conn.roundtrip(request("d", "GET", "/")).await);
    assert_eq!(e.code, ErrorCode::LocalServiceUnavailable);
    // The visitor gets a short reason, without the local address…
    assert_eq!(e.message, "the local service refused the connection");
    // …the console gets the address and a hint.
    let event = wait_event(&mut s.agent, |e| matches!(e, agent::Event::Request(_))).await;
    let agent::Event::Request(log) = event else {
        unreachable!()
    };
    assert_eq!(
        log.outcome,
        agent::RequestOutcome::Failed {
            code: ErrorCode::LocalServiceUnavailable,
            message: format!("local service at {addr} refused the connection — is it running?"),
        }
    );
}

/// Whatever goes wrong with the local service, the visitor's text names no
/// local address and carries no error chain; the console has both.
#[rstest]
#[case::refused("refused")]
#[case::drops_the_connection("drop")]
#[case::times_out("slow")]
#[tokio::test]
async fn visitors_never_see_local_addresses_or_error_chains(#[case] how: &str) {
    let local = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = local.local_addr().unwrap();
    let mut s = setup(|c| {
        c.target = addr.to_string().parse().unwrap();
        c.request_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let service = match how {
        "refused" => {
            drop(local);
            None
        }
        // Accepts and hangs up without a word, or accepts and never answers.
        _ => Some(tokio::spawn({
            let hold = how == "slow";
            async move {
                let mut held = Vec::new();
                loop {
                    let (socket, _) = local.accept().await.unwrap();
                    if hold {
                        held.push(socket);
                    }
                }
            }
        })),
    };
    let e = expect_error(s.conn.roundtrip(request("v", "GET", "/x?k=v")).await);
    let ip = addr.ip().to_string();
    let port = addr.port().to_string();
    assert!(
        !e.message.contains(&ip) && !e.message.contains(&port) && !e.message.contains(':'),
        "visitor text: {}",
        e.message
    );
    assert!(e.message.len() < 100, "visitor text: {}", e.message);
    let event = wait_event(&mut s.agent, |e| matches!(e, agent::Event::Request(_))).await;
    let agent::Event::Request(log) = event else {
        unreachable!()
    };
    let agent::RequestOutcome::Failed { message, .. } = log.outcome else {
        panic!("not a failure: {:?}", log.outcome)
    };
    assert!(message.contains(&addr.to_string()), "console: {message}");
    assert!(
        !message.contains("k=v"),
        "console shows the query: {message}"
    );
    if let Some(service) = service {
        service.abort();
    }
}

#[tokio::test]
async fn slow_local_service_times_out() {
    let mut s = setup(|c| c.request_timeout = std::time::Duration::from_millis(300)).await;
    let e = expect_error(s.conn.roundtrip(request("slow", "GET", "/never")).await);
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(
        e.message.contains("did not answer within 300 ms"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn large_responses_are_fragmented_into_small_frames() {
    let mut s = setup(|_| {}).await;
    let n = 60_000;
    let r = expect_response(
        s.conn
            .roundtrip(request("big", "GET", &format!("/big/{n}")))
            .await,
    );
    let body = protocol::decode_body(&r.body).unwrap();
    assert_eq!(body.len(), n);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));

    // The server's own limits (32 KB frames) did not trip; check the wire too.
    let frames = s.conn.wire_frames();
    assert!(
        frames.iter().all(|f| f.masked),
        "client frames must be masked"
    );
    assert!(
        frames.iter().all(|f| f.total_len <= MAX_FRAME_BYTES),
        "{frames:?}"
    );
    // ready (one text frame), then the response: text fin=0, continuation(s), fin=1.
    let response: Vec<_> = frames.iter().skip(1).collect();
    assert!(response.len() >= 3, "{frames:?}");
    assert_eq!((response[0].opcode, response[0].fin), (0x1, false));
    for f in &response[1..response.len() - 1] {
        assert_eq!((f.opcode, f.fin), (0x0, false));
    }
    let last = response.last().unwrap();
    assert_eq!((last.opcode, last.fin), (0x0, true));
}

#[tokio::test]
async fn responses_over_the_body_ceiling_are_payload_too_large() {
    let mut s = setup(|_| {}).await;
    let n = protocol::limits::MAX_BODY_BYTES + 1;
    let e = expect_error(
        s.conn
            .roundtrip(request("huge", "GET", &format!("/big/{n}")))
            .await,
    );
    assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    assert!(
        e.message.contains("limit of 4620288 bytes"),
        "{}",
        e.message
    );
    // The connection is still fine.
    let r = expect_response(s.conn.roundtrip(request("ok", "GET", "/big/10")).await);
    assert_eq!(r.status_code, 200);
}

#[tokio::test]
async fn each_request_is_logged_without_query_values() {
    let mut s = setup(|_| {}).await;
    let r = s
        .conn
        .roundtrip(request("log", "GET", "/big/2?token=s3cret"))
        .await;
    expect_response(r);
    let event = wait_event(&mut s.agent, |e| matches!(e, agent::Event::Request(_))).await;
    let agent::Event::Request(log) = event else {
        unreachable!()
    };
    assert_eq!(log.request_id, "log");
    assert_eq!(log.method, "GET");
    assert_eq!(log.path, "/big/2?…");
    assert_eq!(log.outcome, agent::RequestOutcome::Status(200));
}

#[rstest]
#[case::bad_method("GE T", "/")]
#[case::not_origin_form("GET", "http://evil.example/")]
#[tokio::test]
async fn unforwardable_requests_are_invalid(#[case] method: &str, #[case] uri: &str) {
    let mut s = setup(|_| {}).await;
    let e = expect_error(s.conn.roundtrip(request("bad", method, uri)).await);
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn over_the_in_flight_cap_visitors_get_503_and_the_rest_is_served() {
    let mut s = setup(|c| c.max_in_flight = 2).await;
    for id in ["a", "b"] {
        s.conn
            .send(&Message::HttpRequest(request(id, "GET", "/gate")))
            .await;
        within(
            "the request to reach the service",
            s.local.state.entered.notified(),
        )
        .await;
    }
    let e = expect_error(s.conn.roundtrip(request("c", "GET", "/big/1")).await);
    assert_eq!(e.code, ErrorCode::Overloaded);
    assert_eq!(e.code.http_status(), 503);
    assert!(e.message.contains("try again"), "{}", e.message);
    let event = wait_event(
        &mut s.agent,
        |e| matches!(e, agent::Event::Request(log) if log.request_id == "c"),
    )
    .await;
    let agent::Event::Request(log) = event else {
        unreachable!()
    };
    assert!(
        matches!(&log.outcome, agent::RequestOutcome::Failed { code: ErrorCode::Overloaded, message } if message.contains("--max-in-flight")),
        "{log:?}"
    );
    // The two in flight finish, and their slots are free again.
    s.local.state.gate.add_permits(2);
    let mut done: Vec<String> = Vec::new();
    for _ in 0..2 {
        done.push(expect_response(s.conn.recv_answer().await).request_id);
    }
    done.sort();
    assert_eq!(done, ["a", "b"]);
    for id in ["d", "e"] {
        let r = expect_response(s.conn.roundtrip(request(id, "GET", "/big/1")).await);
        assert_eq!(r.status_code, 200);
    }
}

/// A target with a base path is a boundary: no spelling of `..` gets a
/// request out of it (the whole family is in `config`'s unit tests).
#[rstest]
#[case::dot_dot("/../inspect")]
#[case::encoded("/%2e%2e/inspect")]
#[case::encoded_upper("/%2E%2E/inspect")]
#[case::mixed("/.%2e/inspect")]
#[case::backslash("/..\\inspect")]
#[case::encoded_slash("/..%2finspect")]
#[case::deeper("/x/../../inspect")]
#[tokio::test]
async fn requests_cannot_leave_the_targets_base_path(#[case] uri: &str) {
    let mut s = setup(|c| {
        let base = c.target.base().to_owned();
        c.target = format!("{base}/app").parse().unwrap();
    })
    .await;
    let e = expect_error(s.conn.roundtrip(request("esc", "GET", uri)).await);
    assert_eq!(e.code, ErrorCode::InvalidRequest, "{uri}");
    assert!(e.message.contains("base path"), "{}", e.message);
    // Inside the base path, requests go through (the service has no /app: 404).
    let r = expect_response(s.conn.roundtrip(request("in", "GET", "/inspect")).await);
    assert_eq!(r.status_code, 404);
}
