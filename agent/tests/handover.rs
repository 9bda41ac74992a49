//! Handing the tunnel over to a new connection, against an in-process
//! server: a "going away" close (what API Gateway sends at its age or idle
//! limit) resumes at once, switching to a successor already on its way,
//! and a successor that cannot be opened is tried again while the old
//! connection has time left.

mod support;

use std::time::{Duration, Instant};

use agent::{Agent, BackoffConfig, ConnectionState, Event};
use protocol::Message;
use support::*;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// An agent of `server` with reconnect delays long enough to tell "at
/// once" from "after backoff".
fn slow_backoff_agent(server: &TunnelServer) -> agent::AgentHandle {
    let mut c = config(&server.endpoint, "3000");
    c.backoff = BackoffConfig {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(8),
        jitter: 0.0,
        reset_after: Duration::from_secs(60),
    };
    Agent::start(c)
}

/// The resume token the agent presented on a handshake.
fn resume_token(conn: &ServerConn) -> &str {
    conn.headers[protocol::HEADER_RESUME_TOKEN]
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn going_away_resumes_at_once_with_the_resume_token() {
    let server = TunnelServer::bind().await;
    let mut agent = slow_backoff_agent(&server);

    // Closed at once after it was established: backoff, no reconnect loop.
    let mut conn = server.accept().await;
    conn.establish_resumable("abc123", "c1", "r1", 3600).await;
    wait_event(&mut agent, |e| matches!(e, Event::Connected(_))).await;
    conn.close_going_away().await;
    let again = wait_event(&mut agent, |e| matches!(e, Event::Reconnecting { .. })).await;
    assert_eq!(
        again,
        Event::Reconnecting {
            delay: Duration::from_secs(2),
            attempt: 0
        }
    );

    // Up for a while (API Gateway's limits end connections after hours):
    // going away resumes with no delay, where backoff would wait 4 s now.
    let mut conn = server.accept().await;
    assert_eq!(resume_token(&conn), "r1");
    conn.establish_resumable("abc123", "c2", "r2", 3600).await;
    wait_event(&mut agent, |e| matches!(e, Event::Connected(_))).await;
    // Not synchronisation: the connection must have been up a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let closed = Instant::now();
    conn.close_going_away().await;
    let lost = wait_event(&mut agent, |e| matches!(e, Event::Disconnected { .. })).await;
    assert_eq!(
        lost,
        Event::Disconnected {
            reason: "the server closed the connection (code 1001, Going away)".into()
        }
    );
    let again = wait_event(&mut agent, |e| matches!(e, Event::Reconnecting { .. })).await;
    assert!(
        matches!(again, Event::Reconnecting { delay, .. } if delay.is_zero()),
        "{again:?}"
    );
    let mut conn = server.accept().await;
    assert!(
        closed.elapsed() < Duration::from_secs(1),
        "{:?}",
        closed.elapsed()
    );
    assert_eq!(resume_token(&conn), "r2");
    let established = conn.establish_resumable("abc123", "c3", "r3", 3600).await;
    wait_event(&mut agent, |e| matches!(e, Event::Connected(_))).await;
    assert_eq!(
        *agent.state().borrow(),
        ConnectionState::Connected(established)
    );

    // Any other close backs off as before.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    conn.ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let again = wait_event(&mut agent, |e| matches!(e, Event::Reconnecting { .. })).await;
    assert!(
        matches!(again, Event::Reconnecting { delay, .. } if delay >= Duration::from_secs(2)),
        "{again:?}"
    );
}

#[tokio::test]
async fn going_away_with_a_successor_on_its_way_switches_to_it() {
    let server = TunnelServer::bind().await;
    let mut agent = slow_backoff_agent(&server);
    let mut old = server.accept().await;
    // Four seconds: the successor comes a second before the limit.
    old.establish_resumable("abc123", "c1", "r1", 4).await;
    wait_event(&mut agent, |e| matches!(e, Event::Connected(_))).await;

    let mut successor = server.accept().await;
    assert_eq!(resume_token(&successor), "r1");
    assert_eq!(successor.recv().await, Message::Ready(protocol::Ready {}));
    // The server ends the old connection before the successor is confirmed.
    old.close_going_away().await;
    let lost = wait_event(&mut agent, |e| matches!(e, Event::Disconnected { .. })).await;
    assert_eq!(
        lost,
        Event::Disconnected {
            reason: "the server closed the connection (code 1001, Going away)".into()
        }
    );
    let established = successor.send_established("abc123", "c2", "r2", 4).await;
    // Live again on the successor: no new connection, no delay.
    let back = wait_event(&mut agent, |e| !matches!(e, Event::Request(_))).await;
    assert_eq!(back, Event::Connected(established.clone()));
    assert_eq!(
        *agent.state().borrow(),
        ConnectionState::Connected(established)
    );
    // And it answers there (an error: nothing listens on the target).
    let answer = successor.roundtrip(request("after", "GET", "/")).await;
    assert_eq!(answer_id(&answer), "after");
}

#[tokio::test]
async fn a_successor_that_cannot_be_opened_is_tried_again() {
    let server = TunnelServer::bind().await;
    let mut agent = Agent::start(config(&server.endpoint, "3000"));
    let mut old = server.accept().await;
    // Twelve seconds: the successor at 9 s, 3 s before the limit.
    old.establish_resumable("abc123", "c1", "r1", 12).await;
    wait_event(&mut agent, |e| matches!(e, Event::Connected(_))).await;

    // The first successor's handshake fails.
    assert!(server.accept_with_status(Some(500)).await.is_none());
    let refused = Instant::now();
    let failed = wait_event(&mut agent, |e| matches!(e, Event::RenewFailed { .. })).await;
    assert_eq!(
        failed,
        Event::RenewFailed {
            reason: "the server answered the handshake with HTTP 500".into(),
            retry_in: Some(Duration::from_secs(1)),
        }
    );
    // The next one a second later, with the same token, takes over.
    let mut successor = server.accept().await;
    assert!(refused.elapsed() >= Duration::from_millis(900));
    assert_eq!(resume_token(&successor), "r1");
    let established = successor
        .establish_resumable("abc123", "c2", "r2", 12)
        .await;
    let renewed = wait_event(&mut agent, |e| {
        matches!(e, Event::Renewed { .. } | Event::Disconnected { .. })
    })
    .await;
    assert_eq!(renewed, Event::Renewed { dropped: 0 });
    assert_eq!(
        *agent.state().borrow(),
        ConnectionState::Connected(established)
    );
    // The old connection said goodbye.
    assert!(old.recv_ws().await.is_close());
}
