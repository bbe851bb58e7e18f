//! Choosing the next token from logits on the CPU.
//!
//! The rule is the GPU sampler's (gpu/kernels/sample.wgsl, twin in `gpu::reference`): greedy
//! at temperature 0; otherwise softmax(logits / T) restricted to the smallest set of most
//! likely tokens whose mass reaches top-p, walked in index order to `u * kept_mass`, where
//! `u` is a hash of (seed, step). A counter-based draw instead of a stateful RNG (rand's
//! `StdRng`) means the CPU and GPU backends pick the same token from the same logits, and a
//! rerun of one question after `reset` repeats itself whatever ran before.

use super::EngineError;
use crate::sampling::sample_uniform;
pub use crate::sampling::{Sampling, DEFAULT_SEED};

impl Sampling {
    /// Rejects settings that have no meaning, rather than silently clamping a typo.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what, value, why| Err(EngineError::BadSampling { what, value, why });
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(
                "temperature",
                self.temperature,
                "must be a finite number >= 0",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", self.top_p, "must be in (0, 1]");
        }
        Ok(())
    }
}

/// The token `sampling` picks from `logits` at decode step `step` (backends pass the
/// position being predicted, so every token draws a fresh number).
///
/// A pure function: the same inputs give the same token, and the same token the GPU
/// sampler gives for the same logits.
pub fn sample_logits(logits: &[f32], sampling: &Sampling, step: u32) -> Result<u32, EngineError> {
    sampling.validate()?;
    if logits.is_empty() {
        return Err(EngineError::EmptyLogits);
    }
    if let Some(index) = logits.iter().position(|v| v.is_nan()) {
        return Err(EngineError::NanLogit {
            index,
            vocab: logits.len(),
        });
    }
    if sampling.is_greedy() {
        return Ok(argmax(logits));
    }
    Ok(top_p(
        logits,
        sampling.temperature,
        sampling.top_p,
        sampling.seed,
        step,
    ))
}

/// Index of the largest logit, the lowest on ties (as the GPU's reduction and llama.cpp).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Candidates examined first when looking for the top-p cut. Trained models put nearly
/// all the mass on a few dozen tokens, so partial selection usually avoids sorting the
/// whole 152k vocabulary (~10 ms a token, as long as a 0.5B model's decode step).
const FIRST_CANDIDATES: usize = 64;

fn top_p(logits: &[f32], temperature: f32, top_p: f32, seed: u64, step: u32) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        // Every token is forbidden; the softmax is undefined, greedy at least is defined.
        return argmax(logits);
    }
    // f64 weights and index-order sums, as the reference, so the boundary decisions match.
    let weight = |l: f32| ((f64::from(l) - f64::from(max)) / f64::from(temperature)).exp();
    let weights: Vec<f64> = logits.iter().map(|&l| weight(l)).collect();
    let total: f64 = weights.iter().sum();
    let target = f64::from(top_p) * total;

    let cut = cut_logit(logits, &weights, target);
    let kept = || (0..logits.len()).filter(|&i| logits[i] >= cut);
    let kept_mass: f64 = kept().map(|i| weights[i]).sum();
    let x = sample_uniform(seed, step) * kept_mass;
    let mut acc = 0.0;
    let mut last = 0;
    for i in kept() {
        acc += weights[i];
        if acc > x {
            return i as u32;
        }
        last = i;
    }
    last as u32
}

