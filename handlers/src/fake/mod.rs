//! In-memory stand-ins for the two tables and `@connections`, for unit tests
//! of the handlers' logic (feature `fake`; always built for this crate's own
//! tests).
//!
//! [`Fake`] implements every store interface with the same conditions as the
//! DynamoDB expressions, and holds items shaped like DynamoDB's (a pending
//! request keeps its response as JSON, its parts as a set). It is trusted
//! because it passes the same contract suite as the DynamoDB stores
//! ([`crate::contract`]; run on the fake below, on DynamoDB in
//! `integration-tests/tests/dynamo_store.rs`).
//!
//! On top, for tests: every call is recorded as the manifest's
//! [`DynamoDbAction`] (checked against a function's IAM with
//! [`Fake::assert_within`]); any call can be made to fail ([`Fail`]); posts
//! answer as scripted ([`Post`]), GetConnection too ([`Probe`]); and a scripted agent ([`Agent`]) answers a
//! posted request after a given number of polls.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use protocol::{HttpRequest, HttpResponse, Message};

use crate::manifest::{DynamoDbAction, Function};
use crate::notifier::{Notifier, PostError, Presence, ProbeError};
use crate::store::{Claim, Connection, PendingRequest, StoreError, parse_response_data};

mod store;

/// A store call to make fail with a backend error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fail {
    Claim,
    GetClaim,
    ReleaseClaim,
    /// Offering a successor resume token (at `ready`).
    OfferToken,
    PutConnection,
    GetConnection,
    DeleteConnection,
    PutPending,
    GetPending,
    DeletePending,
    /// Every write to a pending request or its chunks.
    Complete,
    Query,
}

/// What a scripted PostToConnection answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    Ok,
    Gone,
    TooLarge,
    Forbidden,
    Other,
}

/// What a scripted GetConnection answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Connected,
    Gone,
    Forbidden,
    Other,
}

/// How the fake agent answers an `http_request` posted to it: the poll of
/// the pending item at which its response lands, and the response.
pub type Agent = Box<dyn Fn(&HttpRequest) -> Option<(usize, HttpResponse)> + Send + Sync>;

/// A pending request as a test sees it.
#[derive(Debug, Clone)]
pub struct PendingItem {
    pub request: PendingRequest,
    /// The stored response once completed.
    pub completed: Option<HttpResponse>,
}

/// A pending request item with the attributes DynamoDB would hold.
#[derive(Debug, Clone)]
struct PendingRow {
    request: PendingRequest,
    completed: bool,
    /// `responseData`: the response's JSON (for a chunked one, the head's).
    response_data: Option<String>,
    chunk_count: Option<u32>,
    received_parts: BTreeSet<i64>,
    polls: usize,
    /// (poll number, response): the fake agent's answer lands at that poll.
    answer_at: Option<(usize, HttpResponse)>,
}

impl PendingRow {
    fn new(request: PendingRequest) -> Self {
        Self {
            request,
            completed: false,
            response_data: None,
            chunk_count: None,
            received_parts: BTreeSet::new(),
            polls: 0,
            answer_at: None,
        }
    }

    fn response(&self) -> Result<Option<HttpResponse>, StoreError> {
        match (&self.response_data, self.completed) {
            (Some(json), true) => parse_response_data(&self.request.request_id, json).map(Some),
            _ => Ok(None),
        }
    }
}

#[derive(Default)]
struct State {
    connections: HashMap<String, Connection>,
    claims: HashMap<String, Claim>,
    pending: HashMap<String, PendingRow>,
    /// `<id>#<index>` → (owner, bytes).
    chunk_items: HashMap<String, (String, Vec<u8>)>,
    deleted_pending: Vec<String>,
    saved_pending: Vec<PendingRequest>,
    actions: Vec<DynamoDbAction>,
    posts: Vec<(String, String)>,
    post_script: VecDeque<Post>,
    /// Connection ids GetConnection was asked about, in order.
    probes: Vec<String>,
    probe_script: VecDeque<Probe>,
    failures: HashSet<Fail>,
    agent: Option<Agent>,
    /// The body the fake agent's chunked answers carry (any request id).
    answer_body: Option<Vec<u8>>,
    /// Successful `complete_chunked` calls.
    chunk_completions: usize,
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

    /// Records the call; fails it if told to.
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

    // --- scripting ---

    pub fn fail(&self, what: Fail) {
        self.with(|s| s.failures.insert(what));
    }

    pub fn script_posts(&self, posts: &[Post]) {
        self.with(|s| s.post_script.extend(posts.iter().copied()));
    }

    /// GetConnection answers these in order, then `Connected`.
    pub fn script_probes(&self, probes: &[Probe]) {
        self.with(|s| s.probe_script.extend(probes.iter().copied()));
    }

    pub fn set_agent(&self, agent: Agent) {
        self.with(|s| s.agent = Some(agent));
    }

    /// Chunk items read by `get_chunks` for any request: `body` split.
    pub fn chunked_answer_body(&self, body: Vec<u8>) {
        self.with(|s| s.answer_body = Some(body));
    }

    // --- items put in place ---

