//! The Lambda side: environment, scaling, timeouts, crashes, init errors,
//! logs, counters and cleanup.

use std::collections::BTreeSet;

use emulator::{Emulator, LogSink, LogStream};
use serde_json::Value;

use crate::common::{Reports, WAIT, config_with, http_client, process_is_dead, start, wait_dead};

async fn get(emulator: &Emulator, mode: &str) -> reqwest::Response {
    http_client()
        .get(format!("{}/", emulator.http_url()))
        .header("x-fixture-mode", mode)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn processes_get_the_lambda_environment() {
    let reports = Reports::start().await;
    let mut config = config_with(
        &reports,
        &[
            ("ENDPOINT", "${MANAGEMENT_ENDPOINT}"),
            ("WS", "${WEBSOCKET_URL}|${HTTP_URL}"),
        ],
    );
    config.functions[0].memory_mb = 256;
    config.functions[0].timeout_secs = 7;
    let emulator = start(config).await;
    let before = i64::try_from(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let env: Value = get(&emulator, "env").await.json().await.unwrap();

    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "f");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    assert_eq!(env["_HANDLER"], "bootstrap");
    for name in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_LAMBDA_LOG_STREAM_NAME",
    ] {
        assert!(
            !env[name].as_str().unwrap_or("").is_empty(),
            "{name} is set"
        );
    }
    assert_eq!(env["AWS_REGION"], env["AWS_DEFAULT_REGION"]);
    assert_eq!(env["ENDPOINT"], emulator.management_endpoint());
    assert_eq!(
        env["WS"],
        format!("{}|{}", emulator.websocket_url(), emulator.http_url())
    );
    let arn = env["__invoked_function_arn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:lambda:") && arn.ends_with(":function:f"),
        "{arn}"
    );
    assert!(
        env["__xray_trace_id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    // Absolute epoch ms, about timeout_secs ahead.
    let deadline = env["__deadline_ms"].as_i64().unwrap();
    assert!(
        deadline > before + 5_000 && deadline <= before + 7_000 + 5_000,
        "deadline {deadline} vs {before}"
    );
}

#[tokio::test]
async fn scales_out_to_the_concurrency_and_reuses_warm_processes() {
    let mut reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    config.functions[0].concurrency = 2;
    config.functions[0].over_concurrency = emulator::OverConcurrency::Queue;
    let emulator = start(config).await;

    // Two at once: the second cannot wait for the first (it sleeps), so two processes.
    let (a, b) = tokio::join!(get(&emulator, "sleep:800"), get(&emulator, "sleep:800"));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let first = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    let second = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    assert_ne!(first, second);
    assert_eq!(emulator.counters().functions["f"].cold_starts, 2);

    // One more: a warm one answers.
    assert_eq!(get(&emulator, "echo").await.status(), 200);
    let third = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    assert!(third == first || third == second);

    // Three at once with concurrency 2, queueing asked for: the third waits
    // for a process, no third spawn.
    let (a, b, c) = tokio::join!(
        get(&emulator, "sleep:300"),
        get(&emulator, "sleep:300"),
        get(&emulator, "sleep:300")
    );
    assert_eq!(
        (
            a.status().as_u16(),
            b.status().as_u16(),
            c.status().as_u16()
        ),
        (200, 200, 200)
    );
    let counters = &emulator.counters().functions["f"];
    assert_eq!(counters.cold_starts, 2);
    assert_eq!(counters.invocations, 6);
    assert_eq!(counters.errors, 0);
    assert_eq!(counters.init_durations_ms.len(), 2);
}

#[tokio::test]
async fn a_timeout_kills_the_process_and_fails_the_invocation() {
    let mut reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    config.functions[0].timeout_secs = 1;
    let emulator = start(config).await;

    assert_eq!(get(&emulator, "sleep:20000").await.status(), 500);
    let pid = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    wait_dead(pid).await;
    assert_eq!(get(&emulator, "echo").await.status(), 200);
    let counters = &emulator.counters().functions["f"];
    assert_eq!(
        (counters.invocations, counters.errors, counters.cold_starts),
        (2, 1, 2)
    );
}

#[tokio::test]
async fn a_crash_fails_the_invocation_and_the_process_is_replaced() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    assert_eq!(get(&emulator, "crash").await.status(), 500);
    let crashed = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    assert_eq!(get(&emulator, "echo").await.status(), 200);
    let replacement = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    assert_ne!(crashed, replacement);
    let counters = &emulator.counters().functions["f"];
    assert_eq!(
        (counters.invocations, counters.errors, counters.cold_starts),
        (2, 1, 2)
    );
}

