//! In-memory stand-ins for the two tables and `@connections`, for unit tests
//! of the handlers' logic (feature `fake`; always built for this crate's own
//! tests).
//!
//! [`Fake`] implements every store interface with the same conditions as the
//! DynamoDB expressions, and holds items shaped like DynamoDB's (an answer
//! keeps its response as JSON), and the bodies bucket ([`crate::bodies`]). It is trusted
//! because it passes the same contract suite as the DynamoDB stores
//! ([`crate::contract`]; run on the fake below, on DynamoDB in
//! `integration-tests/tests/dynamo_store.rs`).
//!
//! On top, for tests: every call is recorded as the manifest's
//! [`DynamoDbAction`] (checked against a function's IAM with
//! [`Fake::assert_within`]); any call can be made to fail ([`Fail`]); posts
//! answer as scripted ([`Post`]), GetConnection too ([`Probe`]); and a scripted agent ([`Agent`]) answers a
//! posted request after a given number of polls; presigned URLs are
//! `https://bodies.fake/<key>?X-Amz-Signature=<method>`, and a test uploads
//! through one with [`Fake::upload`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use protocol::{HttpRequest, HttpResponse, Message};

use crate::manifest::{DynamoDbAction, Function};
use crate::notifier::{Notifier, PostError, Presence, ProbeError};
use crate::store::{Claim, Connection, StoreError, answer_key};

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
    /// Writing an answer.
    PutAnswer,
    /// Reading an answer.
    GetAnswer,
    /// Presigning a URL.
    Presign,
    PutBody,
    GetBody,
    DeleteBody,
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
/// its answer at which the answer lands, and the response.
pub type Agent = Box<dyn Fn(&HttpRequest) -> Option<(usize, HttpResponse)> + Send + Sync>;

/// An answer the fake agent will write: it lands at poll `at`.
#[derive(Debug, Clone)]
struct Scheduled {
    at: usize,
    polls: usize,
    response: HttpResponse,
}

/// An answer item with the attributes DynamoDB would hold.
#[derive(Debug, Clone)]
struct AnswerRow {
    /// `responseData`: the response's JSON.
    response_data: String,
    ttl: i64,
}

#[derive(Default)]
struct State {
    connections: HashMap<String, Connection>,
    claims: HashMap<String, Claim>,
    /// `<request id>#<connection id>` → the answer item.
    answers: HashMap<String, AnswerRow>,
    /// Answers the fake agent will write, by the same key.
    scheduled: HashMap<String, Scheduled>,
    /// The bodies bucket: key → bytes.
    objects: BTreeMap<String, Vec<u8>>,
    /// Bodies bucket calls, in order (`PutObject req/…`).
    s3_calls: Vec<String>,
    actions: Vec<DynamoDbAction>,
    posts: Vec<(String, String)>,
    post_script: VecDeque<Post>,
    /// Connection ids GetConnection was asked about, in order.
    probes: Vec<String>,
    probe_script: VecDeque<Probe>,
    failures: HashSet<Fail>,
    agent: Option<Agent>,
    /// What the fake agent PUTs to `response_upload` with an answer that
    /// announces `body_uploaded`.
    agent_upload: Option<Vec<u8>>,
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

    /// The fake agent PUTs `body` to the request's `response_upload` when
    /// its answer announces `body_uploaded` (whatever length it announces).
    pub fn agent_uploads(&self, body: Vec<u8>) {
        self.with(|s| s.agent_upload = Some(body));
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

    /// An answer item as the response function writes it.
    pub fn insert_answer(&self, connection_id: &str, response: &HttpResponse) {
        let key = answer_key(&response.request_id, connection_id);
        let response_data = serde_json::to_string(response).expect("a response serializes");
        self.with(|s| {
            s.answers.insert(
                key,
                AnswerRow {
                    response_data,
                    ttl: i64::MAX,
                },
            )
        });
    }

    /// A PUT through a URL the fake presigned (what the agent does).
    pub fn upload(&self, url: &protocol::SignedUrl, body: Vec<u8>) {
        let key = store::key_of(url, "PUT").expect("a presigned PUT of the fake");
        self.with(|s| s.objects.insert(key, body));
    }

    /// The object a URL the fake presigned reads (what the agent does).
    pub fn download(&self, url: &protocol::SignedUrl) -> Option<Vec<u8>> {
        let key = store::key_of(url, "GET")?;
        self.with(|s| s.objects.get(&key).cloned())
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

    /// `connection_id`'s stored answer to `request_id`.
    pub fn answer(&self, request_id: &str, connection_id: &str) -> Option<HttpResponse> {
        let key = answer_key(request_id, connection_id);
        self.with(|s| {
            let row = s.answers.get(&key)?;
            Some(serde_json::from_str(&row.response_data).expect("stored JSON"))
        })
    }

    /// How many answer items are stored.
    pub fn answer_count(&self) -> usize {
        self.with(|s| s.answers.len())
    }

    /// The keys of the objects in the bodies bucket.
    pub fn objects(&self) -> Vec<String> {
        self.with(|s| s.objects.keys().cloned().collect())
    }

    /// An object of the bodies bucket.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.with(|s| s.objects.get(key).cloned())
    }

    /// Bodies bucket calls in order, as `<operation> <key>`.
    pub fn s3_calls(&self) -> Vec<String> {
        self.with(|s| s.s3_calls.clone())
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
        for call in self.s3_calls() {
            // A presigned URL acts with its signer's permissions.
            let action = match call.split(' ').next().unwrap_or("") {
                "PresignGet" => "GetObject",
                "PresignPut" => "PutObject",
                other => other,
            };
            assert!(
                function.s3.iter().any(|a| a.action == action),
                "{} made the S3 call {call:?}, which its manifest entry does not allow",
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
                && let Some((at, response)) = agent(&req)
            {
                if response.body_uploaded.is_some()
                    && let (Some(url), Some(body)) = (&req.response_upload, &s.agent_upload)
                    && let Some(key) = store::key_of(url, "PUT")
                {
                    s.objects.insert(key, body.clone());
                }
                s.scheduled.insert(
                    answer_key(&req.request_id, connection_id),
                    Scheduled {
                        at,
                        polls: 0,
                        response,
                    },
                );
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
        an_answer_is_written_once_per_connection,
        an_answer_is_read_only_under_its_connection,
        answers_keep_their_ttl_and_whole_response,
    }
}
