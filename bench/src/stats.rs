//! Percentiles of latency samples.

use std::time::Duration;

use serde::Serialize;

/// p50/p90/p99 (nearest rank), mean, min and max of a set of samples, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Self::of_ms(&mut ms)
    }

    /// From milliseconds (sorted in place).
    pub fn of_ms(ms: &mut [f64]) -> Option<Summary> {
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        Some(Summary {
            samples: ms.len(),
            p50_ms: percentile(ms, 50.0),
            p90_ms: percentile(ms, 90.0),
            p99_ms: percentile(ms, 99.0),
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            min_ms: ms[0],
            max_ms: ms[ms.len() - 1],
        })
    }

    /// Percentile by percentile difference `self - base` (what the tunnel adds).
    pub fn minus(&self, base: &Summary) -> Added {
        Added {
            p50_ms: self.p50_ms - base.p50_ms,
            p90_ms: self.p90_ms - base.p90_ms,
            p99_ms: self.p99_ms - base.p99_ms,
            mean_ms: self.mean_ms - base.mean_ms,
        }
    }
}

/// The difference of two [`Summary`]s, percentile by percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Added {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

/// Nearest-rank percentile of sorted, non-empty samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut ms: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of_ms(&mut ms).unwrap();
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms), (50.0, 90.0, 99.0));
        assert_eq!((s.min_ms, s.max_ms, s.mean_ms), (1.0, 100.0, 50.5));
        let one = Summary::of_ms(&mut [7.0]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn added_is_the_difference_per_percentile() {
        let a = Summary::of_ms(&mut [10.0, 20.0, 30.0]).unwrap();
        let b = Summary::of_ms(&mut [1.0, 2.0, 3.0]).unwrap();
        let added = a.minus(&b);
        assert_eq!((added.p50_ms, added.p99_ms), (18.0, 27.0));
    }
}
