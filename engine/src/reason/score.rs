//! Scoring an evaluation: accuracy per budget with a 95% Wilson interval, and which items
//! of a data set to run. Shared by `m1 eval` and the page's Evaluate view, so both report
//! the same numbers for the same items.

use serde::{Deserialize, Serialize};

use crate::sampling::sample_uniform;

/// The normal quantile for a two-sided 95% interval.
pub const WILSON_Z: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `correct` successes in `n` trials, or `None` for `n = 0`.
///
/// Wilson rather than the normal approximation: evaluations here are small (tens of items)
/// and accuracies near 0 or 1, where p ± z·√(p(1-p)/n) leaves [0, 1] or collapses to a point.
pub fn wilson(correct: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    let p = correct.min(n) as f64 / n_f;
    let z2 = WILSON_Z * WILSON_Z;
    let denom = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denom;
    let half = WILSON_Z / denom * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// One budget's line of an accuracy table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    pub budget: usize,
    /// Items with a gold answer (items without one are not scored).
    pub n: usize,
    pub correct: usize,
    /// `correct / n`; `None` before any scored item.
    pub accuracy: Option<f64>,
    /// The 95% Wilson interval of the accuracy.
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// Correct answers per budget. An item without an extracted choice counts as wrong, as in
/// the m1 evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccuracyTable {
    /// (budget, n, correct), in the order the budgets were given.
    counts: Vec<(usize, usize, usize)>,
}

impl AccuracyTable {
    pub fn new(budgets: &[usize]) -> Self {
        Self {
            counts: budgets.iter().map(|&b| (b, 0, 0)).collect(),
        }
    }

    /// Scores one item at `budget`: `Some(right)`, or `None` when the item has no gold
    /// answer. A budget not given to `new` is added at the end.
    pub fn add(&mut self, budget: usize, verdict: Option<bool>) {
        let Some(right) = verdict else {
            return;
        };
        let at = match self.counts.iter().position(|c| c.0 == budget) {
            Some(i) => i,
            None => {
                self.counts.push((budget, 0, 0));
                self.counts.len() - 1
            }
        };
        self.counts[at].1 += 1;
        self.counts[at].2 += usize::from(right);
    }

    pub fn rows(&self) -> Vec<AccuracyRow> {
        self.counts
            .iter()
            .map(|&(budget, n, correct)| {
                let interval = wilson(correct, n);
                AccuracyRow {
                    budget,
                    n,
                    correct,
                    accuracy: (n > 0).then(|| correct as f64 / n as f64),
                    low: interval.map(|i| i.0),
                    high: interval.map(|i| i.1),
                }
            })
            .collect()
    }
}

/// Which of `total` items to run: the first `limit` (all when `None`), or with a `seed`,
/// `limit` items drawn at random (a seeded shuffle, so the same seed picks the same items
/// in the CLI and the page), returned in file order.
pub fn pick_items(total: usize, limit: Option<usize>, seed: Option<u64>) -> Vec<usize> {
    let n = limit.unwrap_or(total).min(total);
    let Some(seed) = seed else {
        return (0..n).collect();
    };
    let mut order: Vec<usize> = (0..total).collect();
    // Fisher-Yates over the engine's counter-based uniform draw (the samplers' hash).
    for i in (1..total).rev() {
        let step = u32::try_from(i).unwrap_or(u32::MAX);
        let j = ((sample_uniform(seed, step) * (i + 1) as f64) as usize).min(i);
        order.swap(i, j);
    }
    let mut picked = order[..n].to_vec();
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_hand_computed_intervals() {
        // 7/10: p = 0.7, z² = 3.8415; centre (0.7 + 0.19207) / 1.38415 = 0.64449,
        // half-width 1.95996 / 1.38415 · √(0.021 + 0.0096037) = 0.24772.
        let (lo, hi) = wilson(7, 10).unwrap();
        assert!(close(lo, 0.39677) && close(hi, 0.89221), "{lo} {hi}");
        // 0/5: centre 0.38415 / 1.76829 = 0.21724 and half-width 1.10841 · 0.19600 = 0.21724:
        // the interval starts at exactly 0.
        let (lo, hi) = wilson(0, 5).unwrap();
        assert!(close(lo, 0.0) && close(hi, 0.43449), "{lo} {hi}");
        // 5/5 mirrors 0/5.
        let (lo, hi) = wilson(5, 5).unwrap();
        assert!(close(lo, 0.56551) && close(hi, 1.0), "{lo} {hi}");
        // 1/2: centre 0.5, half-width 1.95996 / 2.92074 · √(0.125 + 0.24007) = 0.40545.
        let (lo, hi) = wilson(1, 2).unwrap();
        assert!(close(lo, 0.09453) && close(hi, 0.90547), "{lo} {hi}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn accuracy_table_counts_per_budget() {
        let mut t = AccuracyTable::new(&[128, 256]);
        for (budget, verdict) in [
            (128, Some(true)),
            (256, Some(false)),
            (128, Some(false)),
            (256, Some(false)),
            (128, None),
            (256, None),
            (128, Some(true)),
            (256, Some(true)),
        ] {
            t.add(budget, verdict);
        }
        let rows = t.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].budget, rows[0].n, rows[0].correct), (128, 3, 2));
        assert_eq!((rows[1].budget, rows[1].n, rows[1].correct), (256, 3, 1));
        assert!(close(rows[0].accuracy.unwrap(), 2.0 / 3.0));
        // 2/3: centre (0.66667 + 0.64024) / 2.28049 = 0.57308, half-width
        // 1.95996 / 2.28049 · √(0.074074 + 0.106708) = 0.36543.
        assert!(close(rows[0].low.unwrap(), 0.20766), "{:?}", rows[0]);
        assert!(close(rows[0].high.unwrap(), 0.93851), "{:?}", rows[0]);
        assert!(close(rows[1].low.unwrap(), 1.0 - 0.93851), "{:?}", rows[1]);
        let empty = AccuracyTable::new(&[64]).rows();
        assert_eq!(
            empty,
            vec![AccuracyRow {
                budget: 64,
                n: 0,
                correct: 0,
                accuracy: None,
                low: None,
                high: None
            }]
        );
    }

    #[test]
    fn picks_first_n_or_a_seeded_sample_in_file_order() {
        assert_eq!(pick_items(5, Some(3), None), vec![0, 1, 2]);
        assert_eq!(pick_items(3, Some(10), None), vec![0, 1, 2]);
        assert_eq!(pick_items(4, None, None), vec![0, 1, 2, 3]);
        let a = pick_items(500, Some(50), Some(7));
        assert_eq!(a, pick_items(500, Some(50), Some(7)));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
        assert_ne!(a, pick_items(500, Some(50), Some(8)));
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        assert_eq!(pick_items(6, None, Some(1)), vec![0, 1, 2, 3, 4, 5]);
    }
}
