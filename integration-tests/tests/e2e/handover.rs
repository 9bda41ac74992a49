//! The planned handover before API Gateway's connection age limit
//! (make-before-break): with the emulator ending connections after 20 s, one
//! agent under steady load hands its tunnel to a successor connection again
//! and again, and no visitor sees a failure. Also: a "going away" close
//! before the planned handover resumes at once, and a successor refused
//! once is tried again.

use std::time::Duration;

use agent::{BackoffConfig, ConnectionState, Event};
use emulator::DisconnectDelivery;
use itest::{
    BackendChoice, Deployed, DynamoDb, Load, LocalService, Stack, StackConfig, TestEnv, Tunnel,
};
use tokio::sync::broadcast::error::RecvError;

use crate::support::{PATIENCE, visitor};

/// The emulator's maximum connection age (the tests' stand-in for 2 h).
const MAX_AGE: Duration = Duration::from_secs(20);
/// 20 requests per second for long enough for three handovers; every tenth
/// takes 2 s at the service, so some straddle a handover.
const LOAD: Load = Load {
    every: Duration::from_millis(50),
    duration: Duration::from_secs(70),
    slow_every: 10,
    slow: Duration::from_secs(2),
};

#[tokio::test]
async fn no_request_fails_across_planned_handovers() -> anyhow::Result<()> {
    handovers(|_| None).await
}

/// `$disconnect` of the old connections late, then never: the handover must
/// not depend on it.
#[tokio::test]
async fn no_request_fails_across_handovers_when_disconnect_is_late_or_lost() -> anyhow::Result<()> {
    handovers(|elapsed| {
        Some(if elapsed < LOAD.duration / 2 {
            DisconnectDelivery::Delay(Duration::from_secs(5))
        } else {
            DisconnectDelivery::Drop
        })
    })
    .await
}

