//! A steady visitor load through one tunnel, every answer checked against
//! its own request, while the agent's events are watched for handovers
//! ([`agent::Event::Renewed`]). The end-to-end handover tests and the
//! benchmark's handover phase (`bench/`) both drive it.
//!
//! The tunnel must expose a [`crate::LocalService`]: its echo carries the
//! request's path and query, and so does its `/sleep/{ms}` answer, so an
//! answer meant for another request is seen.

use std::collections::BTreeMap;
use std::time::Duration;

use agent::Event;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::error::error_chain;

/// What load to send.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// One request every `every` (50 ms: 20 requests per second), started
    /// on time whatever the earlier ones take.
    pub every: Duration,
    /// How long requests are started for.
    pub duration: Duration,
    /// Every `slow_every`-th request (the first included) asks the service
    /// to take `slow`, so that some straddle a handover; 0: none.
    pub slow_every: u32,
    pub slow: Duration,
}

/// One request that did not get its own answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The request's number, from 0.
    pub id: u32,
    /// `status 502`, `no response` or `another request's answer`: what the
    /// reports count by.
    pub kind: String,
    /// The error or the start of the body, one line.
    pub detail: String,
}

/// What came of a [`Load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOutcome {
    pub sent: u32,
    pub failures: Vec<Failure>,
    /// Visitor-side latencies of the answered requests, fast ones.
    pub fast: Vec<Duration>,
    /// The same, slow ones.
    pub slow: Vec<Duration>,
    /// One entry per handover the agent reported while the load ran (and
    /// while its last requests were answered): the requests it dropped.
    pub renewals: Vec<usize>,
}

impl LoadOutcome {
    /// Failures by kind.
    pub fn failures_by_kind(&self) -> BTreeMap<String, u64> {
        let mut kinds = BTreeMap::new();
        for failure in &self.failures {
            *kinds.entry(failure.kind.clone()).or_default() += 1;
        }
        kinds
    }
}

impl Load {
    /// Sends the load to `url` (a tunnel's public URL) with `client`,
    /// reading the agent's `events` as it goes. `on_tick` runs before each
    /// request with the time since the start (to change the stack's
    /// behaviour midway). Fails only if the agent stops or `on_tick` fails.
    pub async fn run(
        &self,
        client: &reqwest::Client,
        url: &str,
        events: &mut broadcast::Receiver<Event>,
        mut on_tick: impl FnMut(Duration) -> anyhow::Result<()>,
    ) -> anyhow::Result<LoadOutcome> {
        let mut requests = JoinSet::new();
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut outcome = LoadOutcome::default();
        while started.elapsed() < self.duration {
            tokio::select! {
                _ = ticks.tick() => {
                    on_tick(started.elapsed())?;
                    let id = outcome.sent;
                    outcome.sent += 1;
                    let slow = self.slow_every > 0 && id.is_multiple_of(self.slow_every);
                    let path = if slow {
                        format!("/sleep/{}?id={id}", self.slow.as_millis())
                    } else {
                        format!("/echo?id={id}")
                    };
                    let (client, url) = (client.clone(), url.to_owned());
                    requests.spawn(async move {
                        let start = Instant::now();
                        let checked = check(&client, &url, &path).await;
                        (id, slow, start.elapsed(), checked)
                    });
                }
                event = events.recv() => match event {
                    Ok(Event::Renewed { dropped }) => outcome.renewals.push(dropped),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => anyhow::bail!("the agent stopped"),
                },
            }
        }
        while let Some(joined) = requests.join_next().await {
            let (id, slow, elapsed, checked) = joined?;
            match checked {
                Ok(()) if slow => outcome.slow.push(elapsed),
                Ok(()) => outcome.fast.push(elapsed),
                Err((kind, detail)) => outcome.failures.push(Failure { id, kind, detail }),
            }
        }
        // Handovers that finished while the last requests were answered.
        while let Ok(event) = events.try_recv() {
            if let Event::Renewed { dropped } = event {
                outcome.renewals.push(dropped);
            }
        }
        outcome.failures.sort_by_key(|f| f.id);
        Ok(outcome)
    }
}

/// One visitor request: 200, and the answer is to this very request (the
/// service puts the path and query, with the request's id, in it). The
/// error is (kind, detail).
async fn check(client: &reqwest::Client, url: &str, path: &str) -> Result<(), (String, String)> {
    let response = client
        .get(format!("{url}{path}"))
        .send()
        .await
        .map_err(|e| ("no response".to_owned(), one_line(&error_chain(&e))))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| ("no response".to_owned(), one_line(&error_chain(&e))))?;
    let start = || one_line(&body.chars().take(200).collect::<String>());
    if status != 200 {
        return Err((format!("status {}", status.as_u16()), start()));
    }
    let answered = match path.strip_prefix("/sleep/") {
        Some(rest) => {
            let ms = rest.split('?').next().unwrap_or_default();
            body.strip_prefix(&format!("slept {ms} ms: "))
                .map(str::to_owned)
        }
        None => serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|echo| echo["uri"].as_str().map(str::to_owned)),
    };
    if answered.as_deref() != Some(path) {
        return Err(("another request's answer".to_owned(), start()));
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
