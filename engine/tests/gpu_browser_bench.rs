//! The browser twin of examples/kernel_bench.rs: each decode mat-vec type at m1-7B's shapes
//! in Chromium's WebGPU (`gpu::bench::matvec`), printed as effective GB/s. Not a pass/fail
//! test: `M1_BENCH_TYPES=Q4_K,Q6_K,Q8_0 WASM_BINDGEN_TEST_TIMEOUT=1800
//! CHROMEDRIVER=/usr/bin/chromedriver cargo test -p m1-engine --target wasm32-unknown-unknown
//! --test gpu_browser_bench -- --include-ignored --nocapture` (the types and the shapes,
//! `M1_BENCH_SHAPES=attn_output,output`, are read when the test is built).
#![cfg(target_arch = "wasm32")]

use m1_engine::gguf::GgmlType;
use m1_engine::gpu::bench::{self, BenchOptions};
use m1_engine::gpu::{Gpu, GpuOptions};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
#[ignore]
async fn matvec_kernels_at_m1_shapes() {
    let gpu = match Gpu::new(GpuOptions {
        timestamps: true,
        ..GpuOptions::default()
    })
    .await
    {
        Ok(gpu) => gpu,
        Err(e) => {
            console_log!("SKIP: no WebGPU adapter ({e})");
            return;
        }
    };
    let mut opts = BenchOptions {
        reps: 4,
        ..BenchOptions::default()
    };
    if let Some(list) = option_env!("M1_BENCH_TYPES") {
        opts.types = list
            .split(',')
            .filter_map(|t| {
                GgmlType::ALL
                    .iter()
                    .copied()
                    .find(|ty| ty.name().eq_ignore_ascii_case(t))
            })
            .collect();
    }
    if let Some(list) = option_env!("M1_BENCH_SHAPES") {
        let names: Vec<&str> = list.split(',').collect();
        opts.shapes.retain(|s| names.contains(&s.name));
    }
    let report = bench::matvec(&gpu, &opts, |k| {
        console_log!(
            "{} {} {:.3} ms {:.2} GB/s",
            k.ty.name(),
            k.shape.name,
            k.ms,
            k.gb_s()
        )
    })
    .await
    .expect("benchmark");
    console_log!("{report}");
}
