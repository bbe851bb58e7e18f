//! CPU cost of encoding one decode step the unprepared way (an `Ops` call per op, 28 layers x
//! 17 ops, qwen2.5-7b's op count before the decode plan) with tiny shapes, on the host-only
//! device (`GpuOptions::host_only`: nothing executes), so every figure is host work; `m1
//! bench --host-only` measures the prepared step the same way. Not a pass/fail test:
//! `cargo test -p m1-engine --release --test gpu_overhead -- --ignored --nocapture`.
#![cfg(not(target_arch = "wasm32"))]

use std::time::Instant;

use m1_engine::gpu::{Gpu, GpuOptions, Ops};

mod common;
use common::decode_step::DecodeStep;

#[test]
#[ignore]
fn decode_step_encode_overhead() {
    let gpu = pollster::block_on(Gpu::new(GpuOptions {
        host_only: true,
        ..GpuOptions::default()
    }))
    .expect("the noop device");
    let mut ops = Ops::new(&gpu).expect("ops");
    let work = DecodeStep::new(&gpu, &mut ops);
    for step in 0..12u32 {
        let t0 = Instant::now();
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        work.encode(&gpu, &mut enc, step);
        let t1 = Instant::now();
        gpu.queue.submit([enc.finish()]);
        let t2 = Instant::now();
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
        let t3 = Instant::now();
        println!(
            "step {step}: encode {:.2} ms, submit {:.2} ms, GPU wait {:.2} ms",
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            (t3 - t2).as_secs_f64() * 1e3
        );
    }
    gpu.take_error().expect("GPU error");
}
