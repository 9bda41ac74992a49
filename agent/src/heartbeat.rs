//! Heartbeat bookkeeping, separate from sockets so it can be tested alone.

use std::time::Duration;

use tokio::time::Instant;

/// What to do on a heartbeat tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send a `ping`.
    Ping,
    /// Nothing arrived for `dead_after`: the link is dead, reconnect.
    Dead { silent_for: Duration },
}

/// Tracks when the server was last heard from.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    dead_after: Duration,
    last_heard: Instant,
}

impl Heartbeat {
    pub fn new(dead_after: Duration, now: Instant) -> Heartbeat {
        Heartbeat {
            dead_after,
            last_heard: now,
        }
    }

    /// Any message or frame from the server.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    pub fn tick(&self, now: Instant) -> Beat {
        let silent_for = now.saturating_duration_since(self.last_heard);
        if silent_for >= self.dead_after {
            Beat::Dead { silent_for }
        } else {
            Beat::Ping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn pings_while_the_server_answers_and_declares_death_after_silence() {
        let start = Instant::now();
        let mut hb = Heartbeat::new(10 * MIN, start);
        tokio::time::advance(5 * MIN).await;
        assert_eq!(hb.tick(Instant::now()), Beat::Ping);
        hb.heard(Instant::now()); // pong
        tokio::time::advance(5 * MIN).await;
        assert_eq!(hb.tick(Instant::now()), Beat::Ping, "heard 5 min ago");
        tokio::time::advance(5 * MIN).await;
        assert_eq!(
            hb.tick(Instant::now()),
            Beat::Dead {
                silent_for: 10 * MIN
            }
        );
    }
}
