//! Reconnect delays: exponential, jittered, reset after a stable run.

use std::time::Duration;

use rand::Rng as _;

use crate::config::BackoffConfig;

/// The delay before each reconnect attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Backoff {
        Backoff { config, attempt: 0 }
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The un-jittered delay for the next attempt: `initial * 2^attempt`,
    /// capped at `max`.
    pub fn base_delay(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        self.config
            .initial
            .saturating_mul(factor)
            .min(self.config.max)
    }

    /// The next delay, jittered by `1 ± jitter` (never above `max`).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base_delay();
        self.attempt = self.attempt.saturating_add(1);
        let jitter = self.config.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 {
            rand::rng().random_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        base.mul_f64(factor).min(self.config.max)
    }

    /// Called when a connection ends: one that stayed up for `reset_after`
    /// starts the sequence again from `initial`.
    pub fn connection_ended(&mut self, stayed_up: Duration) {
        if stayed_up >= self.config.reset_after {
            self.attempt = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(jitter: f64) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter,
            reset_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::new(config(0.0));
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut b = Backoff::new(config(0.2));
            b.next_delay();
            let d = b.next_delay(); // base 1 s
            assert!(
                d >= Duration::from_millis(800) && d <= Duration::from_millis(1200),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 10, "jitter should vary the delay");
    }

    #[test]
    fn resets_only_after_a_stable_run() {
        let mut b = Backoff::new(config(0.0));
        for _ in 0..4 {
            b.next_delay();
        }
        b.connection_ended(Duration::from_secs(5));
        assert_eq!(b.base_delay(), Duration::from_secs(8));
        b.connection_ended(Duration::from_secs(60));
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(config(0.5));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
