//! `$disconnect` is best effort on AWS: the emulator can deliver it, drop it
//! or deliver it late, per function, changeable while it runs.

use std::time::{Duration, Instant};

use emulator::{DisconnectDelivery, Emulator};
use tokio_tungstenite::connect_async;

use crate::common::{Reports, WAIT, config_with, sdk_client, start};

/// Connects, returns the client and its connection id.
async fn connect(
    emulator: &Emulator,
    reports: &mut Reports,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
) {
    let (client, _) = connect_async(emulator.websocket_url()).await.unwrap();
    let id = reports.next_event_type("CONNECT").await["event"]["requestContext"]["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    (client, id)
}

/// Waits until `@connections` no longer knows `id`.
async fn wait_gone(emulator: &Emulator, id: &str) {
    let client = sdk_client(emulator, "f");
    tokio::time::timeout(WAIT, async {
        loop {
            match client.get_connection().connection_id(id).send().await {
                Ok(_) => tokio::task::yield_now().await,
                Err(e) if e.as_service_error().is_some_and(|e| e.is_gone_exception()) => return,
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await
    .expect("the connection went away");
}

#[tokio::test]
async fn a_dropped_disconnect_never_arrives_and_delivery_changes_at_run_time() {
    let mut reports = Reports::start().await;
    let mut config = config_with(&reports, &[]);
    config.functions[0].disconnect_delivery = DisconnectDelivery::Drop;
    let emulator = start(config).await;

    let (mut lost, lost_id) = connect(&emulator, &mut reports).await;
    lost.close(None).await.unwrap();
    // Gone from @connections: its `$disconnect` fate is decided.
    wait_gone(&emulator, &lost_id).await;

    emulator
        .set_disconnect_delivery("f", DisconnectDelivery::Deliver)
        .unwrap();
    let (mut delivered, delivered_id) = connect(&emulator, &mut reports).await;
    delivered.close(None).await.unwrap();
    let event = reports.next_event_type("DISCONNECT").await;
    assert_eq!(
        event["event"]["requestContext"]["connectionId"], delivered_id,
        "the first DISCONNECT is the second connection's: the first was dropped"
    );
    // connect, connect, disconnect: nothing else ran.
    assert_eq!(emulator.counters().functions["f"].invocations, 3);
    assert!(
        emulator
            .set_disconnect_delivery("nope", DisconnectDelivery::Drop)
            .is_err()
    );
}

#[tokio::test]
async fn a_delayed_disconnect_arrives_late() {
    const DELAY: Duration = Duration::from_millis(1500);
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    emulator
        .set_disconnect_delivery("f", DisconnectDelivery::Delay(DELAY))
        .unwrap();
    let (mut client, id) = connect(&emulator, &mut reports).await;
    let closed_at = Instant::now();
    client.close(None).await.unwrap();
    let event = reports.next_event_type("DISCONNECT").await;
    assert!(
        closed_at.elapsed() >= DELAY,
        "arrived after {:?}",
        closed_at.elapsed()
    );
    assert_eq!(event["event"]["requestContext"]["connectionId"], id);
    assert_eq!(
        event["event"]["requestContext"]["disconnectStatusCode"],
        1005
    );
}

#[tokio::test]
async fn delivery_is_immediate_by_default() {
    let mut reports = Reports::start().await;
    let emulator = start(config_with(&reports, &[])).await;
    let (mut client, id) = connect(&emulator, &mut reports).await;
    let closed_at = Instant::now();
    client.close(None).await.unwrap();
    let event = reports.next_event_type("DISCONNECT").await;
    assert_eq!(event["event"]["requestContext"]["connectionId"], id);
    assert!(closed_at.elapsed() < Duration::from_millis(1500));
}
