//! One decode step's worth of GPU work (28 layers of the unfused ops, 17 per layer: more
//! dispatches than the model's fused step) on tiny shapes, prepared once as a live recording,
//! so that timing a step's encoding (step uniform, one pass replaying it, submit) measures
//! the host and driver overhead rather than GPU work: the body of gpu_overhead.rs (native)
//! and gpu_browser_overhead.rs (WebGPU in Chromium).

use m1_engine::gguf::GgmlType;
use m1_engine::gpu::{
    F32Buffer, Gpu, KvCache, Ops, Recording, RopeFreqs, RopeMode, Step, U32Buffer, WeightTensor,
};

const DIM: usize = 64;
const FF: usize = 128;
const KV_DIM: usize = 32;
const N_HEADS: u32 = 2;
const N_KV: u32 = 1;
const HEAD_DIM: u32 = 32;
const LAYERS: usize = 28;
const VOCAB: usize = 1000;

/// Zeroed weights and activations; one layer's weights serve every layer.
pub struct DecodeStep {
    step: m1_engine::gpu::GpuBuffer,
    rec: Option<Recording>,
    wq: WeightTensor,
    wk: WeightTensor,
    wo: WeightTensor,
    wg: WeightTensor,
    wd: WeightTensor,
    out: WeightTensor,
    /// Activations: x, h, q, k, v, att, o, g, u, norm weights, q/k/v bias.
    a: [F32Buffer; 11],
    freqs: RopeFreqs,
    cache: KvCache,
    ids: U32Buffer,
    logits: F32Buffer,
    /// The sampled token: reading it back waits for the step.
    pub token: U32Buffer,
}

impl DecodeStep {
    pub fn new(gpu: &Gpu, ops: &mut Ops) -> Self {
        let w = |rows: usize, cols: usize| {
            let bytes = vec![0u8; rows * cols / 32 * 34];
            WeightTensor::upload(gpu, "w", GgmlType::Q8_0, rows, cols, &bytes).expect("w")
        };
        let z = |n: usize| F32Buffer::zeros(gpu, "a", n).expect("buf");
        let cache = KvCache::new(gpu, LAYERS, 256, N_KV, HEAD_DIM);
        let step = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step"),
            size: std::mem::size_of::<Step>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut work = Self {
            step,
            rec: None,
            wq: w(DIM, DIM),
            wk: w(KV_DIM, DIM),
            wo: w(DIM, DIM),
            wg: w(FF, DIM),
            wd: w(DIM, FF),
            out: w(VOCAB, DIM),
            a: [
                z(DIM),
                z(DIM),
                z(DIM),
                z(KV_DIM),
                z(KV_DIM),
                z(DIM),
                z(DIM),
                z(FF),
                z(FF),
                z(DIM),
                z(DIM),
            ],
            freqs: RopeFreqs::new(gpu, HEAD_DIM, 1e6, None).expect("freqs"),
            cache: cache.expect("cache"),
            ids: U32Buffer::zeros(gpu, "ids", 1).expect("ids"),
            logits: z(VOCAB),
            token: U32Buffer::zeros(gpu, "token", 1).expect("token"),
        };
        let mut rec = ops.live_recording(&work.step);
        work.record(ops, &mut rec);
        rec.finish(&gpu.queue);
        work.rec = Some(rec);
        work
    }

    /// Dispatches of one step.
    pub fn dispatches(&self) -> usize {
        self.rec.as_ref().map_or(0, Recording::len)
    }

    /// Encodes decode step `step` (its position) into `enc`: the step uniform, then one pass.
    pub fn encode(&self, gpu: &Gpu, enc: &mut wgpu::CommandEncoder, step: u32) {
        let uniform = Step {
            pos: step,
            ..Step::default()
        };
        gpu.queue.write_buffer(&self.step, 0, uniform.as_bytes());
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("step"),
            timestamp_writes: None,
        });
        if let Some(rec) = &self.rec {
            rec.replay(&mut pass);
        }
    }

    fn record(&self, ops: &mut Ops, enc: &mut Recording) {
        let step = 0;
        let [x, h, q, k, v, att, o, g, u, norm, bq] = &self.a;
        let (wq, wk, wo, wg, wd) = (&self.wq, &self.wk, &self.wo, &self.wg, &self.wd);
        let (freqs, cache) = (&self.freqs, &self.cache);
        ops.embed(enc, wq, &self.ids, x, 1).expect("embed");
        for l in 0..LAYERS {
            ops.rms_norm(enc, x, norm, h, 1, 1e-6).expect("op");
            ops.matmul(enc, h, wq, Some(bq), q, 1).expect("op");
            ops.matmul(enc, h, wk, Some(bq), k, 1).expect("op");
            ops.matmul(enc, h, wk, Some(bq), v, 1).expect("op");
            ops.rope(enc, q, freqs, RopeMode::Neox, N_HEADS, HEAD_DIM, step, 1)
                .expect("op");
            ops.rope(enc, k, freqs, RopeMode::Neox, N_KV, HEAD_DIM, step, 1)
                .expect("op");
            ops.kv_write(enc, cache, l, k, v, step, 1).expect("op");
            ops.attention(enc, q, cache, l, att, N_HEADS, step, 1)
                .expect("op");
            ops.matmul(enc, att, wo, None, o, 1).expect("op");
            ops.add(enc, x, o, DIM).expect("op");
            ops.rms_norm(enc, x, norm, h, 1, 1e-6).expect("op");
            ops.matmul(enc, h, wg, None, g, 1).expect("op");
            ops.matmul(enc, h, wg, None, u, 1).expect("op");
            ops.swiglu(enc, g, u, FF).expect("op");
            ops.matmul(enc, g, wd, None, o, 1).expect("op");
            ops.add(enc, x, o, DIM).expect("op");
        }
        ops.matmul(enc, x, &self.out, None, &self.logits, 1)
            .expect("op");
        ops.argmax(enc, &self.logits, VOCAB as u32, &self.token)
            .expect("op");
    }
}
