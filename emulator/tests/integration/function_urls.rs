//! Lambda Function URLs: the event Lambda builds (compared field by field
//! with AWS's recordings), invoke mode `BUFFERED`, and the answers Lambda
//! gives itself (throttle, limits, failures).

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use emulator::{FunctionUrlConfig, InvokeMode};
use serde_json::{Value, json};

use crate::{
    common::{
        CAPTURE_URL_ID, Gates, Reports, WAIT, aws_fixture, http_client, start, url_config,
        wait_counters,
    },
    events::{is_epoch_ms, is_request_time, shape_differences},
};

async fn buffered() -> (Reports, Gates, emulator::Emulator) {
    let reports = Reports::start().await;
    let gates = Gates::start().await;
    let emulator = start(url_config(&reports, &gates, InvokeMode::Buffered)).await;
    (reports, gates, emulator)
}

fn url(emulator: &emulator::Emulator, path: &str) -> String {
    format!(
        "{}{path}",
        emulator.function_url("f").expect("a Function URL")
    )
}

/// The event for the very request AWS recorded behind a Function URL
/// (hotsock/voker's live capture): every field equal to AWS's but those
/// that must differ.
#[tokio::test]
async fn the_event_matches_aws_live_capture() {
    let (_reports, _gates, emulator) = buffered().await;
    let aws = aws_fixture("voker-functionurl-request.json");
    let response = http_client()
        .post(url(
            &emulator,
            &format!(
                "/capture/space%20value?{}",
                aws["rawQueryString"].as_str().unwrap()
            ),
        ))
        .header("accept", "*/*")
        .header("content-type", "application/json")
        .header("user-agent", "curl/8.7.1")
        .header("cookie", "session=abc123; theme=dark")
        .header("x-voker-probe", "first")
        .header("x-voker-probe", "second")
        .body(aws["body"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let lambda_request_id = response.headers()["x-fixture-request-id"].clone();
    let amzn_request_id = response.headers()["x-amzn-requestid"].clone();
    let ours: Value = response.json().await.unwrap();

    // Written by the capture's typed logger for every optional field: AWS
    // omits them with auth type NONE (the recording below has none of them;
    // the developer guide: "sets this to null or excludes this").
    let logger_artefacts = [
        "/pathParameters",
        "/stageVariables",
        "/requestContext/authentication",
        "/requestContext/authorizer",
    ];
    assert_eq!(
        shape_differences(&ours, &aws, &logger_artefacts),
        Vec::<String>::new()
    );
    let mut expected = aws.clone();
    let mut actual = ours.clone();
    for artefact in logger_artefacts {
        let (parent, key) = artefact.rsplit_once('/').unwrap();
        let parent = expected.pointer_mut(parent).unwrap();
        parent.as_object_mut().unwrap().remove(key);
    }
    for pointer in [
        "/headers/host",
        "/headers/x-amzn-trace-id",
        "/headers/x-forwarded-for",
        "/headers/x-forwarded-port",
        "/headers/x-forwarded-proto",
        "/requestContext/http/sourceIp",
        "/requestContext/requestId",
        "/requestContext/time",
        "/requestContext/timeEpoch",
    ] {
        for value in [&mut expected, &mut actual] {
            *value.pointer_mut(pointer).unwrap() = json!("(normalised)");
        }
    }
    // Raw `rawPath`, decoded `http.path`, `anonymous`, the URL's own domain,
    // the cookie header beside `cookies`, the TLS headers: all as recorded.
    assert_eq!(actual, expected);

    let context = &ours["requestContext"];
    assert!(is_request_time(&context["time"]));
    assert!(is_epoch_ms(&context["timeEpoch"]));
    // One request id: the event's, the invocation's and `x-amzn-RequestId`.
    assert_eq!(context["requestId"], lambda_request_id.to_str().unwrap());
    assert_eq!(context["requestId"], amzn_request_id.to_str().unwrap());
    assert!(uuid_like(&context["requestId"]), "{}", context["requestId"]);
    assert_eq!(
        ours["headers"]["x-forwarded-proto"], "http",
        "no TLS locally"
    );
    let local = emulator
        .function_url("f")
        .unwrap()
        .trim_start_matches("http://");
    assert_eq!(ours["headers"]["host"], local, "the local host:port");
    assert_eq!(
        ours["headers"]["x-forwarded-port"],
        emulator.function_url_addr("f").unwrap().port().to_string()
    );
    assert!(
        ours["headers"]["x-amzn-trace-id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    let typed: LambdaFunctionUrlRequest =
        serde_json::from_value(ours).expect("aws_lambda_events parses it");
    assert_eq!(typed.raw_path.as_deref(), Some("/capture/space%20value"));
}

/// `e1506fd5-9e7b-434f-bd42-4f8fa224b599`, as in the guide and the capture.
fn uuid_like(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        let groups: Vec<_> = s.split('-').map(str::len).collect();
        groups == [8, 4, 4, 4, 12] && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
    })
}

/// A plain GET against AWS's recording of one (auth type NONE): no body, no
/// query, no cookies → those keys are omitted, not null.
#[tokio::test]
async fn a_plain_get_omits_empty_parts_as_aws_does() {
    let (_reports, _gates, emulator) = buffered().await;
    let ours: Value = http_client()
        .get(url(&emulator, "/"))
        .header("user-agent", "agent")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aws = aws_fixture("powertools-functionurl-request.json");
    // The recorded browser sent its own headers; header names are compared
    // by the capture test above.
    let mut ours_headerless = ours.clone();
    let mut aws_headerless = aws.clone();
    ours_headerless["headers"] = json!({});
    aws_headerless["headers"] = json!({});
    assert_eq!(
        shape_differences(&ours_headerless, &aws_headerless, &[]),
        Vec::<String>::new()
    );
    assert_eq!(ours["requestContext"]["accountId"], "anonymous");
    assert_eq!(ours["requestContext"]["apiId"], CAPTURE_URL_ID);
    assert_eq!(ours["rawQueryString"], "");
}

/// Trap 15: behind a Function URL `rawPath` is what the client sent, byte
/// for byte; only `requestContext.http.path` is decoded.
#[tokio::test]
async fn raw_path_stays_raw() {
    let (_reports, _gates, emulator) = buffered().await;
    for (sent, decoded) in [
        ("/a/space%20value", "/a/space value"),
        ("/a/slash%2Fvalue", "/a/slash/value"),
        ("/a/question%3Fvalue", "/a/question?value"),
        ("/a/literal%252Fvalue", "/a/literal%2Fvalue"),
        ("/a/unicode-%CE%BB", "/a/unicode-λ"),
    ] {
        let event: Value = http_client()
            .get(url(&emulator, sent))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(event["rawPath"], sent);
        assert_eq!(event["requestContext"]["http"]["path"], decoded, "{sent}");
    }
}

#[tokio::test]
async fn responses_are_mapped_as_payload_2_0() {
    let (_reports, _gates, emulator) = buffered().await;
    let get = |mode: &str| {
        http_client()
            .get(url(&emulator, "/"))
            .header("x-fixture-mode", mode)
            .send()
    };
    let response = get("cookies").await.unwrap();
    assert_eq!(response.status(), 201);
    let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
    assert_eq!(response.headers()["x-list"], "a, b, c");
    assert_eq!(response.text().await.unwrap(), "hello");
    let response = get("json").await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"hello": "world"})
    );
    assert_eq!(get("status:418").await.unwrap().status(), 418);
}

