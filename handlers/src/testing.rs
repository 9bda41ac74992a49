//! In-memory fakes of the store and notifier that record every call as the
//! manifest's `DynamoDbAction`, plus event fixtures and configs for tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest};
use protocol::{HttpRequest, HttpResponse, Message};

use crate::config::{
    ConnectConfig, DisconnectConfig, ForwardingConfig, PublicUrlTemplate, ResponseConfig,
};
use crate::manifest::{DynamoDbAction, Function, PENDING_BY_CONNECTION};
use crate::notifier::{Notifier, PostError};
use crate::store::{
    Claim, Connection, ConnectionStore, PendingRequest, PendingState, PendingStore, StoreError,
    Written,
};

mod chunks;

/// A store call to make fail with `StoreError::Injected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fail {
    Claim,
    GetClaim,
    ReleaseClaim,
    PutConnection,
    GetConnection,
    DeleteConnection,
    PutPending,
    GetPending,
    DeletePending,
    Complete,
    Query,
}

/// What a scripted PostToConnection answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    Ok,
    Gone,
    TooLarge,
    Other,
}

/// How the fake agent answers an `http_request` posted to it.
pub type Agent = Box<dyn Fn(&HttpRequest) -> Option<(usize, HttpResponse)> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct PendingItem {
    pub request: PendingRequest,
    pub completed: Option<HttpResponse>,
    pub polls: usize,
    /// (poll number, response): the fake agent's answer lands at that poll.
    pub answer_at: Option<(usize, HttpResponse)>,
}

#[derive(Default)]
struct State {
    connections: HashMap<String, Connection>,
    claims: HashMap<String, Claim>,
    pending: HashMap<String, PendingItem>,
    deleted_pending: Vec<String>,
    saved_pending: Vec<PendingRequest>,
    actions: Vec<DynamoDbAction>,
    posts: Vec<(String, String)>,
    post_script: VecDeque<Post>,
    failures: HashSet<Fail>,
    agent: Option<Agent>,
    chunks: chunks::FakeChunks,
}

/// Both tables and the connections, in memory.
#[derive(Default)]
pub struct Fake {
    state: Mutex<State>,
}

fn on(table: &'static str, action: &'static str) -> DynamoDbAction {
    DynamoDbAction {
        table,
        index: None,
        action,
    }
}

impl Fake {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    fn record(&self, action: DynamoDbAction, fail: Fail) -> Result<(), StoreError> {
        self.with(|s| {
            s.actions.push(action);
            if s.failures.contains(&fail) {
                Err(StoreError::backend(action.action, "injected failure"))
            } else {
                Ok(())
            }
        })
    }

    pub fn fail(&self, what: Fail) {
        self.with(|s| s.failures.insert(what));
    }

    pub fn script_posts(&self, posts: &[Post]) {
        self.with(|s| s.post_script.extend(posts.iter().copied()));
    }

    pub fn set_agent(&self, agent: Agent) {
        self.with(|s| s.agent = Some(agent));
    }

    pub fn insert_claim(&self, subdomain: &str, owner: &str, ttl: i64) {
        self.with(|s| {
            s.claims.insert(
                subdomain.to_string(),
                Claim {
                    subdomain: subdomain.to_string(),
                    owner_connection_id: owner.to_string(),
                    created_at: 0,
                    ttl,
                    ..Claim::default()
                },
            )
        });
    }

    /// A live connection with its claim.
    pub fn insert_connection(&self, connection_id: &str, subdomain: &str) {
        let now = crate::now_secs();
        self.insert_claim(subdomain, connection_id, now + 7500);
        self.with(|s| {
            s.connections.insert(
                connection_id.to_string(),
                Connection {
                    connection_id: connection_id.to_string(),
                    public_subdomain: subdomain.to_string(),
                    public_url: format!("https://{subdomain}.tunnel.example.com"),
                    created_at: now,
                    ttl: now + 7500,
                    agent_version: None,
                    agent_platform: None,
                    source_ip: None,
                    resume_token: Some(format!("{subdomain}.resume")),
                },
            )
        });
    }

    pub fn insert_pending(&self, request_id: &str, connection_id: &str) {
        self.with(|s| {
            s.pending.insert(
                request_id.to_string(),
                PendingItem {
                    request: PendingRequest {
                        request_id: request_id.to_string(),
                        connection_id: connection_id.to_string(),
                        api_gateway_request_id: "apigw".into(),
                        created_at: 0,
                        ttl: i64::MAX,
                    },
                    completed: None,
                    polls: 0,
                    answer_at: None,
                },
            )
        });
    }

    pub fn connection(&self, id: &str) -> Option<Connection> {
        self.with(|s| s.connections.get(id).cloned())
    }

    pub fn claim(&self, subdomain: &str) -> Option<Claim> {
        self.with(|s| s.claims.get(subdomain).cloned())
    }

