//! Agent authentication on `$connect`, reserved subdomains, and URLs that
//! survive reconnects (resume tokens). Local only: the tests mint tokens
//! with the local stack's secret.

use agent::Event;
use aws_sdk_dynamodb::types::AttributeValue;
use itest::{LocalService, Stack, TestEnv, Tunnel};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::support::{PATIENCE, RawAgent, header_values, visitor};

/// The handshake's HTTP status with these extra headers (101 = accepted).
async fn handshake_status(stack: &Stack, headers: &[(&str, String)]) -> anyhow::Result<u16> {
    let mut request = stack.websocket_url().into_client_request()?;
    // The current protocol: connect refuses older agents with 426.
    request.headers_mut().insert(
        protocol::HEADER_PROTOCOL,
        protocol::PROTOCOL_VERSION.to_string().parse()?,
    );
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes())?,
            value.parse()?,
        );
    }
    let result = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request)).await?;
    Ok(match result {
        Ok((_ws, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => return Err(e.into()),
    })
}

fn with_token(stack: &Stack, target: &str, token: Option<String>) -> anyhow::Result<agent::Config> {
    let mut config = stack.agent_config(target)?;
    config.token = token.map(agent::Token::new);
    Ok(config)
}

/// Waits for the agent's next `connection_established`.
async fn next_established(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
) -> anyhow::Result<agent::ConnectionEstablished> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Connected(established) = events.recv().await? {
                return anyhow::Ok(established);
            }
        }
    })
    .await?
}

