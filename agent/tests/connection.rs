//! The connection's life: handshake, reconnects, heartbeat, shutdown, and
//! what the agent does with bad input from the server.

mod support;

use std::time::Duration;

use agent::{Agent, AgentError, ConnectionState, Event};
use protocol::{ErrorCode, Message};
use support::*;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn handshake_sends_headers_then_ready_and_reports_the_url() {
    let server = TunnelServer::bind().await;
    let mut agent = Agent::start(config(&server.endpoint, "3000"));
    let mut conn = server.accept().await;
    assert_eq!(conn.path, "/dev");
    assert_eq!(conn.headers["authorization"], "Bearer test-token");
    assert_eq!(
        conn.headers[protocol::HEADER_AGENT_VERSION],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        conn.headers[protocol::HEADER_PROTOCOL],
        protocol::PROTOCOL_VERSION.to_string().as_str()
    );
    let platform = conn.headers[protocol::HEADER_AGENT_PLATFORM]
        .to_str()
        .unwrap();
    assert_eq!(
        platform,
        format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
    );
    assert!(matches!(
        *agent.state().borrow(),
        ConnectionState::Connecting
    ));

    let established = conn.establish("abc123").await;
    assert_eq!(
        within("established", agent.established()).await.unwrap(),
        established
    );
    let event = wait_event(&mut agent, |e| matches!(e, Event::Connected(_))).await;
    assert_eq!(event, Event::Connected(established.clone()));
    assert_eq!(
        *agent.state().borrow(),
        ConnectionState::Connected(established)
    );
}

#[tokio::test]
async fn no_token_sends_no_authorization() {
    let server = TunnelServer::bind().await;
    let mut c = config(&server.endpoint, "3000");
    c.token = None;
    let _agent = Agent::start(c);
    let conn = server.accept().await;
    assert!(!conn.headers.contains_key("authorization"));
}

#[tokio::test]
async fn reconnects_after_the_server_drops_the_connection() {
    let mut s = setup(|_| {}).await;
    drop(s.conn);
    let mut conn = s.server.accept().await;
    conn.establish("abc123").await;
    // Events in order: lost, reconnecting, connecting, connected again.
    let lost = wait_event(&mut s.agent, |e| matches!(e, Event::Disconnected { .. })).await;
    let Event::Disconnected { reason } = lost else {
        unreachable!()
    };
    assert!(
        reason.contains("closed") || reason.contains("error"),
        "{reason}"
    );
    let again = wait_event(&mut s.agent, |e| matches!(e, Event::Reconnecting { .. })).await;
    assert!(
        matches!(again, Event::Reconnecting { attempt: 0, delay } if delay <= Duration::from_millis(20))
    );
    wait_event(&mut s.agent, |e| matches!(e, Event::Connected(_))).await;
    // And it serves on the new connection.
    let r = expect_response(conn.roundtrip(request("after", "GET", "/big/3")).await);
    assert_eq!(r.status_code, 200);
}

#[tokio::test]
async fn reconnects_after_a_close_frame_and_after_a_refused_tcp_connection() {
    let mut s = setup(|_| {}).await;
    s.conn
        .ws
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Away,
            reason: "going away".into(),
        }))
        .await
        .unwrap();
    let lost = wait_event(&mut s.agent, |e| matches!(e, Event::Disconnected { .. })).await;
    assert_eq!(
        lost,
        Event::Disconnected {
            reason: "the server closed the connection (code 1001, going away)".into()
        }
    );
    s.server.accept_and_drop().await; // a failed attempt
    let mut conn = s.server.accept().await;
    conn.establish("abc123").await;
    wait_event(&mut s.agent, |e| matches!(e, Event::Connected(_))).await;
}

