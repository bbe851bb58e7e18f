//! ModelConfig and the weight-name table, from the real test models' headers.

// Reads model files from disk: native only (wasm32 has no filesystem, and FileSource).
#![cfg(not(target_arch = "wasm32"))]

use futures::executor::block_on;
use m1_engine::gguf::{parse, read_header, FileSource, Header};
use m1_engine::model::{Architecture, ConfigError, ModelConfig, RopeType, WeightTable};

mod common;
use common::test_model;

fn header(name: &str) -> Option<Header> {
    let path = test_model(name)?;
    let mut src = FileSource::open(path).unwrap();
    Some(block_on(read_header(&mut src)).unwrap())
}

#[test]
fn qwen2_config_and_weights() {
    let Some(h) = header("qwen2.5-coder-0.5b-instruct.gguf") else {
        return;
    };
    let c = ModelConfig::from_header(&h).unwrap();
    let expected = ModelConfig {
        architecture: Architecture::Qwen2,
        n_layer: 24,
        n_embd: 896,
        n_ff: 4864,
        n_head: 14,
        n_head_kv: 2,
        head_dim: 64,
        n_rot: 64,
        rope_theta: 1_000_000.0,
        rope_type: RopeType::Neox,
        rms_eps: 1e-6,
        context_length: 32768,
        vocab_size: 151_936,
        tied_output: false,
        qkv_bias: true,
    };
    assert_eq!(c, expected);
    let table = WeightTable::new(&c);
    table.validate(&h).unwrap();
    assert_eq!(table.all().count(), 291, "every tensor in the file is used");
    assert_eq!(table.output.name, "output.weight");
    assert_eq!(table.layers[3].attn_k.name, "blk.3.attn_k.weight");
    assert_eq!(table.layers[3].attn_k.dims, [896, 128]);
    assert_eq!(table.layers[3].attn_q_bias.as_ref().unwrap().dims, [896]);
}

#[test]
fn smollm2_config_and_weights() {
    let Some(h) = header("smollm2-135m-instruct-q4_1.gguf") else {
        return;
    };
    let c = ModelConfig::from_header(&h).unwrap();
    assert_eq!(c.architecture, Architecture::Llama);
    assert_eq!(c.rope_type, RopeType::Normal);
    assert_eq!((c.n_layer, c.n_embd, c.n_ff), (30, 576, 1536));
    assert_eq!((c.n_head, c.n_head_kv, c.head_dim, c.n_rot), (9, 3, 64, 64));
    assert_eq!((c.rope_theta, c.rms_eps), (100_000.0, 1e-5));
    assert_eq!((c.context_length, c.vocab_size), (8192, 49_152));
    assert!(c.tied_output && !c.qkv_bias);
    let table = WeightTable::new(&c);
    table.validate(&h).unwrap();
    assert_eq!(table.output.name, "token_embd.weight");
    // The tied head is token_embd itself: 30 x 9 block tensors, token_embd, output_norm,
    // each listed once.
    assert_eq!(table.all().count(), 272, "every tensor in the file, once");
}

/// A GGUF with the given metadata and F32 tensors, their data all zeros.
fn gguf(kvs: &[(String, u32, Vec<u8>)], tensors: &[(&str, Vec<u64>)]) -> Vec<u8> {
    let mut b = Vec::new();
    let str = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, ty, v) in kvs {
        str(&mut b, k);
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(v);
    }
    let mut offset = 0u64;
    for (name, dims) in tensors {
        str(&mut b, name);
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes()); // F32
        b.extend_from_slice(&offset.to_le_bytes());
        offset += (dims.iter().product::<u64>() * 4).div_ceil(32) * 32;
    }
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    b.resize(b.len() + offset as usize, 0);
    b
}