    /// Any claim, as stored (tests of the resume rules).
    pub fn put_claim(&self, claim: Claim) {
        self.with(|s| s.claims.insert(claim.subdomain.clone(), claim));
    }

    pub fn claims(&self) -> Vec<String> {
        self.with(|s| s.claims.keys().cloned().collect())
    }

    pub fn pending(&self, request_id: &str) -> Option<PendingItem> {
        self.with(|s| s.pending.get(request_id).cloned())
    }

    pub fn pending_count(&self) -> usize {
        self.with(|s| s.pending.len())
    }

    pub fn deleted_pending(&self) -> Vec<String> {
        self.with(|s| s.deleted_pending.clone())
    }

    pub fn saved_pending(&self) -> Vec<PendingRequest> {
        self.with(|s| s.saved_pending.clone())
    }

    pub fn actions(&self) -> Vec<DynamoDbAction> {
        self.with(|s| s.actions.clone())
    }

    /// How many calls of this action (any table).
    pub fn count(&self, action: &str) -> usize {
        self.with(|s| s.actions.iter().filter(|a| a.action == action).count())
    }

    pub fn posts(&self) -> Vec<(String, Message)> {
        self.with(|s| {
            s.posts
                .iter()
                .map(|(id, text)| {
                    (
                        id.clone(),
                        Message::from_json(text).expect("posted valid JSON"),
                    )
                })
                .collect()
        })
    }

    /// Every recorded call is one `function` may make (its IAM policy).
    pub fn assert_within(&self, function: &Function) {
        for action in self.actions() {
            assert!(
                function.dynamodb.contains(&action),
                "{} called {action:?}, which its manifest entry does not allow",
                function.name
            );
        }
        if !function.posts_to_connections {
            assert!(
                self.with(|s| s.posts.is_empty()),
                "{} posted to a connection",
                function.name
            );
        }
    }
}

impl ConnectionStore for Fake {
    async fn claim_subdomain(&self, claim: &Claim, now: i64) -> Result<Written, StoreError> {
        self.record(on("connections", "PutItem"), Fail::Claim)?;
        Ok(self.with(|s| match s.claims.get(&claim.subdomain) {
            Some(existing) if existing.ttl >= now => Written::ConditionFailed,
            _ => {
                s.claims.insert(claim.subdomain.clone(), claim.clone());
                Written::Yes
            }
        }))
    }

    async fn get_claim(&self, subdomain: &str) -> Result<Option<Claim>, StoreError> {
        self.record(on("connections", "GetItem"), Fail::GetClaim)?;
        Ok(self.claim(subdomain))
    }

    async fn claim_reserved(&self, claim: &Claim, now: i64) -> Result<Written, StoreError> {
        self.record(on("connections", "PutItem"), Fail::Claim)?;
        Ok(self.with(|s| match s.claims.get(&claim.subdomain) {
            Some(existing)
                if existing.ttl >= now
                    && !(existing.released_at.is_some()
                        && existing.owner_user.is_some()
                        && existing.owner_user == claim.owner_user) =>
            {
                Written::ConditionFailed
            }
            _ => {
                s.claims.insert(claim.subdomain.clone(), claim.clone());
                Written::Yes
            }
        }))
    }

    async fn resume_claim(
        &self,
        claim: &Claim,
        token_hash: &str,
        now: i64,
    ) -> Result<Written, StoreError> {
        self.record(on("connections", "UpdateItem"), Fail::Claim)?;
        Ok(self.with(|s| match s.claims.get_mut(&claim.subdomain) {
            Some(existing)
                if existing.resume_token_hash.as_deref() == Some(token_hash)
                    && existing.ttl >= now
                    && (claim.owner_user.is_none()
                        || existing.owner_user.is_none()
                        || existing.owner_user == claim.owner_user) =>
            {
                existing.owner_connection_id = claim.owner_connection_id.clone();
                existing.created_at = claim.created_at;
                existing.ttl = claim.ttl;
                existing.resume_token_hash = claim.resume_token_hash.clone();
                existing.released_at = None;
                if claim.owner_user.is_none() {
                    existing.owner_user = None;
                }
                Written::Yes
            }
            _ => Written::ConditionFailed,
        }))
    }

    async fn release_claim(
        &self,
        subdomain: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Written, StoreError> {
        self.record(on("connections", "UpdateItem"), Fail::ReleaseClaim)?;
        Ok(self.with(|s| match s.claims.get_mut(subdomain) {
            Some(c) if c.owner_connection_id == owner => {
                c.released_at = Some(now);
                c.ttl = until;
                Written::Yes
            }
            _ => Written::ConditionFailed,
        }))
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.record(on("connections", "PutItem"), Fail::PutConnection)?;
        self.with(|s| {
            s.connections
                .insert(connection.connection_id.clone(), connection.clone())
        });
        Ok(())
    }

    async fn get_connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        self.record(on("connections", "GetItem"), Fail::GetConnection)?;
        Ok(self.connection(connection_id))
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.record(on("connections", "DeleteItem"), Fail::DeleteConnection)?;
        self.with(|s| s.connections.remove(connection_id));
        Ok(())
    }
}

