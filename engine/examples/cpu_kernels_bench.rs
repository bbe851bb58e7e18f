//! Throughput of our CPU kernels per block type, instruction set and batch, on random
//! weights at a model's shapes: `cargo run --release -p m1-engine --example cpu_kernels_bench
//! [-- ROWS WIDTH THREADS]` (default 896 x 4864, a Qwen2.5-0.5B FFN matrix, one thread).
//! Prints GMAC/s (weight values times tokens per second) and, for one token, the weight
//! bytes read per second. A figure, not a test. With one thread it counts the thread's own
//! CPU time (Linux: /proc/thread-self/schedstat), so other work on a busy machine moves it
//! less than wall time would.

use std::time::Instant;

use m1_engine::cpu::kernels::{Activations, Isa, Pool, QMatrix, QType};

/// Nanoseconds this thread has run (Linux), else wall time.
fn cpu_ns(start: &Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| start.elapsed().as_nanos() as f64)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(896);
    let k = args.get(1).copied().unwrap_or(4864);
    let threads = args.get(2).copied().unwrap_or(1);
    let only: Option<String> = std::env::var("TYPES").ok();
    let pool = Pool::new(threads);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    println!("{n} x {k}, {} thread(s)", pool.threads());
    for ty in QType::ALL {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|t| t == format!("{ty:?}")))
        {
            continue;
        }
        let k = k / ty.block_values() * ty.block_values();
        let bytes = n * k / ty.block_values() * ty.block_bytes();
        let mut words: Vec<u32> = (0..bytes.div_ceil(4)).map(|_| next() as u32).collect();
        let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        let scale = half::f16::from_f32(0.01).to_le_bytes();
        let at: &[usize] = match ty {
            QType::Q6K => &[208],
            QType::Q4_1 | QType::Q5_1 | QType::Q4K | QType::Q5K => &[0, 2],
            _ => &[0],
        };
        for b in raw[..bytes].chunks_exact_mut(ty.block_bytes()) {
            for &a in at {
                b[a..a + 2].copy_from_slice(&scale);
            }
        }
        let w = QMatrix::new(ty, n, k, words).unwrap();
        for isa in Isa::available() {
            // Arranged as a model's weights are (rows interleaved where `isa` takes that).
            let mut w = w.clone();
            w.arrange_for(isa);
            let tiles = if w.is_tiled() { " (8-row tiles)" } else { "" };
            let mut line = format!("{ty:?} {:8}{tiles}", isa.name());
            for m in [1usize, 4, 64] {
                let x: Vec<f32> = (0..m * k)
                    .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect();
                let acts = Activations::quantize(ty.partner(), &x, k, isa, &pool);
                let mut out = vec![0f32; m * n];
                w.matmul(&acts, isa, &pool, &mut out);
                // Rounds of ~50 ms: the thread CPU clock advances at scheduler ticks.
                let reps = ((1e9 / (n * k * m) as f64) as usize).clamp(1, 5000);
                // The best of 7 rounds: other work on the machine only ever adds time.
                let mut best = f64::INFINITY;
                for _ in 0..7 {
                    let wall = Instant::now();
                    let t0 = if threads == 1 { cpu_ns(&wall) } else { 0.0 };
                    for _ in 0..reps {
                        w.matmul(&acts, isa, &pool, &mut out);
                    }
                    let ns = if threads == 1 {
                        cpu_ns(&wall) - t0
                    } else {
                        wall.elapsed().as_nanos() as f64
                    };
                    best = best.min(ns);
                }
                let s = best / 1e9 / reps as f64;
                line += &format!("  m={m:<3} {:6.1} GMAC/s", (n * k * m) as f64 / s / 1e9);
                if m == 1 {
                    line += &format!(" {:5.1} GB/s", bytes as f64 / s / 1e9);
                }
            }
            println!("{line}");
        }
    }
}
