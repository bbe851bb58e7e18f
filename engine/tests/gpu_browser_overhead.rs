//! The browser twin of gpu_overhead.rs: CPU cost of encoding one decode step through the
//! WebGPU JS API, and the page's per-token host cost on m1-7B's graph. `WASM_BINDGEN_TEST_TIMEOUT=300 CHROMEDRIVER=/usr/bin/chromedriver cargo test
//! -p m1-engine --release --target wasm32-unknown-unknown --test gpu_browser_overhead --
//! --include-ignored --nocapture`.
#![cfg(target_arch = "wasm32")]
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
wasm_bindgen_test_configure!(run_in_browser);

use m1_engine::backend::{Backend, GpuBackend, Sampling};
use m1_engine::clock::now_ms;
use m1_engine::gpu::{Gpu, GpuModel, GpuModelOptions, GpuOptions, Ops, StepStats};
use m1_engine::quantize::FileType;
use m1_engine::synthetic::{Shape, Synthetic};

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
    // performance.now(): 0.1 ms steps on a page that is not cross-origin isolated, so the
    // mean over the steps after the first two is the figure.
    let (mut host, mut counted) = (0.0, 0);
    for step in 0..24u32 {
        let t0 = now_ms();
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        work.encode(&gpu, &mut enc, step);
        let t1 = now_ms();
        gpu.queue.submit([enc.finish()]);
        let t2 = now_ms();
        let _ = work.token.read(&gpu).await;
        let t3 = now_ms();
        console_log!(
            "step {step}: encode {:.2} ms, submit {:.2} ms, GPU wait {:.2} ms",
            t1 - t0,
            t2 - t1,
            t3 - t2
        );
        if step >= 2 {
            host += t2 - t0;
            counted += 1;
        }
    }
    console_log!(
        "mean host (encode + submit) over steps 2..24: {:.3} ms for {} dispatches",
        host / counted as f64,
        work.dispatches()
    );
    gpu.take_error().expect("GPU error");
}

/// The page's per-token path on m1-7B's graph: 28 layers with Q4_K_M's types by layer,
/// 128-value heads with grouped KV and q/k/v biases, an untied output, prepared once;
/// decoded one step at a time (the host's own cost) and two steps ahead as the page does;
/// widths cut to 256 so that SwiftShader's share of the cores stays small.
#[wasm_bindgen_test]
#[ignore]
async fn m1_graph_host_ms_per_token() {
    let Ok(gpu) = Gpu::new(GpuOptions::default()).await else {
        console_log!("SKIP: no GPU adapter");
        return;
    };
    let shape = Shape {
        name: "m1-7b-graph",
        n_layer: 28,
        n_embd: 256,
        n_ff: 512,
        n_head: 2,
        n_head_kv: 1,
        vocab: 1024,
        tied: false,
    };
    let model = Synthetic::new(shape, FileType::Q4KM).expect("synthetic model");
    let options = GpuModelOptions {
        context: Some(128),
        ..GpuModelOptions::default()
    };
    let mut loaded = GpuModel::load(gpu, &model.header, model.source(), options)
        .await
        .expect("load");
    let greedy = Sampling::GREEDY;
    let n = 48;

    // One step at a time: each is encoded and submitted after the last has run, so
    // SwiftShader is not computing on the same cores meanwhile (as a hardware GPU would not
    // be): the host's own cost.
    loaded.forward(&[1, 2, 3, 4]).expect("prefill");
    let ticket = loaded.submit_sample(&greedy).expect("sample");
    loaded.read_token(ticket).await.expect("read");
    let (before, t0) = (loaded.stats(), now_ms());
    for _ in 0..n {
        loaded.feed_sampled().expect("feed");
        let ticket = loaded.submit_sample(&greedy).expect("sample");
        loaded.read_token(ticket).await.expect("read");
    }
    report(
        "one step at a time",
        n,
        before,
        loaded.stats(),
        now_ms() - t0,
    );

    // As the page decodes: two steps in flight.
    loaded.reset();
    let mut backend = GpuBackend::new(loaded);
    backend.feed(&[1, 2, 3, 4]).await.expect("prefill");
    let mut token = backend.sample(&greedy).await.expect("sample");
    let (before, t0) = (backend.model().stats(), now_ms());
    for _ in 0..n {
        backend.feed(&[token]).await.expect("feed");
        token = backend.sample(&greedy).await.expect("sample");
    }
    let after = backend.model().stats();
    report("two steps in flight", n, before, after, now_ms() - t0);
}

fn report(how: &str, n: usize, before: StepStats, after: StepStats, wall: f64) {
    let per = |a: f64, b: f64| (a - b) / n as f64;
    console_log!(
        "m1-7B graph, {n} tokens, {how}: host {:.3} ms per token (encode {:.3} + submit \
         {:.3}), {:.0} dispatches and {:.0} pass per token, wall {:.1} ms per token",
        per(after.host_ms, before.host_ms),
        per(after.encode_ms, before.encode_ms),
        per(
            after.host_ms - after.encode_ms,
            before.host_ms - before.encode_ms
        ),
        per(after.dispatches as f64, before.dispatches as f64),
        per(after.passes as f64, before.passes as f64),
        wall / n as f64
    );
}