/// What Lambda answers itself when the function fails: 502.
#[tokio::test]
async fn failures_are_502() {
    let (_reports, _gates, emulator) = buffered().await;
    for mode in ["error", "invalid", "crash", "large:6300000"] {
        let response = http_client()
            .get(url(&emulator, "/"))
            .header("x-fixture-mode", mode)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502, "{mode}");
        assert!(response.headers().contains_key("x-amzn-requestid"));
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"Message": "Internal Server Error"}),
            "{mode}"
        );
    }
    // An answer Lambda cannot map is not a function error.
    let counters = &emulator.counters().functions["f"];
    assert_eq!((counters.invocations, counters.errors), (4, 3));
}

#[tokio::test]
async fn a_timed_out_function_is_502() {
    let reports = Reports::start().await;
    let gates = Gates::start().await;
    let mut config = url_config(&reports, &gates, InvokeMode::Buffered);
    config.functions[0].timeout_secs = 1;
    let emulator = start(config).await;
    let response = http_client()
        .get(url(&emulator, "/"))
        .header("x-fixture-mode", "sleep:20000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(emulator.counters().functions["f"].errors, 1);
}

/// Over 6 MB, before or after the body is put into the event: 413, and the
/// function is never invoked.
#[tokio::test]
async fn the_request_payload_limit_is_413() {
    let (_reports, _gates, emulator) = buffered().await;
    for size in [6 * 1024 * 1024 + 1, 5 * 1024 * 1024] {
        let response = http_client()
            .post(url(&emulator, "/"))
            .body(vec![b'a'; size])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413, "{size}");
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "RequestTooLargeException"
        );
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"Message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"})
        );
    }
    assert_eq!(emulator.counters().functions["f"].cold_starts, 0);
}

