//! The adaptive polling schedule of forwarding: quick first polls for fast
//! local services, then a capped interval so a slow one costs at most ~10
//! reads a second.

use std::time::Duration;

/// Delays between polls: `first`, then ×`growth`, never above `cap`.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSchedule {
    next: Duration,
    growth: f64,
    cap: Duration,
}

impl PollSchedule {
    pub const FIRST: Duration = Duration::from_millis(5);
    pub const GROWTH: f64 = 1.5;
    pub const CAP: Duration = Duration::from_millis(100);

    pub fn new(first: Duration, growth: f64, cap: Duration) -> Self {
        Self {
            next: first.min(cap),
            growth: growth.max(1.0),
            cap,
        }
    }
}

impl Default for PollSchedule {
    fn default() -> Self {
        Self::new(Self::FIRST, Self::GROWTH, Self::CAP)
    }
}

impl Iterator for PollSchedule {
    type Item = Duration;

    /// Never ends.
    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = current.mul_f64(self.growth).min(self.cap);
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[f64]) -> Vec<Duration> {
        v.iter()
            .map(|&m| Duration::from_secs_f64(m / 1000.0))
            .collect()
    }

    #[test]
    fn grows_by_half_then_caps() {
        let got: Vec<Duration> = PollSchedule::default().take(12).collect();
        let expected = ms(&[
            5.0, 7.5, 11.25, 16.875, 25.3125, 37.96875, 56.953125, 85.4296875, 100.0, 100.0, 100.0,
            100.0,
        ]);
        for (g, e) in got.iter().zip(&expected) {
            assert!(g.abs_diff(*e) < Duration::from_micros(1), "{g:?} vs {e:?}");
        }
    }

    #[test]
    fn first_above_cap_is_capped_and_growth_below_one_is_flat() {
        let got: Vec<Duration> =
            PollSchedule::new(Duration::from_millis(500), 0.5, Duration::from_millis(100))
                .take(3)
                .collect();
        assert_eq!(got, vec![Duration::from_millis(100); 3]);
    }

    #[test]
    fn a_fast_answer_is_seen_within_50ms_and_a_slow_one_costs_about_ten_reads_a_second() {
        let mut elapsed = Duration::ZERO;
        let mut polls = 0;
        let mut schedule = PollSchedule::default();
        while elapsed < Duration::from_secs(25) {
            elapsed += schedule.next().unwrap();
            polls += 1;
        }
        assert!((250..=260).contains(&polls), "{polls}");
        let first_five: Duration = PollSchedule::default().take(5).sum();
        assert!(first_five < Duration::from_millis(70), "{first_five:?}");
    }
}
