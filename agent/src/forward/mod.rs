//! One visitor request → one local HTTP request → one [`Answer`], and the
//! cap on how many are with the local service at once (visitors' and
//! replays alike).
//!
//! A request body too large for a message is fetched from the bodies bucket
//! before anything else (`body_download`); the local service is called
//! (`local`); its answer's body goes inline or through the bucket
//! (`carry`); a request that fails anywhere gets an `error` with a short
//! reason (`failure`). The session encodes the answer into its message.

mod carry;
mod failure;
mod local;

use std::sync::Arc;

use protocol::HttpRequest;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use self::carry::carry;
use self::failure::Failure;
use self::local::LocalClient;
use crate::bodies::Storage;
use crate::config::Config;
use crate::exchange::{Answer, Recorder, Recording, RequestLog, RequestOutcome};

/// Forwards requests to the local service through one pooled client, and
/// holds the cap on how many may be with it at once.
#[derive(Clone)]
pub struct Forwarder {
    local: LocalClient,
    /// Bodies to and from the bodies bucket.
    storage: Storage,
    /// One permit per request with the local service
    /// ([`Config::max_in_flight`]): visitors' requests and the inspector's
    /// replays take them from the same pool.
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    /// Sees every exchange (the request inspector).
    recorder: Option<Arc<dyn Recorder>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("target", &self.local.target)
            .field("host_header", &self.local.host_header)
            .field("timeout", &self.local.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("recorded", &self.recorder.is_some())
            .finish()
    }
}

/// A place among the [`Config::max_in_flight`] requests with the local
/// service; free again once dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client for the local service")]
pub struct ClientInitError(#[source] reqwest::Error);

impl Forwarder {
    pub fn new(config: &Config) -> Result<Forwarder, ClientInitError> {
        Ok(Forwarder {
            local: LocalClient::new(config).map_err(ClientInitError)?,
            storage: Storage::new(config.request_timeout).map_err(ClientInitError)?,
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            max_in_flight: config.max_in_flight,
            recorder: None,
        })
    }

    /// Shows every exchange [`Forwarder::forward`] makes to `recorder`.
    pub fn with_recorder(mut self, recorder: impl Recorder + 'static) -> Forwarder {
        self.recorder = Some(Arc::new(recorder));
        self
    }

    /// Shows a request the server refused at the edge to the recorder.
    pub(crate) fn refused(&self, rejected: &protocol::policy::Rejected) {
        if let Some(recorder) = &self.recorder {
            recorder.refused(rejected);
        }
    }

    /// A place for one more request with the local service, or `None` when
    /// [`Forwarder::max_in_flight`] are already there. The caller holds it
    /// for as long as the request counts.
    pub(crate) fn try_slot(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        Some(Slot { _permit: permit })
    }

    /// The cap on requests with the local service (`--max-in-flight`).
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Forwards `req` and returns the answer to send back (a response,
    /// checked to fit one message, or a failure) and a log line.
    ///
    /// A body over [`INLINE_ANSWER_BODY_BYTES`] goes to the request's upload
    /// URL; without one, an answer too large for one message becomes a
    /// `payload_too_large` failure (502). The body is checked against
    /// `MAX_BODY_BYTES` while it is read.
    ///
    /// It does not take a [`Slot`]: the caller does, and holds it until the
    /// answer is on its way.
    ///
    /// [`INLINE_ANSWER_BODY_BYTES`]: protocol::limits::INLINE_ANSWER_BODY_BYTES
    pub async fn forward(&self, mut req: HttpRequest) -> (Answer, RequestLog) {
        // A stored body first: the recorder and the local service see it.
        let stored = match req.body_download.take() {
            None => None,
            Some(download) => match self.storage.download(&download).await {
                Ok(body) => Some(body),
                Err(e) => {
                    let (answer, outcome) = Failure::transfer(&e).answer(&req.request_id);
                    return (answer, RequestLog::for_request(&req, outcome));
                }
            },
        };
        // Recorder hook: the request as the agent received it.
        let recording = self
            .recorder
            .as_ref()
            .map(|r| r.record(&req, stored.as_deref()));
        self.forward_recorded(req, stored, recording).await
    }

    /// [`Forwarder::forward`] once a stored body is fetched (`stored`; else
    /// the body is `req.body`), shown to `recording` instead of the
    /// forwarder's own recorder (the inspector's replays come in here with
    /// their own).
    pub(crate) async fn forward_recorded(
        &self,
        mut req: HttpRequest,
        stored: Option<Vec<u8>>,
        mut recording: Option<Box<dyn Recording>>,
    ) -> (Answer, RequestLog) {
        let started = Instant::now();
        let request_id = req.request_id.clone();
        let upload = req.response_upload.take();
        let mut log = RequestLog::for_request(&req, RequestOutcome::Status(0));
        let result = self.local.call(req, stored).await;
        let elapsed = started.elapsed();
        let (answer, outcome) = match result {
            Ok((mut head, body)) => {
                head.processing_time_ms = elapsed.as_millis() as u64;
                let status = head.status_code;
                // Recorder hook: the response as the local service gave it.
                if let Some(recording) = &mut recording {
                    recording.response(status, &head.headers, &body);
                }
                match carry(&self.storage, head, body, upload.as_ref()).await {
                    Ok(answer) => (answer, RequestOutcome::Status(status)),
                    Err(failure) => failure.answer(&request_id),
                }
            }
            Err(failure) => failure.answer(&request_id),
        };
        log.outcome = outcome;
        log.duration = elapsed;
        // Recorder hook: what the visitor got.
        if let Some(recording) = recording {
            recording.finish(&log.outcome, elapsed);
        }
        (answer, log)
    }
}