/// DeleteConnection, signed as the forwarding function (which may).
async fn delete_connection(stack: &Stack, connection_id: &str) -> anyhow::Result<()> {
    itest::management::client_as(stack, handlers::manifest::FORWARDING.name)?
        .delete_connection()
        .connection_id(connection_id)
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_connection_without_a_valid_token_is_refused_with_401() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("minting tokens with the local secret") else {
        return Ok(());
    };
    assert_eq!(handshake_status(stack, &[]).await?, 401);
    assert_eq!(
        handshake_status(stack, &[("Authorization", "Bearer not.a.jwt".into())]).await?,
        401
    );
    let forged = protocol::auth::mint(
        &protocol::auth::Secret::generate(),
        &protocol::auth::Claims::new("mallory", agent::token::now_secs(), 3600, None),
    );
    assert_eq!(
        handshake_status(stack, &[("authorization", format!("Bearer {forged}"))]).await?,
        401
    );
    // The real agent stops with the plain-words reason instead of retrying.
    let service = LocalService::start("nobody").await?;
    let err = Tunnel::start(with_token(stack, &service.port(), None)?)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("401"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_valid_token_is_accepted_in_the_header_or_the_query() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("minting tokens with the local secret") else {
        return Ok(());
    };
    let token = stack.config().mint_token("alice", None).unwrap();
    assert_eq!(
        handshake_status(stack, &[("AUTHORIZATION", format!("bearer {token}"))]).await?,
        101
    );
    let mut request = format!("{}?token={token}", stack.websocket_url()).into_client_request()?;
    // The current protocol: connect refuses older agents with 426.
    request.headers_mut().insert(
        protocol::HEADER_PROTOCOL,
        protocol::PROTOCOL_VERSION.to_string().parse()?,
    );
    request.headers_mut().remove("authorization");
    let (_ws, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(response.status().as_u16(), 101);
    Ok(())
}

#[tokio::test]
async fn a_reserved_subdomain_is_honoured_and_never_has_two_owners() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("minting tokens with the local secret") else {
        return Ok(());
    };
    let service = LocalService::start("reserved").await?;
    let token = stack.config().mint_token("alice", Some("alice-app"));
    let tunnel = Tunnel::start(with_token(stack, &service.port(), token.clone())?).await?;
    assert_eq!(tunnel.subdomain(), "alice-app");
    let response = visitor()
        .get(format!("{}/hello", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(header_values(&response, "x-service"), ["reserved"]);

    // A second agent with the same grant while the first is live: 403, and it stops.
    let second = Tunnel::start(with_token(stack, &service.port(), token)?).await;
    match second {
        Err(err) => assert!(err.to_string().contains("(403)"), "{err}"),
        Ok(t) => panic!("a second owner got {}", t.subdomain()),
    }
    Ok(())
}

#[tokio::test]
async fn the_url_survives_a_server_side_close() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("the @connections DELETE of the local emulator") else {
        return Ok(());
    };
    let service = LocalService::start("phoenix").await?;
    let tunnel = env.expose(&service.port()).await?;
    let mut events = tunnel.handle.subscribe();
    let mut current = tunnel.established.clone();
    for round in 0..2 {
        delete_connection(stack, &current.connection_id).await?;
        let after = next_established(&mut events).await?;
        assert_ne!(after.connection_id, current.connection_id);
        assert_eq!(after.public_url, tunnel.public_url(), "round {round}");
        let response = visitor()
            .get(format!("{}/again", tunnel.public_url()))
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        assert_eq!(header_values(&response, "x-service"), ["phoenix"]);
        current = after;
    }
    Ok(())
}

#[tokio::test]
async fn a_resume_token_cannot_take_a_subdomain_held_by_another_live_connection()
-> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("minting tokens with the local secret") else {
        return Ok(());
    };
    let service = LocalService::start("holder").await?;
    let holder = env.expose(&service.port()).await?;
    // A made-up resume token for the holder's subdomain (right shape, wrong secret).
    let guessed = protocol::auth::generate_resume_token(holder.subdomain());
    let token = stack.config().mint_token("mallory", None).unwrap();
    let mut request = stack.websocket_url().into_client_request()?;
    // The current protocol: connect refuses older agents with 426.
    request.headers_mut().insert(
        protocol::HEADER_PROTOCOL,
        protocol::PROTOCOL_VERSION.to_string().parse()?,
    );
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    request
        .headers_mut()
        .insert(protocol::HEADER_RESUME_TOKEN, guessed.parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    use futures_util::{SinkExt as _, StreamExt as _};
    ws.send(tungstenite::Message::text(r#"{"type":"ready"}"#))
        .await?;
    let established = tokio::time::timeout(PATIENCE, async {
        while let Some(frame) = ws.next().await {
            if let tungstenite::Message::Text(text) = frame?
                && let protocol::Message::ConnectionEstablished(e) =
                    protocol::Message::from_json(&text)?
            {
                return anyhow::Ok(e);
            }
        }
        anyhow::bail!("closed before connection_established")
    })
    .await??;
    assert_ne!(established.subdomain, holder.subdomain());
    // The holder still serves its URL.
    let response = visitor()
        .get(format!("{}/still-mine", holder.public_url()))
        .send()
        .await?;
    assert_eq!(header_values(&response, "x-service"), ["holder"]);
    Ok(())
}

/// A reconnect whose connection dies before `ready` (so before the agent
/// could receive a successor token) voids nothing: the token the agent holds
/// still brings its URL back. And the tables hold only hashes of resume
/// tokens: no item, read raw, contains a token or its secret part.
#[tokio::test]
async fn a_reconnect_that_dies_before_ready_keeps_the_url_and_only_hashes_are_stored()
-> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("reading the connections table") else {
        return Ok(());
    };
    let first = RawAgent::connect(&env).await?;
    let subdomain = first.established.subdomain.clone();
    let t1 = first
        .established
        .resume_token
        .clone()
        .expect("a resume token");
    first.close().await?;

    // `$connect` runs for the token, then the connection dies before `ready`.
    RawAgent::handshake(&env, Some(&t1)).await?.close().await?;

    let third = RawAgent::connect_resuming(&env, Some(&t1)).await?;
    assert_eq!(third.established.subdomain, subdomain, "the URL was lost");
    let t3 = third
        .established
        .resume_token
        .clone()
        .expect("a resume token");
    assert_ne!(t3, t1);

    let claim = raw_items(stack, stack.tables().connections())
        .await?
        .into_iter()
        .find(|item| {
            item.get("connectionId") == Some(&AttributeValue::S(format!("sub#{subdomain}")))
        })
        .expect("the claim item");
    let hash = |token: &str| AttributeValue::S(protocol::auth::resume_token_hash(token));
    assert_eq!(claim.get("resumeTokenHash"), Some(&hash(&t1)));
    assert_eq!(claim.get("nextResumeTokenHash"), Some(&hash(&t3)));
    for table in [stack.tables().connections(), stack.tables().pending()] {
        for item in raw_items(stack, table).await? {
            let raw = format!("{item:?}");
            for token in [&t1, &t3] {
                let secret = token.rsplit('.').next().unwrap();
                assert!(
                    !raw.contains(secret),
                    "a resume token is stored in {table}: {item:?}"
                );
            }
        }
    }
    Ok(())
}

/// Every item of `table`, as DynamoDB returns it (one page: a test's tables are small).
async fn raw_items(
    stack: &itest::Stack,
    table: &str,
) -> anyhow::Result<Vec<std::collections::HashMap<String, AttributeValue>>> {
    let out = stack.dynamodb().scan().table_name(table).send().await?;
    anyhow::ensure!(
        out.last_evaluated_key.is_none(),
        "{table} has more than a page"
    );
    Ok(out.items.unwrap_or_default())
}

/// Issue 16: an agent of an older protocol (no `x-tunnel-protocol` header,
/// or an older version) is refused with 426 Upgrade Required at the
/// handshake, through the emulator's `$connect` (which hands the handshake
/// headers to the function as API Gateway does); the real agent connects.
#[tokio::test]
async fn an_agent_of_an_older_protocol_is_refused_with_426() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    for version in [None, Some("1")] {
        let mut request = env.websocket_url().into_client_request()?;
        if let Some(token) = env.token() {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
        }
        if let Some(version) = version {
            request
                .headers_mut()
                .insert(protocol::HEADER_PROTOCOL, version.parse()?);
        }
        let result =
            tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request)).await?;
        let status = match result {
            Ok((_ws, response)) => response.status().as_u16(),
            Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
            Err(e) => return Err(e.into()),
        };
        assert_eq!(status, 426, "protocol {version:?}");
    }
    let service = LocalService::start("current").await?;
    let tunnel = env.expose(&service.port()).await?;
    let response = reqwest::get(format!("{}/", tunnel.public_url())).await?;
    assert_eq!(response.status(), 200);
    Ok(())
}
