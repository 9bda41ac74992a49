//! Who may reach a tunnel (issue 18): the access policy the agent declares
//! is checked by the forwarding function at the edge. Refused visitors get
//! 401/403, the agent's user sees a `rejected` notice (a console line and an
//! inspector entry), and the local service never sees the request (each
//! test's last request is an admitted one, and it is the first the service
//! records).

use std::time::Duration;

use agent::Event;
use agent::inspect::{Filter, Inspector, Limits};
use base64::Engine as _;
use handlers::config::Routing;
use hmac::{KeyInit as _, Mac as _};
use itest::{LocalService, Stack, StackConfig, TestEnv, Tunnel};
use protocol::policy::{self, AccessPolicy, Webhook, WebhookProvider};
use tokio::sync::broadcast;

use crate::support::{PATIENCE, header_values, visitor};

const WAIT: Duration = PATIENCE;

async fn protected(
    env: &TestEnv,
    service: &LocalService,
    policy: AccessPolicy,
) -> anyhow::Result<(Tunnel, broadcast::Receiver<Event>)> {
    let mut config = env.agent_config(&service.port())?;
    config.policy = Some(policy);
    let tunnel = Tunnel::start(config).await?;
    let events = tunnel.handle.subscribe();
    Ok((tunnel, events))
}

/// The next `rejected` notice the agent got.
async fn next_rejected(
    events: &mut broadcast::Receiver<Event>,
) -> anyhow::Result<policy::Rejected> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Rejected(r) = events.recv().await? {
                return anyhow::Ok(r);
            }
        }
    })
    .await?
}

/// The first request the service saw is `uri`: nothing refused got there.
async fn first_seen_is(service: &LocalService, uri: &str) -> anyhow::Result<itest::service::Seen> {
    let seen = service
        .next_request(WAIT)
        .await
        .expect("the service saw it");
    assert_eq!(seen.uri, uri, "a refused request reached the local service");
    Ok(seen)
}