/// The smallest logit in the top-p set: walk tokens from the most likely down, adding their
/// weight until the mass reaches `target`. Ties with the cut are kept by the caller, so
/// their order here does not matter; ties are still broken by index to match the reference.
fn cut_logit(logits: &[f32], weights: &[f64], target: f64) -> f32 {
    let n = logits.len();
    let order = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    let mut k = FIRST_CANDIDATES.min(n);
    loop {
        let mut idx: Vec<usize> = (0..n).collect();
        if k < n {
            idx.select_nth_unstable_by(k, order);
            idx.truncate(k);
        }
        idx.sort_unstable_by(order);
        let mut mass = 0.0;
        let mut cut = logits[idx[0]];
        for &i in &idx {
            if mass >= target {
                return cut;
            }
            mass += weights[i];
            cut = logits[i];
        }
        if k == n {
            // The whole vocabulary was needed (top_p = 1 or a flat distribution).
            return cut;
        }
        // The mass reached so far is below target: look further down the ranking.
        k = (k * 8).min(n);
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::gpu::reference;

    fn sampling(temperature: f32, top_p: f32, seed: u64) -> Sampling {
        Sampling {
            temperature,
            top_p,
            seed,
        }
    }

    /// Logits shaped like a model's: a few strong candidates over a long flat tail.
    fn model_like(rng: &mut StdRng, n: usize, spread: f32) -> Vec<f32> {
        let mut l: Vec<f32> = (0..n).map(|_| rng.random_range(-8.0..2.0)).collect();
        for _ in 0..5 {
            let i = rng.random_range(0..n);
            l[i] = rng.random_range(0.0..spread);
        }
        l
    }

    #[test]
    fn greedy_is_argmax_lowest_on_ties() {
        let s = Sampling::GREEDY;
        assert_eq!(sample_logits(&[0.0, 3.0, 1.0, 3.0], &s, 0).unwrap(), 1);
        assert_eq!(sample_logits(&[-1.0], &s, 7).unwrap(), 0);
        assert_eq!(sample_logits(&[f32::NEG_INFINITY, -5.0], &s, 0).unwrap(), 1);
    }

    #[test]
    fn matches_the_gpu_reference_sampler() {
        let mut rng = StdRng::seed_from_u64(7);
        for case in 0..200 {
            let n = [2, 50, 1000, 20_000][case % 4];
            let spread = [2.0, 10.0, 30.0][case % 3];
            let logits = model_like(&mut rng, n, spread);
            let t = [0.3, 0.7, 1.0, 1.5][case % 4];
            let p = [0.1, 0.5, 0.9, 0.95, 1.0][case % 5];
            let seed = rng.random::<u64>();
            let step = rng.random_range(0..100_000);
            let ours = sample_logits(&logits, &sampling(t, p, seed), step).unwrap();
            let reference = reference::sample_top_p(&logits, t, p, seed, step);
            assert_eq!(
                ours, reference,
                "case {case}: n {n} T {t} p {p} seed {seed} step {step}: ours {ours} (logit {}), reference {reference} (logit {})",
                logits[ours as usize], logits[reference as usize]
            );
        }
    }

    #[test]
    fn deterministic_per_seed_and_step() {
        let mut rng = StdRng::seed_from_u64(3);
        let logits: Vec<f32> = (0..5000).map(|_| rng.random_range(-1.0..1.0)).collect();
        let s = sampling(1.0, 1.0, 1234);
        let a: Vec<u32> = (0..64)
            .map(|step| sample_logits(&logits, &s, step).unwrap())
            .collect();
        let b: Vec<u32> = (0..64)
            .map(|step| sample_logits(&logits, &s, step).unwrap())
            .collect();
        assert_eq!(a, b);
        // A flat distribution over 5000 tokens: 64 draws must not all be the same token,
        // and another seed must give another sequence.
        assert!(a.iter().any(|&t| t != a[0]), "{a:?}");
        let other = sampling(1.0, 1.0, 1235);
        let c: Vec<u32> = (0..64)
            .map(|step| sample_logits(&logits, &other, step).unwrap())
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn small_top_p_keeps_only_the_best() {
        let logits = [0.0, 5.0, 4.9, -3.0];
        for step in 0..50 {
            let t = sample_logits(&logits, &sampling(1.0, 1e-6, 9), step).unwrap();
            assert_eq!(t, 1, "step {step}");
        }
    }

    #[test]
    fn draws_follow_the_distribution() {
        // p(1) = e^1 / (1 + e^1) ~ 0.731 at T = 1.
        let logits = [0.0, 1.0];
        let n = 20_000;
        let ones = (0..n)
            .filter(|&step| sample_logits(&logits, &sampling(1.0, 1.0, 5), step).unwrap() == 1)
            .count();
        let freq = ones as f64 / f64::from(n);
        assert!((freq - 0.731).abs() < 0.02, "frequency {freq}");
    }

    #[test]
    fn rejects_bad_input() {
        let s = Sampling::GREEDY;
        assert!(matches!(
            sample_logits(&[], &s, 0),
            Err(EngineError::EmptyLogits)
        ));
        assert!(matches!(
            sample_logits(&[0.0, f32::NAN], &s, 0),
            Err(EngineError::NanLogit { index: 1, vocab: 2 })
        ));
        for bad in [sampling(-1.0, 1.0, 0), sampling(f32::NAN, 1.0, 0)] {
            assert!(matches!(
                sample_logits(&[0.0], &bad, 0),
                Err(EngineError::BadSampling {
                    what: "temperature",
                    ..
                })
            ));
        }
        for p in [0.0, 1.5, f32::NAN] {
            assert!(matches!(
                sample_logits(&[0.0], &sampling(1.0, p, 0), 0),
                Err(EngineError::BadSampling { what: "top_p", .. })
            ));
        }
    }

    #[test]
    fn sampling_json_defaults_to_greedy() {
        let s: Sampling = serde_json::from_str("{}").unwrap();
        assert_eq!(s, Sampling::GREEDY);
        let s: Sampling = serde_json::from_str(r#"{"temperature":0.6,"top_p":0.95}"#).unwrap();
        assert_eq!(s, sampling(0.6, 0.95, DEFAULT_SEED));
    }
}