    pub fn insert_claim(&self, subdomain: &str, owner: &str, ttl: i64) {
        self.put_claim(Claim {
            subdomain: subdomain.to_string(),
            owner_connection_id: owner.to_string(),
            created_at: 0,
            ttl,
            ..Claim::default()
        });
    }

    /// Any claim, as stored (tests of the resume rules).
    pub fn put_claim(&self, claim: Claim) {
        self.with(|s| s.claims.insert(claim.subdomain.clone(), claim));
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
                },
            )
        });
    }

    pub fn insert_pending(&self, request_id: &str, connection_id: &str) {
        let request = PendingRequest {
            request_id: request_id.to_string(),
            connection_id: connection_id.to_string(),
            api_gateway_request_id: "apigw".into(),
            created_at: 0,
            ttl: i64::MAX,
        };
        self.with(|s| {
            s.pending
                .insert(request_id.to_string(), PendingRow::new(request))
        });
    }

    // --- inspection ---

    pub fn connection(&self, id: &str) -> Option<Connection> {
        self.with(|s| s.connections.get(id).cloned())
    }

    pub fn claim(&self, subdomain: &str) -> Option<Claim> {
        self.with(|s| s.claims.get(subdomain).cloned())
    }

    pub fn claims(&self) -> Vec<String> {
        self.with(|s| s.claims.keys().cloned().collect())
    }

    /// The request and, once completed, its stored response.
    pub fn pending(&self, request_id: &str) -> Option<PendingItem> {
        self.with(|s| {
            let row = s.pending.get(request_id)?;
            Some(PendingItem {
                request: row.request.clone(),
                completed: row.response().expect("stored response is valid JSON"),
            })
        })
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

    /// Number of chunk items stored.
    pub fn chunk_items(&self) -> usize {
        self.with(|s| s.chunk_items.len())
    }

    /// Owner and bytes of one chunk item.
    pub fn chunk_item(&self, request_id: &str, index: u32) -> Option<(String, Vec<u8>)> {
        let key = crate::store::chunk_key(request_id, index);
        self.with(|s| s.chunk_items.get(&key).cloned())
    }

    pub fn chunk_completions(&self) -> usize {
        self.with(|s| s.chunk_completions)
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

    /// The connection ids GetConnection was asked about, in order.
    pub fn probes(&self) -> Vec<String> {
        self.with(|s| s.probes.clone())
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
        let may = |method| function.manage_connections.contains(&method);
        if !may(crate::manifest::POST_TO_CONNECTION) {
            assert!(
                self.with(|s| s.posts.is_empty()),
                "{} posted to a connection, which its manifest entry does not allow",
                function.name
            );
        }
        if !may(crate::manifest::GET_CONNECTION) {
            assert!(
                self.with(|s| s.probes.is_empty()),
                "{} called GetConnection, which its manifest entry does not allow",
                function.name
            );
        }
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
                Post::Forbidden => return Err(PostError::Forbidden("forbidden".into())),
                Post::Other => return Err(PostError::Other("boom".into())),
            }
            if let (Ok(Message::HttpRequest(req)), Some(agent)) =
                (Message::from_json(data), &s.agent)
                && let Some(answer) = agent(&req)
                && let Some(row) = s.pending.get_mut(&req.request_id)
            {
                row.answer_at = Some(answer);
            }
            Ok(())
        })
    }

    async fn presence(&self, connection_id: &str) -> Result<Presence, ProbeError> {
        self.with(|s| {
            s.probes.push(connection_id.to_string());
            match s.probe_script.pop_front().unwrap_or(Probe::Connected) {
                Probe::Connected => Ok(Presence::Connected),
                Probe::Gone => Ok(Presence::Gone),
                Probe::Forbidden => Err(ProbeError::Forbidden("forbidden".into())),
                Probe::Other => Err(ProbeError::Other("boom".into())),
            }
        })
    }
}

/// The fake passes the contract suite, as the DynamoDB stores do.
#[cfg(test)]
mod contract {
    use super::Fake;

    macro_rules! on_the_fake {
        ($($case:ident),* $(,)?) => {
            $(
                #[tokio::test]
                async fn $case() {
                    crate::contract::$case(&Fake::default()).await.unwrap();
                }
            )*

            #[test]
            fn every_case_of_the_suite_runs() {
                assert_eq!([$(stringify!($case)),*], crate::contract::CASES);
            }
        };
    }

    on_the_fake! {
        claims_and_resume_follow_their_conditions,
        resume_tokens_stay_valid_until_their_successor_is_presented,
        resuming_respects_the_user,
        reserved_subdomains_go_back_only_to_their_user,
        the_policy_lives_with_the_claim_until_release,
        missing_claims_are_never_created,
        connections_round_trip_and_delete_idempotently,
        pending_requests_complete_once_and_are_indexed_by_connection,
        missing_pending_requests_are_never_created,
        chunks_out_of_order_and_duplicated_complete_exactly_once,
        chunks_from_another_connection_are_refused,
        completion_needs_the_announced_count,
        a_request_collecting_parts_can_still_be_failed,
        chunks_and_heads_beyond_the_limits_are_refused,
        chunks_are_checked_before_they_are_written,
    }
}