fn hex_hmac(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn basic_auth_admits_only_the_right_credentials_on_both_routings() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("basic").await?;
    let policy = AccessPolicy {
        basic_auth: vec![policy::hash_credential("ann", "correct horse battery")],
        ..AccessPolicy::default()
    };
    let (tunnel, mut events) = protected(&env, &service, policy.clone()).await?;
    let client = visitor();
    let url = format!("{}/private", tunnel.public_url());

    let none = client.get(&url).send().await?;
    assert_eq!(none.status(), 401);
    assert_eq!(
        header_values(&none, "www-authenticate"),
        vec![r#"Basic realm="tunnel", charset="UTF-8""#]
    );
    let rejected = next_rejected(&mut events).await?;
    assert_eq!((rejected.method.as_str(), rejected.status), ("GET", 401));
    assert!(rejected.path.ends_with("/private"), "{rejected:?}");

    let wrong = client
        .get(&url)
        .basic_auth("ann", Some("correct horse"))
        .send()
        .await?;
    assert_eq!(wrong.status(), 401);
    next_rejected(&mut events).await?;

    let right = client
        .get(format!("{url}?ok"))
        .basic_auth("ann", Some("correct horse battery"))
        .send()
        .await?;
    assert_eq!(right.status(), 200);
    let seen = first_seen_is(&service, "/private?ok").await?;
    assert!(
        seen.header_values("authorization").is_empty(),
        "the consumed Authorization header reached the service"
    );

    // Host routing (a stack of its own: a stack routes one way) reads the
    // same policy from the claim.
    if env
        .local_or_skip("host routing on the local emulator")
        .is_some()
    {
        let stack = Stack::start(StackConfig {
            routing: Routing::Host,
            ..StackConfig::for_tests()
        })
        .await?;
        let service = LocalService::start("basic-host").await?;
        let mut config = stack.agent_config(&service.port())?;
        config.policy = Some(AccessPolicy {
            basic_auth: vec![policy::hash_credential("ann", "correct horse battery")],
            ..AccessPolicy::default()
        });
        let by_host = Tunnel::start(config).await?;
        let host = stack.host_for(by_host.subdomain());
        let refused = client
            .get(format!("{}/by-host", stack.http_url()))
            .header("host", &host)
            .send()
            .await?;
        assert_eq!(refused.status(), 401);
        let admitted = client
            .get(format!("{}/by-host?ok", stack.http_url()))
            .header("host", &host)
            .basic_auth("ann", Some("correct horse battery"))
            .send()
            .await?;
        assert_eq!(admitted.status(), 200);
        first_seen_is(&service, "/by-host?ok").await?;
        by_host.shutdown().await?;
        stack.shutdown().await;
    }
    tunnel.shutdown().await?;
    env.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn allow_cidr_refuses_other_source_addresses() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let Some(_) = env.local_or_skip("choosing the source address") else {
        return Ok(());
    };
    let service = LocalService::start("cidr").await?;
    // The emulator reports the TCP peer as sourceIp: 127.0.0.1 is "here",
    // 127.0.0.2 "elsewhere".
    let policy = AccessPolicy {
        allow_cidrs: vec![
            "127.0.0.1/32".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        ..AccessPolicy::default()
    };
    // With the request inspector: a refusal is listed there too.
    let inspector = Inspector::new(Limits::default());
    let mut config = env.agent_config(&service.port())?;
    config.policy = Some(policy);
    let tunnel = Tunnel::start_with_inspector(config, inspector.clone()).await?;
    let mut events = tunnel.handle.subscribe();
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(PATIENCE)
        .build()?;
    let refused = elsewhere
        .get(format!("{}/from-elsewhere", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(refused.status(), 403);
    let rejected = next_rejected(&mut events).await?;
    assert_eq!(rejected.source_ip.as_deref(), Some("127.0.0.2"));
    // The inspector heard it before the console did: listed, marked
    // refused at the edge, with nothing captured.
    let refused = Filter {
        status: Some("refused".into()),
        ..Filter::default()
    };
    let listed = inspector.summaries(&refused);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].uri.ends_with("/from-elsewhere"), "{listed:?}");
    assert_eq!(listed[0].status, Some(403));
    let why = listed[0].refused.as_ref().expect("marked refused");
    assert_eq!(why.source_ip.as_deref(), Some("127.0.0.2"));
    let kept = inspector.exchange(listed[0].id).expect("kept");
    assert!(kept.request.headers.is_empty() && kept.request.body.size == 0);
    let replay = inspector.replay(listed[0].id, Default::default()).await;
    assert!(
        matches!(replay, Err(agent::inspect::ReplayError::Refused(_))),
        "{replay:?}"
    );

    let here = visitor()
        .get(format!("{}/from-here", tunnel.public_url()))
        .send()
        .await?;
    assert_eq!(here.status(), 200);
    first_seen_is(&service, "/from-here").await?;
    tunnel.shutdown().await?;
    env.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_url_token_opens_the_tunnel_and_its_cookie_keeps_it_open() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("token").await?;
    let token = policy::generate_url_token();
    let policy = AccessPolicy {
        url_token_hash: Some(policy::url_token_hash(&token)),
        ..AccessPolicy::default()
    };
    let (tunnel, mut events) = protected(&env, &service, policy).await?;
    let client = visitor();
    let base = tunnel.public_url();

    let missing = client.get(format!("{base}/page")).send().await?;
    assert_eq!(missing.status(), 403);
    let wrong = client
        .get(format!(
            "{base}/page?tunnel_token={}",
            policy::generate_url_token()
        ))
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);
    let rejected = next_rejected(&mut events).await?;
    assert!(!rejected.path.contains("tunnel_token"), "{rejected:?}");

    let visit = client
        .get(format!("{base}/page?a=1&tunnel_token={token}"))
        .send()
        .await?;
    assert_eq!(visit.status(), 200);
    let cookies = header_values(&visit, "set-cookie");
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("tunnel_token_"))
        .expect("the token visit sets a cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    let seen = first_seen_is(&service, "/page?a=1").await?;
    assert!(seen.header_values("cookie").is_empty());

    // An asset request with the cookie only, as a browser sends it.
    let pair = cookie.split(';').next().unwrap();
    let asset = client
        .get(format!("{base}/app.js"))
        .header("cookie", format!("theme=dark; {pair}"))
        .send()
        .await?;
    assert_eq!(asset.status(), 200);
    let seen = first_seen_is(&service, "/app.js").await?;
    assert_eq!(seen.header_values("cookie"), vec![b"theme=dark".as_slice()]);
    tunnel.shutdown().await?;
    env.shutdown().await;
    Ok(())
}

fn webhook(provider: WebhookProvider, secret: &str) -> AccessPolicy {
    AccessPolicy {
        webhook: Some(Webhook {
            provider,
            secret: secret.into(),
            header: None,
        }),
        ..AccessPolicy::default()
    }
}

/// Posts `body` with `headers` to the tunnel's `/hook`; the status.
async fn post_hook(
    tunnel: &Tunnel,
    query: &str,
    headers: &[(&str, String)],
    body: &str,
) -> anyhow::Result<u16> {
    let mut request = visitor()
        .post(format!("{}/hook?{query}", tunnel.public_url()))
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    Ok(request.send().await?.status().as_u16())
}

#[tokio::test]
async fn github_signatures_are_verified_before_the_agent() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let service = LocalService::start("github").await?;
    let secret = "It's a Secret to Everybody";
    let (tunnel, mut events) =
        protected(&env, &service, webhook(WebhookProvider::Github, secret)).await?;
    let body = r#"{"action":"opened","number":1}"#;
    let signature = format!("sha256={}", hex_hmac(secret, &[body.as_bytes()]));
    let header = |s: &str| vec![("x-hub-signature-256", s.to_string())];

    let tampered = body.replace("opened", "closed");
    assert_eq!(
        post_hook(&tunnel, "tampered", &header(&signature), &tampered).await?,
        401
    );
    assert_eq!(
        next_rejected(&mut events).await?.reason,
        "webhook signature does not match"
    );
    assert_eq!(post_hook(&tunnel, "unsigned", &[], body).await?, 401);
    assert_eq!(
        post_hook(&tunnel, "valid", &header(&signature), body).await?,
        200
    );
    let seen = first_seen_is(&service, "/hook?valid").await?;
    assert_eq!(seen.body, body.as_bytes());
    tunnel.shutdown().await?;
    env.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn stripe_and_slack_signatures_are_verified_with_their_timestamps() -> anyhow::Result<()> {
    let env = TestEnv::start().await?;
    let now = agent::token::now_secs();
    let body = r#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    let stripe = LocalService::start("stripe").await?;
    let secret = "whsec_e2e";
    let (tunnel, _events) =
        protected(&env, &stripe, webhook(WebhookProvider::Stripe, secret)).await?;
    let sign = |t: i64, body: &str| {
        let t = t.to_string();
        format!(
            "t={t},v1={}",
            hex_hmac(secret, &[t.as_bytes(), b".", body.as_bytes()])
        )
    };
    let h = |v: String| vec![("stripe-signature", v)];
    assert_eq!(
        post_hook(
            &tunnel,
            "tampered",
            &h(sign(now, body)),
            &body.replace('1', "2")
        )
        .await?,
        401
    );
    assert_eq!(
        post_hook(&tunnel, "stale", &h(sign(now - 600, body)), body).await?,
        401
    );
    assert_eq!(
        post_hook(&tunnel, "valid", &h(sign(now, body)), body).await?,
        200
    );
    first_seen_is(&stripe, "/hook?valid").await?;
    tunnel.shutdown().await?;

    let slack = LocalService::start("slack").await?;
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let (tunnel, _events) =
        protected(&env, &slack, webhook(WebhookProvider::Slack, secret)).await?;
    let sign = |t: i64, body: &str| {
        let t = t.to_string();
        vec![
            ("x-slack-request-timestamp", t.clone()),
            (
                "x-slack-signature",
                format!(
                    "v0={}",
                    hex_hmac(secret, &[b"v0:", t.as_bytes(), b":", body.as_bytes()])
                ),
            ),
        ]
    };
    assert_eq!(
        post_hook(
            &tunnel,
            "tampered",
            &sign(now, body),
            &body.replace('1', "2")
        )
        .await?,
        401
    );
    assert_eq!(
        post_hook(&tunnel, "stale", &sign(now - 600, body), body).await?,
        401
    );
    assert_eq!(
        post_hook(&tunnel, "valid", &sign(now, body), body).await?,
        200
    );
    first_seen_is(&slack, "/hook?valid").await?;
    tunnel.shutdown().await?;
    env.shutdown().await;
    Ok(())
}

/// A policy the server cannot read is refused at the handshake (400), not
/// silently dropped: the agent asked for protection.
#[tokio::test]
async fn an_invalid_policy_is_refused_at_the_handshake() -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let env = TestEnv::start().await?;
    let Some(stack) = env.local_or_skip("a raw handshake") else {
        return Ok(());
    };
    let status = |value: String| {
        let stack: &Stack = stack;
        let token = env.token();
        async move {
            let mut request = stack.websocket_url().into_client_request()?;
            // The current protocol: connect refuses older agents with 426.
            request.headers_mut().insert(
                protocol::HEADER_PROTOCOL,
                protocol::PROTOCOL_VERSION.to_string().parse()?,
            );
            if let Some(token) = token {
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
            }
            request
                .headers_mut()
                .insert(policy::HEADER_POLICY, value.parse()?);
            let result =
                tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request)).await?;
            anyhow::Ok(match result {
                Ok((_ws, response)) => response.status().as_u16(),
                Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
                Err(e) => return Err(e.into()),
            })
        }
    };
    let bad_cidr = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"allow_cidrs":["10.0.0.0/40"]}"#);
    assert_eq!(status(bad_cidr).await?, 400);
    assert_eq!(
        status("A".repeat(policy::MAX_POLICY_HEADER_BYTES + 1)).await?,
        400
    );
    let good = AccessPolicy {
        allow_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        ..AccessPolicy::default()
    };
    assert_eq!(status(good.to_header()).await?, 101);
    env.shutdown().await;
    Ok(())
}
