//! Function URLs with invoke mode `RESPONSE_STREAM` and real `lambda_runtime`
//! streams: the head as soon as the prelude is complete, each piece as the
//! function writes it (trap 16), cuts, and a client that leaves.
//!
//! The fixture writes each piece only once its gate opens (`Gates`), so
//! "seen before the next is written" is a fact of the test, not a timing.

use emulator::{ClientDisconnect, InvokeMode};
use serde_json::Value;

use crate::common::{
    Gates, Reports, WAIT, http_client, start, stream_report, url_config, wait_dead,
};

const PIECE: usize = 64 * 1024;

async fn streaming(
    change: impl FnOnce(&mut emulator::Config),
) -> (Reports, Gates, emulator::Emulator) {
    let reports = Reports::start().await;
    let gates = Gates::start().await;
    let mut config = url_config(&reports, &gates, InvokeMode::ResponseStream);
    change(&mut config);
    let emulator = start(config).await;
    (reports, gates, emulator)
}

async fn get(emulator: &emulator::Emulator, mode: &str) -> reqwest::Response {
    http_client()
        .get(format!("{}/s", emulator.function_url("f").unwrap()))
        .header("x-fixture-mode", mode)
        .send()
        .await
        .expect("the head of the response")
}

/// Reads until `len` more bytes have come; `Err` when the body ends
/// abnormally first, `Ok(None)` when it ends cleanly first.
async fn read(
    response: &mut reqwest::Response,
    len: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut got = Vec::new();
    while got.len() < len {
        match tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("a piece in time")?
        {
            Some(chunk) => got.extend_from_slice(&chunk),
            None => return Ok(None),
        }
    }
    Ok(Some(got))
}

#[tokio::test]
async fn pieces_reach_the_client_as_the_function_writes_them() {
    let (mut reports, mut gates, emulator) = streaming(|_| {}).await;
    // The head is here while the function still waits to write its first piece.
    let mut response = get(&emulator, "stream:3").await;
    let first = gates.next().await;
    assert_eq!(first.name, "piece-0");
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["x-fixture"], "stream");
    assert_eq!(headers["set-cookie"], "s=1; Path=/");
    assert_eq!(headers["transfer-encoding"], "chunked");
    assert!(headers.contains_key("x-amzn-requestid"));
    first.open().await;
    for i in 0..3 {
        if i > 0 {
            gates.open(&format!("piece-{i}")).await;
        }
        let piece = format!("piece-{i}\n");
        let got = read(&mut response, piece.len()).await.unwrap().unwrap();
        assert_eq!(got, piece.as_bytes());
    }
    assert_eq!(read(&mut response, 1).await.unwrap(), None, "a clean end");
    assert_eq!(stream_report(&mut reports).await.1, 3);
    let counters = &emulator.counters().functions["f"];
    assert_eq!((counters.invocations, counters.errors), (1, 0));
}

/// A function that answers in full behind a `RESPONSE_STREAM` URL is
/// mapped as a buffered one.
#[tokio::test]
async fn a_buffered_answer_is_mapped_as_buffered() {
    let (_reports, _gates, emulator) = streaming(|_| {}).await;
    let response = get(&emulator, "cookies").await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);
    assert_eq!(response.headers()["content-length"], "5");
    assert_eq!(response.text().await.unwrap(), "hello");
}

/// AWS's documented mid-stream error: HTTP trailers on the function's POST.
/// The client's response breaks off instead of ending.
#[tokio::test]
async fn an_error_trailer_cuts_the_response() {
    let (mut reports, mut gates, emulator) = streaming(|_| {}).await;
    let mut response = get(&emulator, "stream-trailer-error").await;
    assert_eq!(response.status(), 200);
    assert_eq!(read(&mut response, 7).await.unwrap().unwrap(), b"partial");
    gates.open("trailer").await;
    assert!(read(&mut response, 1).await.is_err(), "ended abnormally");
    let report = reports
        .next_where(|e| e.get("trailer_post").is_some())
        .await;
    assert!(
        report["event"]["trailer_post"]
            .as_str()
            .unwrap()
            .contains(" 202 ")
    );
    let pid = report["pid"].as_u64().unwrap();
    crate::common::wait_counters(&emulator, |c| c.functions["f"].errors == 1).await;
    // A function error: the process stays warm.
    let body = get(&emulator, "pid").await.text().await.unwrap();
    assert_eq!(body, pid.to_string());
}

/// `lambda_runtime` 1.5 writes a stream error as text in the body (its
/// "trailer" is not an HTTP trailer): the client gets that text, and a
/// clean end.
#[tokio::test]
async fn lambda_runtime_stream_errors_arrive_as_body_text() {
    let (_reports, mut gates, emulator) = streaming(|_| {}).await;
    let mut response = get(&emulator, "stream-runtime-error:1").await;
    gates.open("piece-0").await;
    let mut body = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, response.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        body.extend_from_slice(&chunk);
    }
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with("piece-0\n"), "{body}");
    assert!(
        body.contains("Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\n"),
        "{body}"
    );
    assert_eq!(emulator.counters().functions["f"].errors, 0);
}