impl PendingStore for Fake {
    async fn put_pending(&self, request: &PendingRequest) -> Result<(), StoreError> {
        self.record(on("pending", "PutItem"), Fail::PutPending)?;
        self.with(|s| {
            s.saved_pending.push(request.clone());
            s.pending.insert(
                request.request_id.clone(),
                PendingItem {
                    request: request.clone(),
                    completed: None,
                    polls: 0,
                    answer_at: None,
                },
            )
        });
        Ok(())
    }

    async fn get_pending(&self, request_id: &str) -> Result<Option<PendingState>, StoreError> {
        self.record(on("pending", "GetItem"), Fail::GetPending)?;
        Ok(self.with(|s| {
            let item = s.pending.get_mut(request_id)?;
            item.polls += 1;
            if let Some((at, response)) = &item.answer_at
                && item.polls >= *at
                && item.completed.is_none()
            {
                item.completed = Some(response.clone());
            }
            Some(match &item.completed {
                Some(r) => PendingState::Completed(r.clone()),
                None => PendingState::Pending,
            })
        }))
    }

    async fn delete_pending(&self, request_id: &str) -> Result<(), StoreError> {
        self.record(on("pending", "DeleteItem"), Fail::DeletePending)?;
        self.with(|s| {
            s.pending.remove(request_id);
            s.deleted_pending.push(request_id.to_string());
        });
        Ok(())
    }

    async fn complete_pending(
        &self,
        request_id: &str,
        connection_id: &str,
        response: &HttpResponse,
    ) -> Result<Written, StoreError> {
        self.record(on("pending", "UpdateItem"), Fail::Complete)?;
        Ok(self.with(|s| match s.pending.get_mut(request_id) {
            Some(item)
                if item.completed.is_none() && item.request.connection_id == connection_id =>
            {
                item.completed = Some(response.clone());
                Written::Yes
            }
            _ => Written::ConditionFailed,
        }))
    }

    async fn pending_for_connection(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        self.record(
            DynamoDbAction {
                table: "pending",
                index: Some(PENDING_BY_CONNECTION.name),
                action: "Query",
            },
            Fail::Query,
        )?;
        Ok(self.with(|s| {
            let mut ids: Vec<String> = s
                .pending
                .values()
                .filter(|p| p.request.connection_id == connection_id)
                .map(|p| p.request.request_id.clone())
                .collect();
            ids.sort();
            ids
        }))
    }
}

impl Notifier for Fake {
    async fn post(&self, connection_id: &str, data: &str) -> Result<(), PostError> {
        self.with(|s| {
            s.posts.push((connection_id.to_string(), data.to_string()));
            match s.post_script.pop_front().unwrap_or(Post::Ok) {
                Post::Ok => {}
                Post::Gone => return Err(PostError::Gone),
                Post::TooLarge => return Err(PostError::PayloadTooLarge),
                Post::Other => return Err(PostError::Other("boom".into())),
            }
            if let (Ok(Message::HttpRequest(req)), Some(agent)) =
                (Message::from_json(data), &s.agent)
                && let Some(answer) = agent(&req)
                && let Some(item) = s.pending.get_mut(&req.request_id)
            {
                item.answer_at = Some(answer);
            }
            Ok(())
        })
    }
}

pub fn test_event(name: &str) -> String {
    let path = format!("{}/test-events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn ws_event(name: &str) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_str(&test_event(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn http_event(name: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_str(&test_event(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn connect_config() -> ConnectConfig {
    ConnectConfig {
        connections_table: "connections".into(),
        domain_name: "tunnel.example.com".into(),
        public_url: PublicUrlTemplate::for_domain("tunnel.example.com"),
        auth: crate::auth::AuthSettings::Disabled,
    }
}

pub fn disconnect_config() -> DisconnectConfig {
    DisconnectConfig {
        connections_table: "connections".into(),
        pending_table: "pending".into(),
    }
}

pub fn response_config() -> ResponseConfig {
    ResponseConfig {
        connections_table: "connections".into(),
        pending_table: "pending".into(),
        websocket_api_endpoint: "https://abc.execute-api.eu-west-1.amazonaws.com/prod".into(),
    }
}

pub fn forwarding_config() -> ForwardingConfig {
    ForwardingConfig {
        connections_table: "connections".into(),
        pending_table: "pending".into(),
        domain_name: "tunnel.example.com".into(),
        websocket_api_endpoint: "https://abc.execute-api.eu-west-1.amazonaws.com/prod".into(),
        request_timeout: Duration::from_secs(25),
        poll_interval: None,
    }
}

/// Runs `f` with every `tracing` event of this thread captured as text (the
/// tests run on a current-thread runtime, so the whole future is covered).
pub async fn capture_logs<F: std::future::Future>(f: F) -> (F::Output, String) {
    use std::sync::Arc;

    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let out = f.await;
    drop(guard);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}