/// Over the function's concurrency: refused at once with 429, counted as a
/// throttle; the running invocation goes on.
#[tokio::test]
async fn over_the_concurrency_a_request_is_throttled() {
    let (mut reports, mut gates, emulator) = {
        let reports = Reports::start().await;
        let gates = Gates::start().await;
        let mut config = url_config(&reports, &gates, InvokeMode::Buffered);
        config.functions[0].concurrency = 1;
        let emulator = start(config).await;
        (reports, gates, emulator)
    };
    // Held by an invocation waiting at a gate.
    let busy_url = url(&emulator, "/busy");
    let busy = tokio::spawn(async move {
        http_client()
            .get(busy_url)
            .header("x-fixture-mode", "gate:busy")
            .send()
            .await
            .unwrap()
    });
    let gate = gates.next().await;
    let response = http_client()
        .get(url(&emulator, "/second"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "TooManyRequestsException"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"Message": "Rate Exceeded."})
    );
    assert_eq!(gate.name, "busy");
    gate.open().await;
    assert_eq!(
        tokio::time::timeout(WAIT, busy)
            .await
            .unwrap()
            .unwrap()
            .status(),
        200
    );
    reports.next_where(|e| e["rawPath"] == "/busy").await;
    wait_counters(&emulator, |c| c.functions["f"].throttles == 1).await;
    let counters = &emulator.counters().functions["f"];
    assert_eq!((counters.invocations, counters.errors), (1, 0));
}

/// `${FUNCTION_URL:f}` tells a function a URL bound on port 0; a pre-bound
/// listener is used as given.
#[tokio::test]
async fn placeholders_and_prebound_listeners() {
    let reports = Reports::start().await;
    let mut config = emulator::Config::new("local");
    config.functions.push(reports.function("f", &[]));
    config
        .functions
        .push(reports.function("g", &[("F_URL", "${FUNCTION_URL:f}/x")]));
    config.function_urls.push(FunctionUrlConfig::new("f"));
    config.function_urls.push(FunctionUrlConfig::new("g"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let emulator = emulator::Emulator::builder(config)
        .log_sink(emulator::LogSink::Discard)
        .function_url_listener("f", listener)
        .start()
        .await
        .unwrap();
    assert_eq!(emulator.function_url_addr("f"), Some(addr));
    assert_eq!(
        emulator.function_url("f"),
        Some(format!("http://{addr}").as_str())
    );
    let id = emulator.function_url_id("g").unwrap();
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    let env: Value = http_client()
        .get(format!("{}/", emulator.function_url("g").unwrap()))
        .header("x-fixture-mode", "env")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(env["F_URL"], format!("http://{addr}/x"));
}

/// A client that leaves does not stop a buffered invocation either: the
/// function answers into the void and its process stays warm.
#[tokio::test]
async fn the_function_runs_on_when_the_client_leaves() {
    let (mut reports, mut gates, emulator) = buffered().await;
    let held_url = url(&emulator, "/held");
    let client = tokio::spawn(async move {
        let _ = http_client()
            .get(held_url)
            .header("x-fixture-mode", "gate:held")
            .send()
            .await;
    });
    let gate = gates.next().await;
    let pid = reports.next_where(|e| e["rawPath"] == "/held").await["pid"].clone();
    client.abort();
    let _ = client.await;
    gate.open().await;
    wait_counters(&emulator, |c| c.functions["f"].invocations == 1).await;
    let body = http_client()
        .get(url(&emulator, "/"))
        .header("x-fixture-mode", "pid")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, pid.to_string(), "the same process: never killed");
    let counters = &emulator.counters().functions["f"];
    assert_eq!(
        (counters.invocations, counters.errors, counters.cold_starts),
        (2, 0, 1)
    );
}

/// A function that streams behind a `BUFFERED` URL: its stream is read whole
/// as the result, which is no payload 2.0 JSON (a prelude leads it): 502.
#[tokio::test]
async fn a_stream_behind_a_buffered_url_is_read_whole() {
    let (_reports, mut gates, emulator) = buffered().await;
    let stream_url = url(&emulator, "/");
    let response = tokio::spawn(async move {
        http_client()
            .get(stream_url)
            .header("x-fixture-mode", "stream:1")
            .send()
            .await
            .unwrap()
    });
    gates.open("piece-0").await;
    let response = tokio::time::timeout(WAIT, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 502);
    let counters = &emulator.counters().functions["f"];
    assert_eq!((counters.invocations, counters.errors), (1, 0));
}

/// Unlike AWS (403 for a foreign `Host`), any `Host` is served; the event
/// keeps it in `headers` and still names the URL's own domain.
#[tokio::test]
async fn any_host_is_served() {
    let (_reports, _gates, emulator) = buffered().await;
    let event: Value = http_client()
        .get(url(&emulator, "/"))
        .header("host", "tunnel.example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(event["headers"]["host"], "tunnel.example.com");
    assert_eq!(
        event["requestContext"]["domainName"],
        format!("{CAPTURE_URL_ID}.lambda-url.us-west-2.on.aws")
    );
}