fn s(v: &str) -> Vec<u8> {
    let mut b = (v.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(v.as_bytes());
    b
}

fn u(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn f(v: f32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn tiny_llama(
    arch: &str,
    tensors: &[(&str, Vec<u64>)],
) -> Result<(ModelConfig, Header), ConfigError> {
    let k = |x: &str| format!("{arch}.{x}");
    let kvs = vec![
        ("general.architecture".to_string(), 8, s(arch)),
        (k("block_count"), 4, u(1)),
        (k("embedding_length"), 4, u(8)),
        (k("feed_forward_length"), 4, u(16)),
        (k("attention.head_count"), 4, u(2)),
        (k("attention.head_count_kv"), 4, u(1)),
        (k("attention.layer_norm_rms_epsilon"), 6, f(1e-5)),
        (k("context_length"), 4, u(64)),
        (k("vocab_size"), 4, u(10)),
    ];
    let bytes = gguf(&kvs, tensors);
    let h = parse(&bytes, bytes.len() as u64).unwrap();
    let c = ModelConfig::from_header(&h)?;
    Ok((c, h))
}

fn llama_tensors() -> Vec<(&'static str, Vec<u64>)> {
    vec![
        ("token_embd.weight", vec![8, 10]),
        ("blk.0.attn_norm.weight", vec![8]),
        ("blk.0.attn_q.weight", vec![8, 8]),
        ("blk.0.attn_k.weight", vec![8, 4]),
        ("blk.0.attn_v.weight", vec![8, 4]),
        ("blk.0.attn_output.weight", vec![8, 8]),
        ("blk.0.ffn_norm.weight", vec![8]),
        ("blk.0.ffn_gate.weight", vec![8, 16]),
        ("blk.0.ffn_up.weight", vec![8, 16]),
        ("blk.0.ffn_down.weight", vec![16, 8]),
        ("output_norm.weight", vec![8]),
    ]
}

#[test]
fn unsupported_architecture_is_named() {
    let err = tiny_llama("mamba", &llama_tensors()).unwrap_err();
    assert_eq!(err, ConfigError::UnsupportedArchitecture("mamba".into()));
}

#[test]
fn missing_tensor_and_shape_mismatch_are_named() {
    let (c, h) = tiny_llama("llama", &llama_tensors()).unwrap();
    assert!(c.tied_output);
    assert_eq!((c.head_dim, c.q_dim(), c.kv_dim()), (4, 8, 4));
    WeightTable::new(&c).validate(&h).unwrap();

    let mut missing = llama_tensors();
    missing.retain(|(n, _)| *n != "blk.0.ffn_up.weight");
    let (c, h) = tiny_llama("llama", &missing).unwrap();
    assert_eq!(
        WeightTable::new(&c).validate(&h),
        Err(ConfigError::MissingTensor {
            name: "blk.0.ffn_up.weight".into()
        })
    );

    let mut wrong = llama_tensors();
    wrong[3].1 = vec![8, 8];
    let (c, h) = tiny_llama("llama", &wrong).unwrap();
    assert_eq!(
        WeightTable::new(&c).validate(&h),
        Err(ConfigError::ShapeMismatch {
            name: "blk.0.attn_k.weight".into(),
            expected: vec![8, 4],
            found: vec![8, 8],
        })
    );

    // qwen2 needs q/k/v biases.
    let (c, h) = tiny_llama("qwen2", &llama_tensors()).unwrap();
    assert_eq!(c.rope_type, RopeType::Neox);
    assert_eq!(
        WeightTable::new(&c).validate(&h),
        Err(ConfigError::MissingTensor {
            name: "blk.0.attn_q.bias".into()
        })
    );
}

/// Found by a GGUF built for the fuzz target's time limit: every lookup of the weight table
/// scanned the tensor list, so a 975 KB file of 1024 one-element layers (12,290 tensors)
/// took 0.3 s per validation, and a loader validates and resolves three times. Names are
/// indexed now.
#[test]
fn the_weight_table_of_a_thousand_layers_resolves_in_linear_time() {
    use m1_engine::gguf::{GgmlType, Layout, TensorSpec, Value};
    let layers = 1024u32;
    let key = |k: &str| format!("qwen2.{k}");
    let md = vec![
        (
            "general.architecture".to_string(),
            Value::String("qwen2".into()),
        ),
        (key("block_count"), Value::U32(layers)),
        (key("context_length"), Value::U32(8)),
        (key("embedding_length"), Value::U32(2)),
        (key("feed_forward_length"), Value::U32(1)),
        (key("attention.head_count"), Value::U32(1)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        (key("vocab_size"), Value::U32(1)),
    ];
    let spec = |name: String, dims: &[u64]| TensorSpec {
        name,
        dims: dims.to_vec(),
        ggml_type: GgmlType::F32,
    };
    let mut tensors = vec![
        spec("token_embd.weight".into(), &[2, 1]),
        spec("output_norm.weight".into(), &[2]),
    ];
    for i in 0..layers {
        for (name, dims) in [
            ("attn_norm.weight", &[2u64][..]),
            ("attn_q.weight", &[2, 2]),
            ("attn_k.weight", &[2, 2]),
            ("attn_v.weight", &[2, 2]),
            ("attn_q.bias", &[2]),
            ("attn_k.bias", &[2]),
            ("attn_v.bias", &[2]),
            ("attn_output.weight", &[2, 2]),
            ("ffn_norm.weight", &[2]),
            ("ffn_gate.weight", &[2, 1]),
            ("ffn_up.weight", &[2, 1]),
            ("ffn_down.weight", &[1, 2]),
        ] {
            tensors.push(spec(format!("blk.{i}.{name}"), dims));
        }
    }
    let layout = Layout::new(&md, tensors).unwrap();
    let mut bytes = Vec::new();
    layout.start(&mut bytes).unwrap();
    let h = parse(&bytes, layout.file_size()).unwrap();
    let c = ModelConfig::from_header(&h).unwrap();
    let table = WeightTable::new(&c);
    let start = std::time::Instant::now();
    for _ in 0..3 {
        table.validate(&h).unwrap();
    }
    // ~10 ms indexed; the scan took 0.45 s for these three passes (test profile).
    assert!(start.elapsed().as_millis() < 150, "{:?}", start.elapsed());
}

/// Found reviewing the config checks for the gguf fuzz target: head count and key length
/// were bounded one by one (2^20 each), so their product (the query width) overflowed usize
/// on wasm32 and the KV cache's byte count overflowed u64 natively; a rope base of 0, a
/// negative or an infinite one passed and made every RoPE angle NaN.
#[test]
fn widths_bounded_together_and_rope_base_positive() {
    let with = |extra: Vec<(String, u32, Vec<u8>)>| {
        let k = |x: &str| format!("llama.{x}");
        let mut kvs = vec![
            ("general.architecture".to_string(), 8, s("llama")),
            (k("block_count"), 4, u(1024)),
            (k("embedding_length"), 4, u(8)),
            (k("feed_forward_length"), 4, u(16)),
            (k("attention.head_count"), 4, u(1 << 19)),
            (k("attention.layer_norm_rms_epsilon"), 6, f(1e-5)),
            (k("context_length"), 4, u(1 << 24)),
            (k("vocab_size"), 4, u(10)),
        ];
        kvs.retain(|(key, _, _)| extra.iter().all(|(e, _, _)| e != key));
        kvs.extend(extra);
        let bytes = gguf(&kvs, &[]);
        ModelConfig::from_header(&parse(&bytes, bytes.len() as u64).unwrap())
    };
    let key_length = |v: u32| ("llama.attention.key_length".to_string(), 4, u(v));
    let err = with(vec![key_length(4)]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidValue { key, .. } if key == "llama.attention.key_length"),
        "{err}"
    );
    // At the limit the KV cache is counted without overflow: 2 x 1024 layers x 2^24
    // positions x 2^20 wide x 4 bytes.
    let c = with(vec![key_length(2)]).unwrap();
    assert_eq!(c.kv_cache_bytes(c.context_length, 4), 1 << 57);
    assert_eq!(c.kv_cache_bytes(usize::MAX, u64::MAX), u64::MAX);

    for base in [0.0f32, -1.0, f32::INFINITY, f32::NAN] {
        let err = with(vec![
            key_length(2),
            ("llama.rope.freq_base".to_string(), 6, f(base)),
        ])
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidValue { key, .. } if key == "llama.rope.freq_base"),
            "{base}: {err}"
        );
    }
}
