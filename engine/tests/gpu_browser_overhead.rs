//! The browser twin of gpu_overhead.rs: CPU cost of encoding one decode step through the
//! WebGPU JS API. `WASM_BINDGEN_TEST_TIMEOUT=300 CHROMEDRIVER=/usr/bin/chromedriver cargo test
//! -p m1-engine --release --target wasm32-unknown-unknown --test gpu_browser_overhead --
//! --include-ignored --nocapture`.
#![cfg(target_arch = "wasm32")]
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
wasm_bindgen_test_configure!(run_in_browser);

use m1_engine::gpu::{Gpu, GpuOptions, Ops};

mod common;
use common::decode_step::DecodeStep;

#[wasm_bindgen_test]
#[ignore]
async fn decode_step_encode_overhead() {
    let Ok(gpu) = Gpu::new(GpuOptions::default()).await else {
        console_log!("SKIP: no GPU adapter");
        return;
    };
    let mut ops = Ops::new(&gpu).expect("ops");
    let work = DecodeStep::new(&gpu, &mut ops);
    for step in 0..12u32 {
        let t0 = js_sys::Date::now();
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        work.encode(&gpu, &mut enc, step);
        let t1 = js_sys::Date::now();
        gpu.queue.submit([enc.finish()]);
        let t2 = js_sys::Date::now();
        let _ = work.token.read(&gpu).await;
        let t3 = js_sys::Date::now();
        console_log!(
            "step {step}: encode {:.2} ms, submit {:.2} ms, GPU wait {:.2} ms",
            t1 - t0,
            t2 - t1,
            t3 - t2
        );
    }
    gpu.take_error().expect("GPU error");
}