/// The function's timeout applies to the whole stream: past it the process
/// is killed and the client's response breaks off.
#[tokio::test]
async fn a_stream_past_the_timeout_is_cut() {
    let (mut reports, mut gates, emulator) =
        streaming(|config| config.functions[0].timeout_secs = 1).await;
    let mut response = get(&emulator, "stream:2").await;
    gates.open("piece-0").await;
    assert_eq!(read(&mut response, 8).await.unwrap().unwrap(), b"piece-0\n");
    // Never opened: the function waits until it times out.
    let _held = gates.next().await;
    assert!(read(&mut response, 1).await.is_err(), "ended abnormally");
    let pid = reports.next_where(|e| e["rawPath"] == "/s").await["pid"]
        .as_u64()
        .unwrap();
    wait_dead(pid).await;
    crate::common::wait_counters(&emulator, |c| c.functions["f"].errors == 1).await;
}

/// Reads the first piece of a stream of COUNT pieces of 64 KiB (only the
/// first waits for its gate), then leaves; the fixture's report once its
/// stream ended: (pid, pieces written, a write failed).
async fn leave_after_the_first_piece(
    emulator: &emulator::Emulator,
    reports: &mut Reports,
    gates: &mut Gates,
    count: usize,
) -> (Value, u64, bool) {
    let mut response = get(emulator, &format!("stream:{count}:{PIECE}:1")).await;
    gates.open("piece-0").await;
    read(&mut response, PIECE).await.unwrap().unwrap();
    drop(response);
    stream_report(reports).await
}

/// AWS: "the streamed response is not interrupted or stopped" when the
/// client leaves. The emulator reads and discards the rest, the function
/// runs to its end, and its process stays warm.
#[tokio::test]
async fn the_function_streams_on_after_the_client_leaves() {
    let (mut reports, mut gates, emulator) = streaming(|_| {}).await;
    // 32 MiB after the client left: more than any buffer holds, so the
    // function finishes only because the emulator reads on.
    let (pid, written, failed) =
        leave_after_the_first_piece(&emulator, &mut reports, &mut gates, 512).await;
    assert_eq!((written, failed), (512, false), "every write succeeded");
    crate::common::wait_counters(&emulator, |c| c.functions["f"].invocations == 1).await;
    let body = get(&emulator, "pid").await.text().await.unwrap();
    assert_eq!(body, pid.to_string(), "the same process: never killed");
    let counters = &emulator.counters().functions["f"];
    assert_eq!(
        (counters.invocations, counters.errors, counters.cold_starts),
        (2, 0, 1)
    );
}

/// Not AWS: `client_disconnect = "close_stream"` closes the function's
/// response connection when the client leaves. Its writes fail; it is not
/// killed, and runs on to its end.
#[tokio::test]
async fn close_stream_fails_the_writes_without_killing_the_function() {
    let (mut reports, mut gates, emulator) = streaming(|config| {
        config.function_urls[0].client_disconnect = ClientDisconnect::CloseStream;
    })
    .await;
    // Up to 187.5 MiB (under the 200 MB limit): only the close can fail a write.
    let (pid, written, failed) =
        leave_after_the_first_piece(&emulator, &mut reports, &mut gates, 3000).await;
    assert!(
        failed && written < 3000,
        "a write failed: {written} written"
    );
    let body = get(&emulator, "pid").await.text().await.unwrap();
    assert_eq!(body, pid.to_string(), "the same process: never killed");
    let counters = &emulator.counters().functions["f"];
    assert_eq!((counters.invocations, counters.errors), (2, 0));
}

/// A stream keeps its place in the function's concurrency until it ends,
/// long after the handler returned its `StreamResponse`.
#[tokio::test]
async fn a_stream_holds_its_place_in_the_concurrency() {
    let (mut reports, mut gates, emulator) =
        streaming(|config| config.functions[0].concurrency = 1).await;
    let mut response = get(&emulator, "stream:2").await;
    gates.open("piece-0").await;
    assert_eq!(read(&mut response, 8).await.unwrap().unwrap(), b"piece-0\n");
    let held = gates.next().await;
    assert_eq!(get(&emulator, "echo").await.status(), 429);
    held.open().await;
    assert_eq!(read(&mut response, 8).await.unwrap().unwrap(), b"piece-1\n");
    assert_eq!(read(&mut response, 1).await.unwrap(), None);
    assert_eq!(stream_report(&mut reports).await.1, 2);
    assert_eq!(emulator.counters().functions["f"].throttles, 1);
}
