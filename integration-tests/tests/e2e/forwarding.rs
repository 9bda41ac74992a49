//! Requests and responses pass through byte-exact, both routings work.

use std::time::Duration;

use itest::{LocalService, TestEnv, service::GZIP_HELLO};
use reqwest::Method;

use crate::support::{PATIENCE, header_values, visitor};

/// The elements of comma-separated header values (`a, b` + `c` → a, b, c).
fn list_values(values: &[impl AsRef<[u8]>]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_ref())
                .split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

const WAIT: Duration = PATIENCE;

#[tokio::test]
async fn every_method_reaches_the_local_service() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("methods").await?;
    let tunnel = env.expose(&service.port()).await?;
    let client = visitor();

    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let body = format!("body of {method}");
        let with_body = !matches!(method, "GET" | "OPTIONS");
        let mut request = client.request(
            Method::from_bytes(method.as_bytes())?,
            format!("{}/m/{method}", tunnel.public_url()),
        );
        if with_body {
            request = request
                .header("content-type", "text/plain")
                .body(body.clone());
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 200, "{method}");
        let echo: serde_json::Value = response.json().await?;
        assert_eq!(echo["method"], method);
        assert_eq!(echo["uri"], format!("/m/{method}"));

        let seen = service
            .next_request(WAIT)
            .await
            .expect("the service saw it");
        assert_eq!(seen.method, method);
        assert_eq!(seen.uri, format!("/m/{method}"));
        if with_body {
            assert_eq!(seen.body, body.as_bytes(), "{method} body");
        } else {
            assert!(seen.body.is_empty(), "{method} has no body");
        }
    }

    // HEAD: the service's headers, no body.
    let response = client
        .head(format!("{}/m/HEAD", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(header_values(&response, "x-service"), ["methods"]);
    assert!(response.bytes().await?.is_empty());
    let seen = service
        .next_request(WAIT)
        .await
        .expect("the service saw HEAD");
    assert_eq!(seen.method, "HEAD");
    Ok(())
}

#[tokio::test]
async fn binary_bodies_pass_both_ways_unchanged() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("binary").await?;
    let tunnel = env.expose(&service.port()).await?;
    let client = visitor();

    // Every byte value, invalid UTF-8, NULs; then 64 KiB of noise.
    let mut all_bytes: Vec<u8> = (0..=255u8).collect();
    all_bytes.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0d, 0x0a]);
    let noise: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (name, body, content_type) in [
        (
            "all bytes, octet-stream",
            &all_bytes,
            Some("application/octet-stream"),
        ),
        ("all bytes, no content type", &all_bytes, None),
        ("all bytes, claimed text", &all_bytes, Some("text/plain")),
        ("64 KiB", &noise, Some("application/octet-stream")),
    ] {
        let mut request = client
            .post(format!("{}/binary", tunnel.public_url()))
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(
            header_values(&response, "content-type"),
            ["application/octet-stream"]
        );
        let returned = response.bytes().await?;
        assert!(returned == body.as_slice(), "{name}: response body differs");
        let seen = service.next_request(WAIT).await.expect("seen");
        assert!(seen.body == body.as_slice(), "{name}: request body differs");
    }

    // A compressed response is passed on compressed: nobody decompresses.
    let response = client
        .get(format!("{}/gzip", tunnel.public_url()))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(header_values(&response, "content-encoding"), ["gzip"]);
    assert_eq!(response.bytes().await?.as_ref(), GZIP_HELLO);
    Ok(())
}