/// Runs the load; `delivery` says, at each tick, how the emulator delivers
/// `$disconnect` from then on (`None`: unchanged).
async fn handovers(
    delivery: impl Fn(Duration) -> Option<DisconnectDelivery>,
) -> anyhow::Result<()> {
    // One load at a time: two of them at once (40 requests/s, with their
    // function processes, on two cores) time visitors out. The rest of the
    // suite still runs alongside.
    static ONE_LOAD_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _load = ONE_LOAD_AT_A_TIME.lock().await;
    if Deployed::from_env()?.is_some() {
        eprintln!("skipped on a deployed stage: this test needs a 20-second connection age limit");
        return Ok(());
    }
    // Its own DynamoDB backend: 20 requests a second make hundreds of
    // DynamoDB calls a second, more than a shared moto serves next to the
    // other tests.
    let backend = DynamoDb::start(BackendChoice::from_env()?).await?;
    let stack = Stack::builder(StackConfig {
        max_connection_age: Some(MAX_AGE),
        ..StackConfig::for_tests()
    })
    .owning(backend)
    .start()
    .await?;
    let env = TestEnv::Local(Box::new(stack));
    let Some(stack) = env.local_or_skip("a 20-second connection age limit") else {
        return Ok(());
    };
    let service = LocalService::start("handover").await?;
    let tunnel = env.expose(&service.port()).await?;
    let url = tunnel.public_url().to_string();
    let mut events = tunnel.handle.subscribe();
    let outcome = LOAD
        .run(&visitor(), &url, &mut events, |elapsed| {
            if let Some(delivery) = delivery(elapsed) {
                stack
                    .emulator()
                    .set_disconnect_delivery("disconnect", delivery)?;
            }
            Ok(())
        })
        .await?;
    let (sent, renewals) = (outcome.sent, &outcome.renewals);
    let failed: Vec<String> = outcome
        .failures
        .iter()
        .map(|f| format!("request {}: {}: {}", f.id, f.kind, f.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(
        sent as u128 >= LOAD.duration.as_millis() / LOAD.every.as_millis() - 1,
        "only {sent} requests sent"
    );
    assert!(
        renewals.len() >= 3,
        "{} handovers in {:?} with connections ending after {MAX_AGE:?}",
        renewals.len(),
        LOAD.duration
    );
    assert!(renewals.iter().all(|&d| d == 0), "dropped: {renewals:?}");
    // Still the same URL, on a newer connection.
    on_a_newer_connection(&tunnel, &url)?;
    tunnel.shutdown().await?;
    Ok(())
}

/// The emulator ends connections after 4 s with "going away" while the
/// agent was told an hour (a server closing early, as API Gateway may): the
/// agent resumes at once, not after its backoff, on the same URL, and
/// visitors meanwhile get at most the usual 502 "reconnecting".
#[tokio::test]
async fn a_going_away_close_before_the_planned_handover_resumes_at_once() -> anyhow::Result<()> {
    if Deployed::from_env()?.is_some() {
        eprintln!("skipped on a deployed stage: this test needs a 4-second connection age limit");
        return Ok(());
    }
    let stack = Stack::builder(StackConfig {
        max_connection_age: Some(Duration::from_secs(4)),
        ..StackConfig::for_tests()
    })
    .configure_function("response", |f| {
        f.environment
            .insert("CONNECTION_MAX_AGE_SECONDS".into(), "3600".into());
    })
    .start()
    .await?;
    let service = LocalService::start("going-away").await?;
    let mut config = stack.agent_config(&service.port())?;
    // Backoff long enough to tell "at once" from it.
    config.backoff = BackoffConfig {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
        jitter: 0.0,
        reset_after: Duration::from_secs(60),
    };
    let tunnel = Tunnel::start(config).await?;
    assert_eq!(tunnel.established.max_age_secs, Some(3600));
    let url = tunnel.public_url().to_string();
    let mut events = tunnel.handle.subscribe();

    // Visitors all along, until the agent is back.
    let (back_tx, back_rx) = tokio::sync::watch::channel(false);
    let visitors = tokio::spawn({
        let (client, url) = (visitor(), url.clone());
        async move {
            let mut seen = Vec::new();
            let mut ticks = tokio::time::interval(Duration::from_millis(50));
            while !*back_rx.borrow() {
                ticks.tick().await;
                let started = tokio::time::Instant::now();
                let answer = client.get(format!("{url}/echo")).send().await;
                let status = answer.as_ref().map_or(0, |r| r.status().as_u16());
                let body = match answer {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                seen.push((started, status, body));
            }
            seen
        }
    });

    let lost = next_matching(&mut events, |e| matches!(e, Event::Disconnected { .. })).await?;
    let closed = tokio::time::Instant::now();
    assert!(
        matches!(&lost, Event::Disconnected { reason } if reason.contains("1001")),
        "{lost:?}"
    );
    let back = next_matching(&mut events, |e| matches!(e, Event::Connected(_))).await?;
    let gap = closed.elapsed();
    let back_at = tokio::time::Instant::now();
    let Event::Connected(now) = back else {
        unreachable!()
    };
    assert_eq!(now.public_url, url);
    assert_ne!(now.connection_id, tunnel.connection_id());
    assert!(gap < Duration::from_secs(3), "back after {gap:?}");
    let _ = back_tx.send(true);

    let seen = visitors.await?;
    let failed: Vec<_> = seen
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    for (started, status, body) in &failed {
        assert_eq!(*status, 502, "{body}");
        assert!(*started < back_at, "a 502 after the agent was back: {body}");
    }
    let answer = visitor().get(format!("{url}/echo")).send().await?;
    assert_eq!(answer.status(), 200);
    tunnel.shutdown().await?;
    Ok(())
}

/// The successor's `$connect` is throttled once (reserved concurrency 0):
/// the agent tries again a second later, while the old connection still
/// serves, and hands over without a loss.
#[tokio::test]
async fn a_successor_refused_once_is_tried_again() -> anyhow::Result<()> {
    if Deployed::from_env()?.is_some() {
        eprintln!("skipped on a deployed stage: this test needs a 12-second connection age limit");
        return Ok(());
    }
    let stack = Stack::start(StackConfig {
        max_connection_age: Some(Duration::from_secs(12)),
        ..StackConfig::for_tests()
    })
    .await?;
    let service = LocalService::start("retry").await?;
    let tunnel = stack.expose(&service.port()).await?;
    let url = tunnel.public_url().to_string();
    let mut events = tunnel.handle.subscribe();
    // The successor comes at 9 s.
    stack.emulator().set_reserved_zero("connect", true)?;
    let failed = next_matching(&mut events, |e| {
        matches!(e, Event::RenewFailed { .. } | Event::Disconnected { .. })
    })
    .await?;
    stack.emulator().set_reserved_zero("connect", false)?;
    assert_eq!(
        failed,
        Event::RenewFailed {
            reason: "the server answered the handshake with HTTP 500".into(),
            retry_in: Some(Duration::from_secs(1)),
        }
    );
    let renewed = next_matching(&mut events, |e| {
        matches!(e, Event::Renewed { .. } | Event::Disconnected { .. })
    })
    .await?;
    assert_eq!(renewed, Event::Renewed { dropped: 0 });
    on_a_newer_connection(&tunnel, &url)?;
    let answer = visitor().get(format!("{url}/echo")).send().await?;
    assert_eq!(answer.status(), 200);
    tunnel.shutdown().await?;
    Ok(())
}

/// The agent holds `url` on a connection newer than its first.
fn on_a_newer_connection(tunnel: &Tunnel, url: &str) -> anyhow::Result<()> {
    match &*tunnel.handle.state().borrow() {
        ConnectionState::Connected(now) => {
            assert_eq!(now.public_url, url);
            assert_ne!(now.connection_id, tunnel.connection_id());
            Ok(())
        }
        other => anyhow::bail!("the agent is {other:?}"),
    }
}

/// The next event matching `pred` (within the suite's patience).
async fn next_matching(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    pred: impl Fn(&Event) -> bool,
) -> anyhow::Result<Event> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(event) if pred(&event) => return Ok(event),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => anyhow::bail!("the agent stopped"),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no such event within {PATIENCE:?}"))?
}
