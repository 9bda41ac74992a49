//! What the tests share: a visitor client, a raw protocol-level agent, and
//! helpers to read the tables.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use itest::TestEnv;
use protocol::{ConnectionEstablished, Message, Ready};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, client::IntoClientRequest as _},
};

/// A safety net for waits, never a synchronisation device.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A visitor: no redirects followed, no decompression, one pool per test.
pub fn visitor() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .expect("reqwest client")
}

/// Every value of a response header, in order.
pub fn header_values(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// The id of the one request posted to `connection_id`, as an attacker who
/// sniffed it would know it: from forwarding's `request posted` log line
/// (the pending table holds nothing before the answer).
pub async fn the_pending_request_of(
    stack: &itest::Stack,
    connection_id: &str,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // The span records it as a string: quoted.
    let needle = format!("connection_id=\"{connection_id}\"");
    loop {
        let ids: Vec<String> = stack
            .captured_logs()
            .iter()
            .filter(|line| line.contains("request posted") && line.contains(&needle))
            .filter_map(|line| {
                let rest = line.split("request_id=").nth(1)?;
                Some(rest.split([' ', '}', ',']).next()?.to_string())
            })
            .collect();
        match ids.as_slice() {
            [id] => return Ok(id.clone()),
            [] if tokio::time::Instant::now() < deadline => {
                // Waiting for forwarding's line to reach the capture.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => bail!("expected one posted request (ITEST_LOG=capture), found {other:?}"),
        }
    }
}

/// A hand-driven agent speaking the wire protocol over tokio-tungstenite,
/// for what the real agent would never send.
pub struct RawAgent {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    pub established: ConnectionEstablished,
}

impl RawAgent {
    /// Connects, sends `ready` and waits for `connection_established`.
    pub async fn connect(env: &TestEnv) -> anyhow::Result<RawAgent> {
        Self::connect_resuming(env, None).await
    }

    /// [`RawAgent::connect`], presenting `resume` as the resume token.
    pub async fn connect_resuming(env: &TestEnv, resume: Option<&str>) -> anyhow::Result<RawAgent> {
        let mut raw = Self::handshake(env, resume).await?;
        raw.send(&Message::Ready(Ready {})).await?;
        match raw.next_message().await? {
            Message::ConnectionEstablished(established) => raw.established = established,
            other => bail!("expected connection_established, got {}", other.kind()),
        }
        Ok(raw)
    }

    /// The handshake alone (presenting `resume`, if any): `$connect` has
    /// run, no `ready` is sent, so `established` is empty.
    pub async fn handshake(env: &TestEnv, resume: Option<&str>) -> anyhow::Result<RawAgent> {
        let mut request = env.websocket_url().into_client_request()?;
        // The current protocol: connect refuses older agents with 426.
        request.headers_mut().insert(
            protocol::HEADER_PROTOCOL,
            protocol::PROTOCOL_VERSION.to_string().parse()?,
        );
        if let Some(token) = env.token() {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
        }
        if let Some(resume) = resume {
            request
                .headers_mut()
                .insert(protocol::HEADER_RESUME_TOKEN, resume.parse()?);
        }
        let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
            .await
            .context("WebSocket handshake timed out")??;
        Ok(RawAgent {
            ws,
            established: ConnectionEstablished {
                connection_id: String::new(),
                subdomain: String::new(),
                public_url: String::new(),
                resume_token: None,
                max_age_secs: None,
            },
        })
    }

    /// Closes the connection (API Gateway then runs `$disconnect`).
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.ws.close(None).await?;
        Ok(())
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws
            .send(tungstenite::Message::text(text.to_string()))
            .await?;
        Ok(())
    }

    pub async fn send(&mut self, message: &Message) -> anyhow::Result<()> {
        self.send_text(&message.to_json()?).await
    }

    /// The next protocol message (WebSocket pings are answered by tungstenite).
    pub async fn next_message(&mut self) -> anyhow::Result<Message> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .context("no message from the server")?
                .context("the server closed the WebSocket")??;
            match frame {
                tungstenite::Message::Text(text) => return Ok(Message::from_json(&text)?),
                tungstenite::Message::Close(close) => bail!("closed by the server: {close:?}"),
                _ => continue,
            }
        }
    }

    /// Sends an application `ping` and waits for its `pong`: every message
    /// sent before it on this connection has been handled once this returns
    /// (when the response function runs one invocation at a time).
    pub async fn round_trip(&mut self) -> anyhow::Result<()> {
        self.send(&Message::Ping).await?;
        loop {
            match self.next_message().await? {
                Message::Pong => return Ok(()),
                Message::Error(e) => bail!("server error instead of pong: {e:?}"),
                _ => continue,
            }
        }
    }
}