#[tokio::test]
async fn unauthorized_handshake_stops_with_a_clear_error() {
    for status in [401u16, 403] {
        let server = TunnelServer::bind().await;
        let mut agent = Agent::start(config(&server.endpoint, "3000"));
        assert!(server.accept_with_status(Some(status)).await.is_none());
        let err = within("the agent to give up", agent.wait())
            .await
            .unwrap_err();
        assert_eq!(err, AgentError::Unauthorized { status });
        assert!(err.to_string().contains("token"), "{err}");
        assert_eq!(
            agent.established().await.unwrap_err(),
            AgentError::Unauthorized { status }
        );
    }
}

/// A server that needs a newer protocol answers 426: retrying cannot
/// help, so the agent stops at once and says to update it.
#[tokio::test]
async fn a_426_handshake_stops_with_update_the_agent() {
    let server = TunnelServer::bind().await;
    let mut agent = Agent::start(config(&server.endpoint, "3000"));
    assert!(server.accept_with_status(Some(426)).await.is_none());
    let err = within("the agent to give up", agent.wait())
        .await
        .unwrap_err();
    assert_eq!(err, AgentError::Outdated);
    assert!(err.to_string().contains("update the agent"), "{err}");
    assert!(err.to_string().contains("426"), "{err}");
}

#[tokio::test]
async fn other_handshake_failures_are_retried() {
    let server = TunnelServer::bind().await;
    let mut agent = Agent::start(config(&server.endpoint, "3000"));
    assert!(server.accept_with_status(Some(502)).await.is_none());
    let lost = wait_event(&mut agent, |e| matches!(e, Event::Disconnected { .. })).await;
    assert_eq!(
        lost,
        Event::Disconnected {
            reason: "the server answered the handshake with HTTP 502".into()
        }
    );
    let mut conn = server.accept().await;
    conn.establish("abc123").await;
    within("established", agent.established()).await.unwrap();
}

#[tokio::test]
async fn missing_connection_established_times_out_and_retries() {
    let server = TunnelServer::bind().await;
    let mut c = config(&server.endpoint, "3000");
    c.establish_timeout = Duration::from_millis(100);
    let mut agent = Agent::start(c);
    let mut conn = server.accept().await;
    assert_eq!(conn.recv().await, Message::Ready(protocol::Ready {}));
    let lost = wait_event(&mut agent, |e| matches!(e, Event::Disconnected { .. })).await;
    let Event::Disconnected { reason } = lost else {
        unreachable!()
    };
    assert!(reason.contains("did not confirm the tunnel"), "{reason}");
    let mut conn = server.accept().await;
    conn.establish("abc123").await;
    within("established", agent.established()).await.unwrap();
}

