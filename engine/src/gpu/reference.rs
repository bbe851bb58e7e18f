//! Plain f32/f64 CPU twins of every GPU op, written for clarity: the tests compare each kernel
//! against them on seeded random data. Weights enter already dequantized (the tests use
//! candle's ggml dequantizer, which also pins our byte layouts to ggml's).

use super::RopeMode;
pub use crate::sampling::{pcg, sample_uniform};

/// `y[t, n] = sum_k x[t, k] * w[n, k] (+ bias[n])`, accumulated in f64.
pub fn matmul(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    t: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    let mut y = vec![0.0; t * n];
    for ti in 0..t {
        let xr = &x[ti * k..(ti + 1) * k];
        for ni in 0..n {
            let wr = &w[ni * k..(ni + 1) * k];
            let dot: f64 = xr
                .iter()
                .zip(wr)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            y[ti * n + ni] = (dot + bias.map_or(0.0, |b| f64::from(b[ni]))) as f32;
        }
    }
    y
}

/// Rows `ids` of a `[rows, dim]` table.
pub fn embedding(table: &[f32], ids: &[u32], dim: usize) -> Vec<f32> {
    ids.iter()
        .flat_map(|&id| {
            table[id as usize * dim..(id as usize + 1) * dim]
                .iter()
                .copied()
        })
        .collect()
}

pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let dim = weight.len();
    x.chunks(dim)
        .flat_map(|row| {
            let ms = row
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                / dim as f64;
            let inv = 1.0 / (ms + f64::from(eps)).sqrt();
            row.iter()
                .zip(weight)
                .map(move |(&v, &w)| (f64::from(v) * inv * f64::from(w)) as f32)
        })
        .collect()
}

pub fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| {
            let g = f64::from(g);
            (g / (1.0 + (-g).exp()) * f64::from(u)) as f32
        })
        .collect()
}

/// Rotates `x` (`[t, n_heads, head_dim]`) in place, token `ti` at position `pos + ti`;
/// `freqs[i]` is pair i's radians per position (`RopeFreqs::frequencies`).
pub fn rope(
    x: &mut [f32],
    freqs: &[f64],
    mode: RopeMode,
    n_heads: usize,
    head_dim: usize,
    pos: usize,
) {
    let half = freqs.len();
    for (row_idx, head) in x.chunks_mut(head_dim).enumerate() {
        let p = (pos + row_idx / n_heads) as f64;
        for (i, &f) in freqs.iter().enumerate() {
            let (a, b) = match mode {
                RopeMode::Neox => (i, i + half),
                RopeMode::Normal => (2 * i, 2 * i + 1),
            };
            let angle = p * f;
            let (s, c) = angle.sin_cos();
            let (x0, x1) = (f64::from(head[a]), f64::from(head[b]));
            head[a] = (x0 * c - x1 * s) as f32;
            head[b] = (x0 * s + x1 * c) as f32;
        }
    }
}

/// Causal GQA attention. `k`/`v` hold positions `0..pos + t` as `[pos + t, n_kv, head_dim]`;
/// `q` is `[t, n_heads, head_dim]`, query ti at position pos + ti.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    n_heads: usize,
    n_kv: usize,
    head_dim: usize,
    pos: usize,
) -> Vec<f32> {
    let group = n_heads / n_kv;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut out = vec![0.0f32; t * n_heads * head_dim];
    for ti in 0..t {
        for h in 0..n_heads {
            let kvh = h / group;
            let qr = &q[(ti * n_heads + h) * head_dim..][..head_dim];
            let keys = pos + ti + 1;
            let scores: Vec<f64> = (0..keys)
                .map(|j| {
                    let kr = &k[(j * n_kv + kvh) * head_dim..][..head_dim];
                    qr.iter()
                        .zip(kr)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = e.iter().sum();
            let o = &mut out[(ti * n_heads + h) * head_dim..][..head_dim];
            for (d, od) in o.iter_mut().enumerate() {
                let acc: f64 = (0..keys)
                    .map(|j| e[j] * f64::from(v[(j * n_kv + kvh) * head_dim + d]))
                    .sum();
                *od = (acc / z) as f32;
            }
        }
    }
    out
}

/// Index of the largest logit, lowest index on ties.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The top-p set of `softmax(logits / temperature)`: the smallest set of most likely tokens
/// whose mass reaches `top_p` (ties at the boundary kept together), with each token's weight.
pub fn top_p_set(logits: &[f32], temperature: f32, top_p: f32) -> Vec<(u32, f64)> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f64> = logits
        .iter()
        .map(|&l| ((f64::from(l) - f64::from(m)) / f64::from(temperature)).exp())
        .collect();
    let z: f64 = w.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let target = f64::from(top_p) * z;
    let mut mass = 0.0;
    let mut cut = logits[order[0]];
    for &i in &order {
        if mass >= target {
            break;
        }
        mass += w[i];
        cut = logits[i];
    }
    (0..logits.len())
        .filter(|&i| logits[i] >= cut)
        .map(|i| (i as u32, w[i]))
        .collect()
}

/// The token the GPU sampler should draw: walk the top-p set in index order to
/// `u * kept_mass`.
pub fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, seed: u64, step: u32) -> u32 {
    let kept = top_p_set(logits, temperature, top_p);
    let total: f64 = kept.iter().map(|&(_, w)| w).sum();
    let x = sample_uniform(seed, step) * total;
    let mut acc = 0.0;
    for &(i, w) in &kept {
        acc += w;
        if acc > x {
            return i;
        }
    }
    kept.last().map_or(0, |&(i, _)| i)
}
