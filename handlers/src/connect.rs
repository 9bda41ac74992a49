//! `$connect`: refuse an agent of an older protocol (426), authenticate the
//! agent, give it a subdomain (the one its
//! resume token names, the one its token reserves, or a fresh one: see
//! [`crate::claims`]), store the connection, accept the upgrade.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use http::HeaderMap;
use protocol::auth::Claims;
use protocol::limits::{CONNECTION_TTL, TTL_SLACK};
use protocol::policy::{AccessPolicy, HEADER_POLICY, PolicyError};
use protocol::{
    HEADER_AGENT_PLATFORM, HEADER_AGENT_VERSION, HEADER_PROTOCOL, HEADER_RESUME_TOKEN,
    PROTOCOL_VERSION,
};
use tracing::{Instrument, error, info, info_span, warn};

use crate::auth::{Auth, Refused};
use crate::claims::{self, ClaimError, Claimant, Granted};
use crate::config::ConnectConfig;
use crate::logging::chain;
use crate::store::{Connection, ConnectionStore, StoreError};
use crate::websocket::{self, WebsocketResponse};

/// Longest agent version/platform string stored.
const MAX_AGENT_FIELD: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the event has no requestContext.connectionId")]
    MissingConnectionId,
    /// No `x-tunnel-protocol`, or one below [`PROTOCOL_VERSION`]: the agent
    /// would forward an empty body for a request stored in the bucket.
    #[error(
        "the agent speaks protocol {found:?}; this server needs {PROTOCOL_VERSION} (update the agent)"
    )]
    OldAgent { found: Option<String> },
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConnectError {
    /// The handshake's status: 426 for an old agent, 401/503 for
    /// authentication, 400 for an invalid access policy, 403 for a held
    /// reserved subdomain, 500 for everything else.
    pub fn response(&self) -> WebsocketResponse {
        match self {
            ConnectError::OldAgent { .. } => WebsocketResponse::UPGRADE_REQUIRED,
            ConnectError::Refused(Refused::Token(_)) => WebsocketResponse::UNAUTHORIZED,
            ConnectError::Refused(Refused::Unconfigured) => WebsocketResponse::SERVICE_UNAVAILABLE,
            ConnectError::Claim(ClaimError::SubdomainTaken { .. }) => WebsocketResponse::FORBIDDEN,
            ConnectError::Policy(_) => WebsocketResponse::BAD_REQUEST,
            _ => WebsocketResponse::INTERNAL_ERROR,
        }
    }
}

/// Handles one `$connect` event: 200 accepts the upgrade; 401, 403, 503 or
/// 500 reject it (API Gateway passes the status to the client).
pub async fn handle<C: ConnectionStore + Sync>(
    config: &ConnectConfig,
    auth: &Auth,
    store: &C,
    event: ApiGatewayWebsocketProxyRequest,
) -> WebsocketResponse {
    let connection_id = event
        .request_context
        .connection_id
        .clone()
        .unwrap_or_default();
    let span = info_span!("connect", connection_id = %connection_id);
    async move {
        match connect(config, auth, store, &event, &protocol::generate_subdomain).await {
            Ok(connection) => {
                info!(
                    subdomain = %connection.public_subdomain,
                    public_url = %connection.public_url,
                    agent_version = connection.agent_version.as_deref().unwrap_or(""),
                    agent_platform = connection.agent_platform.as_deref().unwrap_or(""),
                    "connection registered"
                );
                WebsocketResponse::OK
            }
            Err(e) => {
                let response = e.response();
                match &e {
                    ConnectError::Refused(Refused::Unconfigured) => {
                        error!(status = response.status_code, error = %e, "connection refused")
                    }
                    ConnectError::Refused(_)
                    | ConnectError::OldAgent { .. }
                    | ConnectError::Policy(_)
                    | ConnectError::Claim(ClaimError::SubdomainTaken { .. }) => {
                        warn!(status = response.status_code, error = %e, "connection refused")
                    }
                    _ => error!(error = %chain(&e), "connection rejected"),
                }
                response
            }
        }
    }
    .instrument(span)
    .await
}