#[tokio::test]
async fn query_strings_pass_byte_exact() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("query").await?;
    let tunnel = env.expose(&service.port()).await?;
    let client = visitor();

    for path_and_query in [
        "/q?b=2&a=1&a=3&b=0",                  // order and repeats
        "/q?x=%20%2B+%2F&empty=&flag&=v",      // encodings, empty parts
        "/q?lower=%e2%9c%93&upper=%E2%9C%93",  // percent-encoding case kept
        "/q?semi=a;b&amp=%26&eq=a=b&hash=%23", // separators inside values
        "/path%20with/%2Fslash/seg?x=1",       // encoded path (decoded by AWS)
        "/q?",                                 // empty query
        "/",
    ] {
        let url = format!("{}{path_and_query}", tunnel.public_url());
        // What goes on the wire is what we wrote (the URL parser keeps it).
        let parsed = reqwest::Url::parse(&url)?;
        assert!(
            parsed.as_str().ends_with(path_and_query),
            "test URL rewritten by the client: {parsed}"
        );
        let response = client.get(url).send().await?;
        assert_eq!(response.status(), 200, "{path_and_query}");
        let seen = service.next_request(WAIT).await.expect("seen");
        let expected = if path_and_query == "/q?" {
            // API Gateway's rawQueryString cannot tell `?` from nothing.
            assert!(seen.uri == "/q?" || seen.uri == "/q", "{}", seen.uri);
            continue;
        } else if path_and_query.starts_with("/path%20with") {
            // The HTTP API decodes the path: the space comes back encoded,
            // `%2F` cannot (see tests/e2e/paths.rs).
            "/path%20with//slash/seg?x=1"
        } else {
            path_and_query
        };
        assert_eq!(seen.uri, expected);
    }
    Ok(())
}

#[tokio::test]
async fn repeated_headers_and_every_set_cookie_survive() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("headers").await?;
    let tunnel = env.expose(&service.port()).await?;

    let response = visitor()
        .get(format!("{}/cookies", tunnel.public_url()))
        .header("x-repeat", "first")
        .header("x-repeat", "second")
        .header("cookie", "a=1; b=2")
        .header("x-custom", "Mixed Case Value")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let sent = [
        "a=1; Path=/",
        "b=2; HttpOnly",
        "c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
    ];
    // Path routing (a tunnel URL with a path, `/<sub>`) keeps each cookie
    // under the tunnel's prefix; host routing passes them as sent (see
    // tests/routing.rs for the Domain attribute).
    let prefix = reqwest::Url::parse(tunnel.public_url())?
        .path()
        .trim_end_matches('/')
        .to_string();
    let expected: Vec<String> = if prefix.is_empty() {
        sent.iter().map(|c| c.to_string()).collect()
    } else {
        vec![
            format!("a=1; Path={prefix}"),
            format!("b=2; HttpOnly; Path={prefix}"),
            format!("c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path={prefix}"),
        ]
    };
    assert_eq!(
        header_values(&response, "set-cookie"),
        expected,
        "every Set-Cookie arrives as its own header, in order"
    );
    // API Gateway comma-joins repeated response headers; both values stay,
    // in order.
    assert_eq!(
        list_values(&header_values(&response, "x-multi")),
        ["one", "two"]
    );

    let seen = service.next_request(WAIT).await.expect("seen");
    assert_eq!(
        list_values(&seen.header_values("x-repeat")),
        ["first", "second"]
    );
    let cookies: Vec<String> = seen
        .header_values("cookie")
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(';')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(
        seen.header_values("x-custom"),
        [b"Mixed Case Value".as_slice()]
    );
    Ok(())
}

#[tokio::test]
async fn redirects_and_statuses_pass_through_untouched() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("redirects").await?;
    let tunnel = env.expose(&service.port()).await?;
    let client = visitor();

    let response = client
        .get(format!("{}/redirect", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 302);
    assert_eq!(header_values(&response, "location"), ["/elsewhere?x=1"]);
    assert_eq!(response.text().await?, "moved");
    let seen = service.next_request(WAIT).await.expect("seen");
    assert_eq!(seen.uri, "/redirect");

    for status in [201u16, 204, 304, 404, 418, 500, 503] {
        let response = client
            .get(format!("{}/status/{status}", tunnel.public_url()))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(header_values(&response, "x-service"), ["redirects"]);
        let _ = service.next_request(WAIT).await.expect("seen");
    }
    // Neither the agent nor the tunnel followed the redirect.
    assert!(
        service
            .next_request(Duration::from_millis(100))
            .await
            .is_none(),
        "the service got a request nobody sent"
    );
    Ok(())
}
