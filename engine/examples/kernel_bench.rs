//! Decode mat-vec kernels at m1-7B's shapes (`gpu::bench::matvec`): effective GB/s per type.
//!
//!     cargo run --release -p m1-engine --example kernel_bench -- [--types Q4_K,Q6_K] \
//!         [--shapes attn_output,output] [--tokens 1] [--reps 8] [--peak-gb-s 1000] [--no-timestamps] \
//!         [--wg 64] [--lanes 64] [--rows 4] [--f16-math true] [--software false]
//!
//! What `m1 bench --kernels` prints; the browser twin is tests/gpu_browser_bench.rs.

#[cfg(not(target_arch = "wasm32"))]
use m1_engine::gguf::GgmlType;
#[cfg(not(target_arch = "wasm32"))]
use m1_engine::gpu::bench::{self, BenchOptions};
#[cfg(not(target_arch = "wasm32"))]
use m1_engine::gpu::{Gpu, GpuOptions, Tuning};

// Native only (it blocks on the GPU with pollster); the browser twin is a wasm test.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
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
    if let Some(n) = value("--tokens") {
        opts.tokens = n.parse()?;
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
    // Overrides of the adapter's mat-vec shape and arithmetic, to compare.
    let mut tuning = Tuning::for_adapter(&gpu.report);
    if let Some(wg) = value("--wg") {
        tuning.matvec_wg = Some(wg.parse()?);
    }
    if let Some(lanes) = value("--lanes") {
        tuning.matvec_lanes = Some(lanes.parse()?);
    }
    if let Some(rows) = value("--rows") {
        tuning.matvec_rows = Some(rows.parse()?);
    }
    if let Some(f16) = value("--f16-math") {
        tuning.f16_math = f16.parse()?;
    }
    if let Some(sw) = value("--software") {
        tuning.software = sw.parse()?;
    }
    opts.tuning = Some(tuning);
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