/// A handshake header, matched case-insensitively (`HeaderMap` keys are
/// lowercase whatever the client sent), cleaned for storage.
fn agent_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    let clean: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_AGENT_FIELD)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// The agent's protocol ([`HEADER_PROTOCOL`]) is the current one or newer.
fn check_protocol(headers: &HeaderMap) -> Result<(), ConnectError> {
    let found = headers
        .get(HEADER_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match found.and_then(|v| v.parse::<u32>().ok()) {
        Some(version) if version >= PROTOCOL_VERSION => Ok(()),
        _ => Err(ConnectError::OldAgent {
            found: found.map(|v| v.chars().take(MAX_AGENT_FIELD).collect()),
        }),
    }
}

/// The access policy the agent declares ([`HEADER_POLICY`]); none without
/// the header or with an empty policy. Invalid is refused with 400 before
/// anything is written (never "no policy": the agent asked for protection).
fn declared_policy(headers: &HeaderMap) -> Result<Option<AccessPolicy>, PolicyError> {
    let Some(value) = headers.get(HEADER_POLICY) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| PolicyError::Malformed)?;
    let policy = AccessPolicy::from_header(value)?;
    Ok((!policy.is_empty()).then_some(policy))
}

pub(crate) async fn connect<C: ConnectionStore + Sync>(
    config: &ConnectConfig,
    auth: &Auth,
    store: &C,
    event: &ApiGatewayWebsocketProxyRequest,
    generate: &(dyn Fn() -> String + Sync),
) -> Result<Connection, ConnectError> {
    let connection_id = websocket::connection_id(event)
        .ok_or(ConnectError::MissingConnectionId)?
        .to_string();
    check_protocol(&event.headers)?;
    let now = crate::now_secs();
    let token: Option<Claims> = auth.check(event, now)?;
    let ttl = now + (CONNECTION_TTL + TTL_SLACK).as_secs() as i64;
    let policy = declared_policy(&event.headers)?;
    let claimant = Claimant {
        connection_id: &connection_id,
        user: token.as_ref().map(|c| c.sub.as_str()),
        reserved: token.as_ref().and_then(|c| c.subdomain.as_deref()),
        resume_token: event
            .headers
            .get(HEADER_RESUME_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(str::trim),
        now,
        ttl,
        policy: policy.as_ref(),
    };
    let Granted { subdomain } = claimant.claim(store, generate).await?;

    let connection = Connection {
        connection_id: connection_id.clone(),
        public_url: config.public_url.url(&subdomain),
        public_subdomain: subdomain.clone(),
        created_at: now,
        ttl,
        agent_version: agent_header(&event.headers, HEADER_AGENT_VERSION),
        agent_platform: agent_header(&event.headers, HEADER_AGENT_PLATFORM),
        source_ip: event.request_context.identity.source_ip.clone(),
    };
    if let Err(e) = store.put_connection(&connection).await {
        // A resumed subdomain stays resumable for the window; a failure here
        // only leaves a claim its TTL takes care of.
        if let Err(release) = claims::release(store, &subdomain, &connection_id, now).await {
            warn!(error = %chain(&release), %subdomain, "could not release the claim");
        }
        return Err(e.into());
    }
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Fail, Fake};
    use crate::manifest;
    use crate::store::Claim;
    use crate::testing::{connect_config, ws_event};

    #[tokio::test]
    async fn registers_the_connection_with_agent_headers_in_any_case() {
        let fake = Fake::default();
        let mut event = ws_event("connect.json");
        event
            .headers
            .insert("X-Tunnel-Agent-Version", "0.3.1".parse().unwrap());
        event
            .headers
            .insert("X-TUNNEL-AGENT-PLATFORM", "linux-x86_64".parse().unwrap());

        let response = handle(&connect_config(), &Auth::Disabled, &fake, event).await;
        assert_eq!(response, WebsocketResponse::OK);

        let conn = fake.connection("L0SM9cOFvHcCIhw=").expect("stored");
        assert_eq!(conn.public_subdomain.len(), protocol::limits::SUBDOMAIN_LEN);
        assert!(protocol::is_valid_subdomain(&conn.public_subdomain));
        assert_eq!(
            conn.public_url,
            format!("https://{}.tunnel.example.com", conn.public_subdomain)
        );
        assert_eq!(conn.agent_version.as_deref(), Some("0.3.1"));
        assert_eq!(conn.agent_platform.as_deref(), Some("linux-x86_64"));
        assert_eq!(conn.source_ip.as_deref(), Some("203.0.113.7"));
        let expected_ttl = conn.created_at + 2 * 3600 + 300;
        assert_eq!(conn.ttl, expected_ttl);

        let claim = fake.claim(&conn.public_subdomain).expect("claimed");
        assert_eq!(claim.owner_connection_id, "L0SM9cOFvHcCIhw=");
        assert_eq!(claim.ttl, expected_ttl);
        fake.assert_within(&manifest::CONNECT);
    }

    /// An agent of an older protocol (no header, an older version, junk)
    /// is refused with 426 before anything is checked or written; the
    /// current version and a newer one are let in.
    #[rstest::rstest]
    #[case::missing(None, 426)]
    #[case::older(Some("1"), 426)]
    #[case::junk(Some("two"), 426)]
    #[case::current(Some("2"), 200)]
    #[case::newer(Some(" 3 "), 200)]
    #[tokio::test]
    async fn an_agent_of_an_older_protocol_gets_426(
        #[case] header: Option<&str>,
        #[case] status: u16,
    ) {
        assert_eq!(PROTOCOL_VERSION, 2, "update the cases");
        let fake = Fake::default();
        let mut event = ws_event("connect.json");
        event.headers.remove(HEADER_PROTOCOL);
        if let Some(value) = header {
            event
                .headers
                .insert(HEADER_PROTOCOL, value.parse().unwrap());
        }
        let response = handle(&connect_config(), &Auth::Disabled, &fake, event).await;
        assert_eq!(response.status_code, status);
        if status == 426 {
            assert!(fake.actions().is_empty(), "{:?}", fake.actions());
        }
    }

    #[tokio::test]
    async fn without_agent_headers_stores_none() {
        let fake = Fake::default();
        let mut event = ws_event("connect.json");
        event.headers.remove(HEADER_AGENT_VERSION);
        event.headers.remove(HEADER_AGENT_PLATFORM);
        assert_eq!(
            handle(&connect_config(), &Auth::Disabled, &fake, event).await,
            WebsocketResponse::OK
        );
        let conn = fake.connection("L0SM9cOFvHcCIhw=").unwrap();
        assert_eq!((conn.agent_version, conn.agent_platform), (None, None));
    }

    #[tokio::test]
    async fn retries_with_a_new_subdomain_when_one_is_taken() {
        let fake = Fake::default();
        fake.insert_claim("taken1", "other=", i64::MAX);
        fake.insert_claim("taken2", "other=", i64::MAX);
        let names = std::sync::Mutex::new(vec!["free1", "taken2", "taken1"]);
        let generate = || names.lock().unwrap().pop().unwrap().to_string();
        let conn = connect(
            &connect_config(),
            &Auth::Disabled,
            &fake,
            &ws_event("connect.json"),
            &generate,
        )
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "free1");
        assert_eq!(fake.claim("taken1").unwrap().owner_connection_id, "other=");
        fake.assert_within(&manifest::CONNECT);
    }

    #[tokio::test]
    async fn takes_over_an_expired_claim() {
        let fake = Fake::default();
        fake.insert_claim("stale", "old=", 1);
        let conn = connect(
            &connect_config(),
            &Auth::Disabled,
            &fake,
            &ws_event("connect.json"),
            &|| "stale".to_string(),
        )
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "stale");
        assert_eq!(
            fake.claim("stale").unwrap().owner_connection_id,
            "L0SM9cOFvHcCIhw="
        );
    }

    #[tokio::test]
    async fn gives_up_after_bounded_attempts() {
        let fake = Fake::default();
        fake.insert_claim("same", "other=", i64::MAX);
        let err = connect(
            &connect_config(),
            &Auth::Disabled,
            &fake,
            &ws_event("connect.json"),
            &|| "same".to_string(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            ConnectError::Claim(ClaimError::NoFreeSubdomain)
        ));
        assert_eq!(fake.count("PutItem"), claims::MAX_CLAIM_ATTEMPTS);
        assert!(fake.connection("L0SM9cOFvHcCIhw=").is_none());
    }

    #[tokio::test]
    async fn releases_the_claim_when_the_connection_cannot_be_stored() {
        let fake = Fake::default();
        fake.fail(Fail::PutConnection);
        let response = handle(
            &connect_config(),
            &Auth::Disabled,
            &fake,
            ws_event("connect.json"),
        )
        .await;
        assert_eq!(response, WebsocketResponse::INTERNAL_ERROR);
        let claims = fake.claims();
        assert_eq!(claims.len(), 1);
        let claim = fake.claim(&claims[0]).unwrap();
        assert!(claim.released_at.is_some(), "{claim:?}");
        fake.assert_within(&manifest::CONNECT);
    }

    #[tokio::test]
    async fn store_failure_rejects_the_handshake() {
        let fake = Fake::default();
        fake.fail(Fail::Claim);
        let response = handle(
            &connect_config(),
            &Auth::Disabled,
            &fake,
            ws_event("connect.json"),
        )
        .await;
        assert_eq!(response, WebsocketResponse::INTERNAL_ERROR);
    }

    #[tokio::test]
    async fn missing_connection_id_is_rejected_without_store_calls() {
        let fake = Fake::default();
        let mut event = ws_event("connect.json");
        event.request_context.connection_id = None;
        assert_eq!(
            handle(&connect_config(), &Auth::Disabled, &fake, event).await,
            WebsocketResponse::INTERNAL_ERROR
        );
        assert!(fake.actions().is_empty());
        assert!(fake.claims().is_empty());
    }

    #[tokio::test]
    async fn public_url_follows_the_template() {
        let fake = Fake::default();
        let mut config = connect_config();
        config.public_url =
            crate::config::PublicUrlTemplate::new("https://api.example.com/{subdomain}").unwrap();
        let conn = connect(
            &config,
            &Auth::Disabled,
            &fake,
            &ws_event("connect.json"),
            &|| "abc".to_string(),
        )
        .await
        .unwrap();
        assert_eq!(conn.public_url, "https://api.example.com/abc");
    }

    // --- authentication, reserved subdomains, resuming ---

    use crate::testing::capture_logs;
    use protocol::auth::{Secret, generate_resume_token, mint, resume_token_hash};

    const CONN: &str = "L0SM9cOFvHcCIhw=";
    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn required() -> Auth {
        Auth::Required(Secret::new(SECRET).unwrap())
    }

    fn agent_token(user: &str, subdomain: Option<&str>, valid_for: i64) -> String {
        let claims = Claims::new(user, crate::now_secs(), valid_for, subdomain);
        mint(&Secret::new(SECRET).unwrap(), &claims)
    }

    fn event(token: Option<&str>, resume: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
        let mut event = ws_event("connect.json");
        if let Some(t) = token {
            event
                .headers
                .insert("Authorization", format!("Bearer {t}").parse().unwrap());
        }
        if let Some(r) = resume {
            event
                .headers
                .insert("X-Tunnel-Resume-Token", r.parse().unwrap());
        }
        event
    }

    /// A live claim of `owner` whose current resume token is returned.
    fn live_claim(fake: &Fake, subdomain: &str, owner: &str, user: Option<&str>) -> String {
        let token = generate_resume_token(subdomain);
        fake.put_claim(Claim {
            subdomain: subdomain.into(),
            owner_connection_id: owner.into(),
            created_at: 0,
            ttl: crate::now_secs() + 7500,
            resume_token_hash: Some(resume_token_hash(&token)),
            next_resume_token_hash: None,
            owner_user: user.map(str::to_string),
            released_at: None,
            policy: None,
        });
        token
    }

    fn release(fake: &Fake, subdomain: &str, until: i64) {
        let mut claim = fake.claim(subdomain).unwrap();
        claim.released_at = Some(crate::now_secs() - 1);
        claim.ttl = until;
        fake.put_claim(claim);
    }

    #[rstest::rstest]
    #[case::missing(None)]
    #[case::garbage(Some("not-a-jwt"))]
    #[tokio::test]
    async fn refused_with_401_without_a_valid_token(#[case] token: Option<&str>) {
        let fake = Fake::default();
        let (response, logs) = capture_logs(handle(
            &connect_config(),
            &required(),
            &fake,
            event(token, None),
        ))
        .await;
        assert_eq!(response, WebsocketResponse::UNAUTHORIZED);
        assert!(fake.actions().is_empty(), "{:?}", fake.actions());
        assert!(logs.contains("connection refused"), "{logs}");
    }

    #[tokio::test]
    async fn refused_with_401_when_expired_and_the_token_is_not_logged() {
        let fake = Fake::default();
        let token = agent_token("alice", None, -10);
        let (response, logs) = capture_logs(handle(
            &connect_config(),
            &required(),
            &fake,
            event(Some(&token), None),
        ))
        .await;
        assert_eq!(response, WebsocketResponse::UNAUTHORIZED);
        assert!(logs.contains("expired"), "{logs}");
        assert!(!logs.contains(&token) && !logs.contains(SECRET), "{logs}");
    }

    #[tokio::test]
    async fn unconfigured_refuses_every_connection_with_503_and_says_why() {
        let fake = Fake::default();
        let token = agent_token("alice", None, 60);
        let (response, logs) = capture_logs(handle(
            &connect_config(),
            &Auth::Unconfigured,
            &fake,
            event(Some(&token), None),
        ))
        .await;
        assert_eq!(response, WebsocketResponse::SERVICE_UNAVAILABLE);
        assert!(logs.contains("there is no usable secret"), "{logs}");
        assert!(fake.actions().is_empty());
    }

    #[tokio::test]
    async fn a_valid_token_is_accepted_and_its_user_recorded() {
        let fake = Fake::default();
        let token = agent_token("alice", None, 60);
        let (response, logs) = capture_logs(handle(
            &connect_config(),
            &required(),
            &fake,
            event(Some(&token), None),
        ))
        .await;
        assert_eq!(response, WebsocketResponse::OK);
        assert!(!logs.contains(&token), "{logs}");
        let conn = fake.connection(CONN).unwrap();
        let claim = fake.claim(&conn.public_subdomain).unwrap();
        assert_eq!(claim.owner_user.as_deref(), Some("alice"));
        // No resume token yet: the first is made and offered at `ready`.
        assert_eq!(
            (claim.resume_token_hash, claim.next_resume_token_hash),
            (None, None)
        );
        fake.assert_within(&manifest::CONNECT);
    }

    #[tokio::test]
    async fn disabled_accepts_without_a_token() {
        let fake = Fake::default();
        let response = handle(&connect_config(), &Auth::Disabled, &fake, event(None, None)).await;
        assert_eq!(response, WebsocketResponse::OK);
        let conn = fake.connection(CONN).unwrap();
        assert_eq!(fake.claim(&conn.public_subdomain).unwrap().owner_user, None);
    }

    #[tokio::test]
    async fn a_reserved_subdomain_is_granted() {
        let fake = Fake::default();
        let token = agent_token("alice", Some("alice-app"), 60);
        let conn = connect(
            &connect_config(),
            &required(),
            &fake,
            &event(Some(&token), None),
            &|| unreachable!("no random name for a reserved subdomain"),
        )
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "alice-app");
        assert_eq!(conn.public_url, "https://alice-app.tunnel.example.com");
        assert_eq!(fake.claim("alice-app").unwrap().owner_connection_id, CONN);
        fake.assert_within(&manifest::CONNECT);
    }

    #[rstest::rstest]
    #[case::same_user_live("alice", false)]
    #[case::other_user_live("bob", false)]
    #[case::other_user_released("bob", true)]
    #[tokio::test]
    async fn a_held_reserved_subdomain_is_refused_with_403(
        #[case] holder: &str,
        #[case] released: bool,
    ) {
        let fake = Fake::default();
        live_claim(&fake, "alice-app", "Other0000000AA=", Some(holder));
        if released {
            release(&fake, "alice-app", crate::now_secs() + 600);
        }
        let token = agent_token("alice", Some("alice-app"), 60);
        let response = handle(
            &connect_config(),
            &required(),
            &fake,
            event(Some(&token), None),
        )
        .await;
        assert_eq!(response, WebsocketResponse::FORBIDDEN);
        assert_eq!(
            fake.claim("alice-app").unwrap().owner_connection_id,
            "Other0000000AA="
        );
        assert!(fake.connection(CONN).is_none());
    }

    #[tokio::test]
    async fn a_restarted_agent_takes_its_released_reserved_subdomain_back() {
        // A new process has no resume token; the user's token is enough once
        // the old connection is gone.
        let fake = Fake::default();
        live_claim(&fake, "alice-app", "Old000000000AA=", Some("alice"));
        release(&fake, "alice-app", crate::now_secs() + 600);
        let token = agent_token("alice", Some("alice-app"), 60);
        let response = handle(
            &connect_config(),
            &required(),
            &fake,
            event(Some(&token), None),
        )
        .await;
        assert_eq!(response, WebsocketResponse::OK);
        let claim = fake.claim("alice-app").unwrap();
        assert_eq!(
            (claim.owner_connection_id.as_str(), claim.released_at),
            (CONN, None)
        );
    }

    #[rstest::rstest]
    #[case::live_before_its_disconnect(false)]
    #[case::released(true)]
    #[tokio::test]
    async fn the_resume_token_brings_the_subdomain_back_and_is_not_rotated_here(
        #[case] released: bool,
    ) {
        let fake = Fake::default();
        let old = live_claim(&fake, "abc123def456", "Old000000000AA=", None);
        if released {
            release(&fake, "abc123def456", crate::now_secs() + 600);
        }
        let conn = connect(
            &connect_config(),
            &Auth::Disabled,
            &fake,
            &event(None, Some(&old)),
            &|| unreachable!("resumed, no random name"),
        )
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "abc123def456");
        let claim = fake.claim("abc123def456").unwrap();
        assert_eq!(claim.owner_connection_id, CONN);
        assert_eq!(claim.released_at, None);
        assert_eq!(claim.ttl, conn.ttl);
        // The agent gets its next token only at `ready`: until it presents
        // that one, the token it holds stays the claim's.
        assert_eq!(claim.resume_token_hash, Some(resume_token_hash(&old)));
        assert_eq!(claim.next_resume_token_hash, None);
        fake.assert_within(&manifest::CONNECT);

        // This connection dies before `ready`: the same token works again.
        let mut again = event(None, Some(&old));
        again.request_context.connection_id = Some("Third0000000AA=".into());
        let third = connect(&connect_config(), &Auth::Disabled, &fake, &again, &|| {
            unreachable!("resumed again")
        })
        .await
        .unwrap();
        assert_eq!(third.public_subdomain, "abc123def456");
        assert_eq!(
            fake.claim("abc123def456").unwrap().owner_connection_id,
            "Third0000000AA="
        );
    }

    #[rstest::rstest]
    #[case::window_over(true, true)]
    #[case::wrong_token(false, false)]
    #[tokio::test]
    async fn a_bad_resume_token_gets_a_fresh_subdomain_and_leaves_the_claim(
        #[case] right_token: bool,
        #[case] expired: bool,
    ) {
        let fake = Fake::default();
        let held = live_claim(&fake, "abc123def456", "Other0000000AA=", None);
        if expired {
            release(&fake, "abc123def456", crate::now_secs() - 1);
        }
        // A token for the same subdomain that is not the holder's.
        let presented = if right_token {
            held
        } else {
            generate_resume_token("abc123def456")
        };
        let conn = connect(
            &connect_config(),
            &Auth::Disabled,
            &fake,
            &event(None, Some(&presented)),
            &|| "fresh".into(),
        )
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "fresh");
        assert_eq!(
            fake.claim("abc123def456").unwrap().owner_connection_id,
            "Other0000000AA="
        );
    }

    #[tokio::test]
    async fn a_resume_token_of_another_user_does_not_take_the_claim() {
        let fake = Fake::default();
        let bobs = live_claim(&fake, "abc123def456", "Bob000000000AA=", Some("bob"));
        let token = agent_token("alice", None, 60);
        let conn = connect(
            &connect_config(),
            &required(),
            &fake,
            &event(Some(&token), Some(&bobs)),
            &|| "fresh".into(),
        )
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "fresh");
        assert_eq!(
            fake.claim("abc123def456").unwrap().owner_connection_id,
            "Bob000000000AA="
        );
    }

    #[tokio::test]
    async fn a_reserved_subdomain_wins_over_a_resume_token_for_another_one() {
        let fake = Fake::default();
        let other = live_claim(&fake, "abc123def456", "Old000000000AA=", Some("alice"));
        release(&fake, "abc123def456", crate::now_secs() + 600);
        let token = agent_token("alice", Some("alice-app"), 60);
        let conn = connect(
            &connect_config(),
            &required(),
            &fake,
            &event(Some(&token), Some(&other)),
            &|| unreachable!(),
        )
        .await
        .unwrap();
        assert_eq!(conn.public_subdomain, "alice-app");
        assert_eq!(
            fake.claim("abc123def456").unwrap().owner_connection_id,
            "Old000000000AA="
        );
    }

    #[tokio::test]
    async fn the_declared_policy_is_stored_with_the_claim_in_the_same_write() {
        use protocol::policy::{AccessPolicy, HEADER_POLICY};
        let fake = Fake::default();
        let policy = AccessPolicy {
            allow_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            ..AccessPolicy::default()
        };
        let mut event = ws_event("connect.json");
        event
            .headers
            .insert(HEADER_POLICY, policy.to_header().parse().unwrap());
        let conn = connect(&connect_config(), &Auth::Disabled, &fake, &event, &|| {
            "fresh".to_string()
        })
        .await
        .unwrap();
        assert_eq!(
            fake.claim(&conn.public_subdomain).unwrap().policy,
            Some(policy)
        );
        fake.assert_within(&manifest::CONNECT);
        assert_eq!(
            fake.count("PutItem"),
            2,
            "the claim and the connection only"
        );
    }

    #[rstest::rstest]
    #[case::not_base64("%%%")]
    #[case::invalid_cidr("eyJhbGxvd19jaWRycyI6WyIxMC4wLjAuMC80MCJdfQ")]
    #[tokio::test]
    async fn an_invalid_policy_is_refused_with_400_before_any_write(#[case] value: &str) {
        let fake = Fake::default();
        let mut event = ws_event("connect.json");
        event
            .headers
            .insert(protocol::policy::HEADER_POLICY, value.parse().unwrap());
        let response = handle(&connect_config(), &Auth::Disabled, &fake, event).await;
        assert_eq!(response, WebsocketResponse::BAD_REQUEST);
        assert!(fake.claims().is_empty());
        assert_eq!(fake.count("PutItem"), 0);
    }
}
