//! Over its concurrency a function is throttled, as Lambda does: the
//! invocation is refused at once (nothing queued, nothing retried) and each
//! API answers its own way (see the emulator README, "Throttling").

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{self, Message},
};

use crate::common::{Reports, WAIT, config_with, http_client, start, wait_counters};

/// One process, kept busy by an HTTP request that sleeps; returns once the
/// function has started it.
async fn hold_the_only_process(
    emulator: &emulator::Emulator,
    reports: &mut Reports,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let url = format!("{}/busy", emulator.http_url());
    let busy = tokio::spawn(async move {
        http_client()
            .get(url)
            .header("x-fixture-mode", "sleep:3000")
            .send()
            .await
            .expect("the busy request")
    });
    reports.next_where(|e| e["rawPath"] == "/busy").await;
    busy
}

fn one_process(reports: &Reports) -> emulator::Config {
    let mut config = config_with(reports, &[]);
    config.functions[0].concurrency = 1;
    config
}

#[tokio::test]
async fn the_http_api_answers_500_for_a_throttled_function() {
    let mut reports = Reports::start().await;
    let emulator = start(one_process(&reports)).await;
    let busy = hold_the_only_process(&emulator, &mut reports).await;

    let started = std::time::Instant::now();
    let response = http_client()
        .get(format!("{}/second", emulator.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"Internal Server Error"}"#
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2500),
        "refused at once, not queued behind the busy invocation"
    );
    assert_eq!(busy.await.unwrap().status(), 200);
    let counters = &emulator.counters().functions["f"];
    assert_eq!((counters.invocations, counters.throttles), (1, 1));
    assert_eq!(counters.errors, 0, "a throttle is not a function error");
}

#[tokio::test]
async fn queueing_can_be_asked_for() {
    let mut reports = Reports::start().await;
    let mut config = one_process(&reports);
    config.functions[0].over_concurrency = emulator::OverConcurrency::Queue;
    let emulator = start(config).await;
    let busy = hold_the_only_process(&emulator, &mut reports).await;
    let response = http_client()
        .get(format!("{}/second", emulator.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "waited for the process");
    assert_eq!(busy.await.unwrap().status(), 200);
    let counters = &emulator.counters().functions["f"];
    assert_eq!(
        (
            counters.invocations,
            counters.throttles,
            counters.cold_starts
        ),
        (2, 0, 1)
    );
}

#[tokio::test]
async fn a_throttled_connect_rejects_the_handshake_with_500() {
    let mut reports = Reports::start().await;
    let emulator = start(one_process(&reports)).await;
    let busy = hold_the_only_process(&emulator, &mut reports).await;
    match connect_async(emulator.websocket_url()).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 500),
        other => panic!(
            "expected a rejected handshake, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    busy.await.unwrap();
    assert_eq!(emulator.counters().functions["f"].throttles, 1);
}

#[tokio::test]
async fn a_throttled_message_gets_the_error_frame_and_the_connection_stays() {
    let mut reports = Reports::start().await;
    let emulator = start(one_process(&reports)).await;
    let (mut client, _) = connect_async(emulator.websocket_url()).await.unwrap();
    let connection_id =
        reports.next_event_type("CONNECT").await["event"]["requestContext"]["connectionId"].clone();
    let busy = hold_the_only_process(&emulator, &mut reports).await;

    client.send(Message::text(r#"{"n":1}"#)).await.unwrap();
    let frame = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Ok(Message::Text(text))) = client.next().await {
                return serde_json::from_str::<Value>(&text).unwrap();
            }
        }
    })
    .await
    .expect("an error frame");
    assert_eq!(frame["message"], "Internal server error");
    assert_eq!(frame["connectionId"], connection_id);

    busy.await.unwrap();
    client.send(Message::text(r#"{"n":2}"#)).await.unwrap();
    reports.next_where(|e| e["body"] == r#"{"n":2}"#).await;
    assert_eq!(emulator.counters().functions["f"].throttles, 1);
}

#[tokio::test]
async fn a_throttled_disconnect_is_lost() {
    let mut reports = Reports::start().await;
    let emulator = start(one_process(&reports)).await;
    let (mut client, _) = connect_async(emulator.websocket_url()).await.unwrap();
    reports.next_event_type("CONNECT").await;
    let busy = hold_the_only_process(&emulator, &mut reports).await;
    client.close(None).await.unwrap();
    wait_counters(&emulator, |c| c.functions["f"].throttles == 1).await;
    busy.await.unwrap();
    // The busy request (the only other invocation) came back; no DISCONNECT
    // was ever invoked.
    assert_eq!(emulator.counters().functions["f"].invocations, 2);
}
