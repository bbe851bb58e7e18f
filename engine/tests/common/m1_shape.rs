//! A GGUF with m1-7B's own tensor shapes (Qwen2.5-7B: width 3584, 28 query heads on 4 KV
//! heads of 128, FFN 18944, q/k/v biases, an untied output), llama.cpp's tensor types for a
//! file type (m1 ships as Q4_K_M), and one decoder layer of seeded random weights, built in
//! memory: the test models are 0.5B and 135M, so this is where m1's widths and head size
//! meet the engine end to end.

use m1_engine::gguf::{GgmlType, Layout, TensorSpec, Value};
use m1_engine::quantize::{encode, tensor_type, FileType};

/// m1-7B's vocabulary (its 152064-row embedding and output are 306 and 447 MB).
pub const M1_VOCAB: u64 = 152_064;

/// The file's bytes; `vocab` rows of embedding and output (m1's own: [`M1_VOCAB`]), each
/// tensor in the type `file_type` gives it.
pub fn m1_shaped_gguf(vocab: u64, file_type: FileType) -> Vec<u8> {
    let (n_embd, n_ff, n_head, n_kv) = (3584u64, 18944u64, 28u64, 4u64);
    let kv_dim = n_kv * (n_embd / n_head);
    let u32v = |v: u64| Value::U32(v as u32);
    let metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("qwen2".into())),
        (
            "general.name".into(),
            Value::String("m1-7B-shaped random layer".into()),
        ),
        ("qwen2.block_count".into(), u32v(1)),
        ("qwen2.context_length".into(), u32v(32_768)),
        ("qwen2.embedding_length".into(), u32v(n_embd)),
        ("qwen2.feed_forward_length".into(), u32v(n_ff)),
        ("qwen2.attention.head_count".into(), u32v(n_head)),
        ("qwen2.attention.head_count_kv".into(), u32v(n_kv)),
        ("qwen2.rope.freq_base".into(), Value::F32(1e6)),
        (
            "qwen2.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-6),
        ),
        ("qwen2.vocab_size".into(), u32v(vocab)),
    ];
    // (name, GGUF dims (row length first), scale of the random values, mean).
    let tensors: Vec<(&str, Vec<u64>, f32, f32)> = vec![
        ("token_embd.weight", vec![n_embd, vocab], 0.02, 0.0),
        ("blk.0.attn_norm.weight", vec![n_embd], 0.1, 1.0),
        ("blk.0.attn_q.weight", vec![n_embd, n_embd], 0.02, 0.0),
        ("blk.0.attn_q.bias", vec![n_embd], 0.1, 0.0),
        ("blk.0.attn_k.weight", vec![n_embd, kv_dim], 0.02, 0.0),
        ("blk.0.attn_k.bias", vec![kv_dim], 0.1, 0.0),
        ("blk.0.attn_v.weight", vec![n_embd, kv_dim], 0.02, 0.0),
        ("blk.0.attn_v.bias", vec![kv_dim], 0.1, 0.0),
        ("blk.0.attn_output.weight", vec![n_embd, n_embd], 0.02, 0.0),
        ("blk.0.ffn_norm.weight", vec![n_embd], 0.1, 1.0),
        ("blk.0.ffn_gate.weight", vec![n_embd, n_ff], 0.02, 0.0),
        ("blk.0.ffn_up.weight", vec![n_embd, n_ff], 0.02, 0.0),
        ("blk.0.ffn_down.weight", vec![n_ff, n_embd], 0.02, 0.0),
        ("output_norm.weight", vec![n_embd], 0.1, 1.0),
        ("output.weight", vec![n_embd, vocab], 0.02, 0.0),
    ];
    // Types as m1's own layer 0 gets them (of 28 layers; in Q4_K_M, attn_v and ffn_down
    // are q6_k).
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|(name, dims, ..)| TensorSpec {
            name: name.to_string(),
            dims: dims.clone(),
            ggml_type: tensor_type(file_type, name, dims, 28, false),
        })
        .collect();
    let layout = Layout::new(&metadata, specs).expect("layout");
    let mut w = layout
        .start(Vec::with_capacity(layout.file_size() as usize))
        .expect("start");
    for (i, (name, dims, scale, mean)) in tensors.iter().enumerate() {
        let ty = layout.tensors()[i].ggml_type;
        let bytes = random_tensor(ty, dims, *scale, *mean, i as u64);
        assert_eq!(bytes.len() as u64, layout.tensor_size(i), "{name}");
        w.write(i, &bytes).expect("write");
    }
    w.finish().expect("finish")
}

/// A tensor of `dims` (row length first) with values `mean + scale * u`, u uniform in
/// [-1, 1) from a seeded hash, encoded as `ty`; quantized on two threads.
fn random_tensor(ty: GgmlType, dims: &[u64], scale: f32, mean: f32, seed: u64) -> Vec<u8> {
    let row = dims[0] as usize;
    let rows = dims[1..].iter().product::<u64>() as usize;
    let value = |i: usize| {
        let mut x = (i as u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x2545_F491_4F6C_DD1D);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        mean + scale * ((x >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
    };
    let chunk_rows = rows.div_ceil(2).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..rows)
            .step_by(chunk_rows)
            .map(|r0| {
                s.spawn(move || {
                    let r1 = (r0 + chunk_rows).min(rows);
                    let values: Vec<f32> = (r0 * row..r1 * row).map(value).collect();
                    encode(ty, values, row).expect("encode")
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("thread"))
            .collect()
    })
}
