//! Decode mat-vec kernels at m1-7B's shapes (`gpu::bench::matvec`): effective GB/s per type.
//!
//!     cargo run --release -p m1-engine --example kernel_bench -- [--types Q4_K,Q6_K] \
//!         [--shapes attn_output,output] [--reps 8] [--peak-gb-s 1000] [--no-timestamps]
//!
//! What `m1 bench --kernels` prints; the browser twin is tests/gpu_browser_bench.rs.

use m1_engine::gguf::GgmlType;
use m1_engine::gpu::bench::{self, BenchOptions};
use m1_engine::gpu::{Gpu, GpuOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mut opts = BenchOptions::default();
    if let Some(list) = value("--types") {
        opts.types = list
            .split(',')
            .map(|t| {
                GgmlType::ALL
                    .iter()
                    .copied()
                    .find(|ty| ty.name().eq_ignore_ascii_case(t))
                    .ok_or_else(|| format!("unknown type {t}"))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(list) = value("--shapes") {
        let names: Vec<&str> = list.split(',').collect();
        opts.shapes.retain(|s| names.contains(&s.name));
    }
    if let Some(n) = value("--reps") {
        opts.reps = n.parse()?;
    }
    if let Some(p) = value("--peak-gb-s") {
        opts.peak_gb_s = Some(p.parse()?);
    }
    let timestamps = !args.iter().any(|a| a == "--no-timestamps");
    let gpu = pollster::block_on(Gpu::new(GpuOptions {
        timestamps,
        ..GpuOptions::default()
    }))?;
    let report = pollster::block_on(bench::matvec(&gpu, &opts, |k| {
        eprintln!(
            "{} {} {:.3} ms {:.2} GB/s",
            k.ty.name(),
            k.shape.name,
            k.ms,
            k.gb_s()
        )
    }))?;
    print!("{report}");
    Ok(())
}