#[tokio::test]
async fn wss_endpoint_failure_is_an_error_not_a_panic() {
    // TLS to a plain TCP server that hangs up: must fail and retry, and
    // building the rustls config must not panic.
    let server = TunnelServer::bind().await;
    let endpoint = server.endpoint.replace("ws://", "wss://");
    let mut agent = Agent::start(config(&endpoint, "3000"));
    server.accept_and_drop().await;
    let lost = wait_event(&mut agent, |e| matches!(e, Event::Disconnected { .. })).await;
    let Event::Disconnected { reason } = lost else {
        unreachable!()
    };
    assert!(
        reason.starts_with("could not connect to wss://"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeat_pings_and_declares_a_silent_link_dead() {
    // Shorter than the helpers' safety net, which paused time also advances.
    let interval = Duration::from_secs(2);
    let mut s = setup(|c| {
        c.heartbeat_interval = interval;
        c.dead_after = interval * 2;
    })
    .await;
    let start = tokio::time::Instant::now();
    // Pings arrive every interval while the server answers them.
    for n in 1..=3u32 {
        assert_eq!(s.conn.recv().await, Message::Ping);
        let elapsed = start.elapsed();
        assert!(
            elapsed >= interval * n && elapsed < interval * n + Duration::from_millis(100),
            "ping {n} at {elapsed:?}"
        );
        s.conn.send(&Message::Pong).await;
    }
    // Then silence: one more ping, and at the next tick the link is dead.
    assert_eq!(s.conn.recv().await, Message::Ping);
    let lost = wait_event(&mut s.agent, |e| matches!(e, Event::Disconnected { .. })).await;
    let Event::Disconnected { reason } = lost else {
        unreachable!()
    };
    assert!(reason.contains("looks dead"), "{reason}");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= interval * 5 && elapsed < interval * 5 + Duration::from_millis(100),
        "{elapsed:?}"
    );
    s.server.accept().await.establish("abc123").await;
    wait_event(&mut s.agent, |e| matches!(e, Event::Connected(_))).await;
}

#[tokio::test]
async fn server_pings_are_answered_with_pong() {
    let mut s = setup(|_| {}).await;
    s.conn.send(&Message::Ping).await;
    assert_eq!(s.conn.recv().await, Message::Pong);
}

#[tokio::test]
async fn malformed_or_unexpected_messages_are_ignored() {
    let mut s = setup(|_| {}).await;
    for text in [
        "not json",
        "{}",
        r#"{"type":"http_request","request_id":"x"}"#,
        r#"{"type":"from_the_future","x":1}"#,
        r#"{"type":"http_response","request_id":"r","status_code":200}"#,
        r#"{"type":"ready"}"#,
        r#"{"type":"error","code":"internal_error","message":"server trouble"}"#,
    ] {
        s.conn.send_raw(WsMessage::text(text)).await;
    }
    s.conn.send_raw(WsMessage::binary(vec![0u8, 1, 2])).await;
    let r = expect_response(s.conn.roundtrip(request("ok", "GET", "/big/5")).await);
    assert_eq!(r.status_code, 200);
    let e = wait_event(&mut s.agent, |e| matches!(e, Event::ServerError { .. })).await;
    assert_eq!(
        e,
        Event::ServerError {
            code: ErrorCode::InternalError,
            message: "server trouble".into()
        }
    );
    assert!(matches!(
        *s.agent.state().borrow(),
        ConnectionState::Connected(_)
    ));
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_closes() {
    let mut s = setup(|c| c.shutdown_grace = Duration::from_secs(10)).await;
    let mut events = s.agent.subscribe();
    s.conn
        .send(&Message::HttpRequest(request("inflight", "GET", "/gate")))
        .await;
    within(
        "the request to reach the service",
        s.local.state.entered.notified(),
    )
    .await;

    let shutdown = tokio::spawn(s.agent.shutdown());
    within("shutting down", async {
        while !matches!(
            events.recv().await.unwrap(),
            Event::ShuttingDown { in_flight: 1 }
        ) {}
    })
    .await;
    // New requests are refused while draining…
    let e = expect_error(s.conn.roundtrip(request("late", "GET", "/big/1")).await);
    assert_eq!(e.code, ErrorCode::LocalServiceUnavailable);
    assert!(e.message.contains("shutting down"), "{}", e.message);
    // …the one in flight completes…
    s.local.state.gate.add_permits(1);
    let r = expect_response(s.conn.recv_answer().await);
    assert_eq!(r.request_id, "inflight");
    assert_eq!(protocol::decode_body(&r.body).unwrap(), b"released");
    // …then a normal close.
    match s.conn.recv_ws().await {
        WsMessage::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Answer the close (tungstenite queued the reply) so the agent need not wait.
    let _ = futures_util::SinkExt::flush(&mut s.conn.ws).await;
    within("shutdown to return", shutdown)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_fails_requests_that_outlast_the_grace_period() {
    let mut s = setup(|c| c.shutdown_grace = Duration::from_millis(100)).await;
    s.conn
        .send(&Message::HttpRequest(request("stuck", "GET", "/never")))
        .await;
    within(
        "the request to reach the service",
        s.local.state.entered.notified(),
    )
    .await;
    let shutdown = tokio::spawn(s.agent.shutdown());
    let e = expect_error(s.conn.recv_answer().await);
    assert_eq!(e.request_id.as_deref(), Some("stuck"));
    assert_eq!(e.code, ErrorCode::LocalServiceUnavailable);
    assert!(matches!(s.conn.recv_ws().await, WsMessage::Close(Some(_))));
    let _ = futures_util::SinkExt::flush(&mut s.conn.ws).await;
    within("shutdown to return", shutdown)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_while_reconnecting_returns_at_once() {
    let server = TunnelServer::bind().await;
    let mut c = config(&server.endpoint, "3000");
    c.backoff.initial = Duration::from_secs(3600);
    c.backoff.max = Duration::from_secs(3600);
    let mut agent = Agent::start(c);
    server.accept_and_drop().await;
    wait_event(&mut agent, |e| matches!(e, Event::Reconnecting { .. })).await;
    within("shutdown", agent.shutdown()).await.unwrap();
}

#[tokio::test]
async fn dropping_the_handle_stops_the_agent() {
    let mut s = setup(|_| {}).await;
    drop(s.agent);
    // The agent's side of the socket goes away.
    let next = within(
        "the socket to close",
        futures_util::StreamExt::next(&mut s.conn.ws),
    )
    .await;
    assert!(!matches!(next, Some(Ok(WsMessage::Text(_)))), "{next:?}");
}

/// Sends `message` even above the 128 KB a real server could send (the
/// agent accepts messages up to 512 KB).
async fn send_unchecked(conn: &mut ServerConn, message: &Message) {
    let json = serde_json::to_string(message).unwrap();
    conn.send_raw(WsMessage::text(json)).await;
}

/// Whatever the server sends, the agent neither panics nor stops serving:
/// ids it could not echo are dropped, long texts are clipped, and every
/// answer it does send fits in one message.
#[tokio::test]
async fn hostile_server_messages_never_crash_the_agent() {
    let mut s = setup(|_| {}).await;
    let huge = "x".repeat(200_000);
    // A request id no answer could carry: dropped, not answered.
    send_unchecked(
        &mut s.conn,
        &Message::HttpRequest(request(&huge, "GET", "/big/1")),
    )
    .await;
    s.conn
        .send_raw(WsMessage::text(
            serde_json::json!({"type": "body_chunk", "request_id": huge, "index": 0, "data": ""})
                .to_string(),
        ))
        .await;
    // Protocol 1's chunks from an old server: a `body_chunk` is an unknown
    // type and a head announcing chunks is malformed; neither is answered
    // (an empty body would be a wrong one), so the next answer is `m`'s.
    s.conn
        .send_raw(WsMessage::text(
            serde_json::json!({"type": "body_chunk", "request_id": "old", "index": 0, "data": "AAAA"})
                .to_string(),
        ))
        .await;
    s.conn
        .send_raw(WsMessage::text(
            serde_json::json!({
                "type": "http_request", "request_id": "old", "method": "POST", "uri": "/echo",
                "body": "", "body_chunks": {"count": 2, "length": 100_000}
            })
            .to_string(),
        ))
        .await;
    // A method that is long and invalid: a short invalid_request.
    let method = format!("GE T{huge}");
    send_unchecked(
        &mut s.conn,
        &Message::HttpRequest(request("m", &method, "/")),
    )
    .await;
    let e = expect_error(s.conn.recv_answer().await);
    assert_eq!(e.request_id.as_deref(), Some("m"));
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(e.message.len() < 200, "{} bytes", e.message.len());
    // A very long uri: answered, and logged clipped.
    let uri = format!("/{}", &huge[..20_000]);
    send_unchecked(
        &mut s.conn,
        &Message::HttpRequest(request("u", "GET", &uri)),
    )
    .await;
    let r = expect_response(s.conn.recv_answer().await);
    assert_eq!(r.request_id, "u");
    assert_eq!(r.status_code, 404);
    let event = wait_event(
        &mut s.agent,
        |e| matches!(e, Event::Request(log) if log.request_id == "u"),
    )
    .await;
    let Event::Request(log) = event else {
        unreachable!()
    };
    assert!(log.path.len() < 1000, "{} bytes", log.path.len());
    // A connection-level error with a huge text: reported, clipped.
    send_unchecked(
        &mut s.conn,
        &Message::Error(protocol::ErrorMessage {
            request_id: None,
            code: ErrorCode::InternalError,
            message: huge.clone(),
        }),
    )
    .await;
    let e = wait_event(&mut s.agent, |e| matches!(e, Event::ServerError { .. })).await;
    let Event::ServerError { message, .. } = e else {
        unreachable!()
    };
    assert!(message.chars().count() <= 513, "{} chars", message.len());
    // A `connection_established` with absurd fields: ignored.
    let before = s.agent.state().borrow().clone();
    let bogus: protocol::ConnectionEstablished = serde_json::from_value(serde_json::json!({
        "connection_id": "c", "subdomain": "abc123", "public_url": huge,
    }))
    .unwrap();
    send_unchecked(&mut s.conn, &Message::ConnectionEstablished(bogus)).await;
    // Still connected, to the same URL, and serving.
    let r = expect_response(s.conn.roundtrip(request("ok", "GET", "/big/3")).await);
    assert_eq!(r.status_code, 200);
    assert_eq!(*s.agent.state().borrow(), before);
    assert!(matches!(before, ConnectionState::Connected(_)));
}

/// The server's `connection_established` with a resume token.
async fn establish_with_resume(conn: &mut ServerConn, token: &str) {
    assert_eq!(conn.recv().await, Message::Ready(protocol::Ready {}));
    let established: protocol::ConnectionEstablished = serde_json::from_value(serde_json::json!({
        "connection_id": "conn=",
        "subdomain": "abc123",
        "public_url": "https://abc123.tunnel.test",
        "resume_token": token,
    }))
    .unwrap();
    conn.send(&Message::ConnectionEstablished(established))
        .await;
}

#[tokio::test]
async fn a_403_on_reconnect_is_retried_while_the_old_connection_may_hold_the_name() {
    let server = TunnelServer::bind().await;
    let mut agent = Agent::start(config(&server.endpoint, "3000"));
    let mut conn = server.accept().await;
    establish_with_resume(&mut conn, "abc123.resume").await;
    within("established", agent.established()).await.unwrap();
    drop(conn);
    // The server still thinks the old connection holds the subdomain.
    for _ in 0..2 {
        assert!(server.accept_with_status(Some(403)).await.is_none());
    }
    let lost = wait_event(
        &mut agent,
        |e| matches!(e, Event::Disconnected { reason } if reason.contains("403")),
    )
    .await;
    let Event::Disconnected { reason } = lost else {
        unreachable!()
    };
    assert!(
        reason.contains("previous connection") && reason.contains("retrying for up to 10 min"),
        "{reason}"
    );
    // Then it lets go: the agent gets its URL back.
    let mut conn = server.accept().await;
    assert_eq!(conn.headers[protocol::HEADER_RESUME_TOKEN], "abc123.resume");
    establish_with_resume(&mut conn, "abc123.resume2").await;
    wait_event(&mut agent, |e| matches!(e, Event::Connected(_))).await;
}

#[tokio::test]
async fn a_403_on_reconnect_gives_up_after_the_retry_window() {
    let server = TunnelServer::bind().await;
    let mut c = config(&server.endpoint, "3000");
    c.forbidden_retry_for = Duration::from_millis(300);
    let mut agent = Agent::start(c);
    let mut conn = server.accept().await;
    conn.establish("abc123").await;
    within("established", agent.established()).await.unwrap();
    drop(conn);
    let refuse = async {
        loop {
            server.accept_with_status(Some(403)).await;
        }
    };
    let err = tokio::select! {
        result = within("the agent to give up", agent.wait()) => result.unwrap_err(),
        () = refuse => unreachable!(),
    };
    assert_eq!(err, AgentError::Unauthorized { status: 403 });
}
