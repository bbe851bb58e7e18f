//! One decode step's worth of GPU work (28 layers x 17 ops, qwen2.5-7b's op count) on tiny
//! shapes, so that timing its encoding measures wgpu/driver overhead rather than GPU work:
//! the body of gpu_overhead.rs (native) and gpu_browser_overhead.rs (WebGPU in Chromium).

use m1_engine::gpu::{
    F32Buffer, Gpu, KvCache, KvDtype, Ops, RopeFreqs, RopeMode, U32Buffer, WeightTensor, WeightType,
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
    pub fn new(gpu: &Gpu) -> Self {
        let w = |rows: usize, cols: usize| {
            let bytes = vec![0u8; rows * cols / 32 * 34];
            WeightTensor::upload(gpu, "w", WeightType::Q8_0, rows, cols, &bytes).expect("w")
        };
        let z = |n: usize| F32Buffer::zeros(gpu, "a", n).expect("buf");
        let cache = KvCache::new(gpu, LAYERS, 256, N_KV, HEAD_DIM, KvDtype::preferred(gpu));
        Self {
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
        }
    }

    /// Encodes decode step `step` (its position) into `enc`.
    pub fn encode(&self, ops: &mut Ops, enc: &mut wgpu::CommandEncoder, step: u32) {
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