#[tokio::test]
async fn a_function_error_keeps_the_process_warm() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    assert_eq!(get(&emulator, "error").await.status(), 500);
    let first = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    assert_eq!(get(&emulator, "echo").await.status(), 200);
    let second = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    assert_eq!(first, second);
    assert_eq!(emulator.counters().functions["f"].cold_starts, 1);
}

#[tokio::test]
async fn init_errors_fail_the_invocation_and_end_the_process() {
    let reports = Reports::start().await;
    for init in ["error", "exit"] {
        let emulator = start(config_with(&reports, &[("FIXTURE_INIT", init)])).await;
        // `error` hangs after reporting: only the emulator killing it ends this quickly.
        let started = std::time::Instant::now();
        assert_eq!(get(&emulator, "echo").await.status(), 500, "{init}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "{init}: not the 10 s init timeout"
        );
        let counters = &emulator.counters().functions["f"];
        assert_eq!((counters.errors, counters.cold_starts), (1, 1), "{init}");
        assert!(
            counters.init_durations_ms.is_empty(),
            "{init}: never reached /next"
        );
    }
}

#[tokio::test]
async fn output_is_forwarded_line_by_line_with_the_function_name() {
    let reports = Reports::start().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let emulator = Emulator::builder(config_with(&reports, &[]))
        .log_sink(LogSink::Channel(tx))
        .start()
        .await
        .unwrap();
    assert_eq!(get(&emulator, "echo").await.status(), 200);
    let mut seen = BTreeSet::new();
    tokio::time::timeout(WAIT, async {
        while seen.len() < 2 {
            let line = rx.recv().await.unwrap();
            assert_eq!(&*line.function, "f");
            if line.stream == LogStream::Stdout
                && line.line.starts_with("fixture handling mode echo")
            {
                seen.insert("stdout");
            }
            if line.stream == LogStream::Stderr && line.line == "fixture stderr line" {
                seen.insert("stderr");
            }
        }
    })
    .await
    .expect("both lines arrive");
}

#[tokio::test]
async fn counters_are_served_as_json() {
    let reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    assert_eq!(get(&emulator, "echo").await.status(), 200);
    assert_eq!(get(&emulator, "error").await.status(), 500);
    let json: Value = http_client()
        .get(emulator.counters_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let f = &json["functions"]["f"];
    assert_eq!(f["invocations"], 2);
    assert_eq!(f["errors"], 1);
    assert_eq!(f["cold_starts"], 1);
    assert_eq!(f["init_durations_ms"].as_array().unwrap().len(), 1);
    assert!(f["init_durations_ms"][0].as_f64().unwrap() > 0.0);
    // Same data as the library call (floats compared loosely: serde_json's
    // default float parsing may differ from the printed value by one ulp).
    let library = &emulator.counters().functions["f"];
    assert_eq!(f["invocations"], library.invocations);
    assert_eq!(f["cold_starts"], library.cold_starts);
    assert!(
        (f["init_durations_ms"][0].as_f64().unwrap() - library.init_durations_ms[0]).abs() < 1e-6
    );
}

#[tokio::test]
async fn dropping_the_emulator_kills_every_process() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    // One process busy in a long invocation, then a second one left idle.
    let url = format!("{}/", emulator.http_url());
    let busy_request = tokio::spawn(async move {
        let _ = http_client()
            .get(url)
            .header("x-fixture-mode", "sleep:60000")
            .send()
            .await;
    });
    let busy = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    assert_eq!(get(&emulator, "echo").await.status(), 200);
    let idle = reports.next_where(|_| true).await["pid"].as_u64().unwrap();
    assert_ne!(idle, busy);
    assert!(!process_is_dead(idle) && !process_is_dead(busy));
    drop(emulator);
    wait_dead(idle).await;
    wait_dead(busy).await;
    busy_request.abort();
}
