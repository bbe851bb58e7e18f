//! Models of real shapes and llama.cpp's per-tensor types, with seeded random weights made on
//! the fly: `m1 bench --synthetic qwen2.5-7b:q4_k_m` measures m1's graph on any machine with
//! nothing downloaded or carried (m1 itself is 15 GB of bf16). The header is a real GGUF
//! header; the data is generated block by block when read, so a 4.7 GB model costs no
//! memory or disk.
//!
//! Quantized blocks are random bytes with their f16 scales set to small constants (random
//! scale bits could be inf or NaN); float tensors are uniform in a small range, norm weights
//! near 1. The logits are meaningless, the bytes moved and the kernels run are the real ones.

use crate::gguf::{parse, ByteSource, GgmlType, GgufError, Header, Layout, TensorSpec, Value};
use crate::model::{Layer, WeightSpec, WeightTable, TOKEN_EMBD};
use crate::quantize::{tensor_type, FileType};

/// A model family's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub name: &'static str,
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_ff: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub vocab: u64,
    pub tied: bool,
}

/// The shapes `--synthetic` knows: m1-7B's (Qwen2.5-7B) and the 0.5B test model's.
pub const SHAPES: &[Shape] = &[
    Shape {
        name: "qwen2.5-7b",
        n_layer: 28,
        n_embd: 3584,
        n_ff: 18944,
        n_head: 28,
        n_head_kv: 4,
        vocab: 152_064,
        tied: false,
    },
    Shape {
        name: "qwen2.5-0.5b",
        n_layer: 24,
        n_embd: 896,
        n_ff: 4864,
        n_head: 14,
        n_head_kv: 2,
        vocab: 151_936,
        tied: true,
    },
];

/// Why a synthetic model name is not one we can build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntheticError {
    #[error("unknown synthetic model {0:?}: use SHAPE:TYPE, SHAPE one of {shapes}, TYPE one of {types}", shapes = shape_names(), types = type_names())]
    Unknown(String),
    #[error("cannot lay out the synthetic model: {0}")]
    Layout(String),
}

fn shape_names() -> String {
    SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

fn type_names() -> String {
    FileType::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A synthetic model: its header and a source of its bytes.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub header: Header,
    pub shape: Shape,
    pub file_type: FileType,
    layout: Layout,
}

impl Synthetic {
    /// `name` is `SHAPE:TYPE`, e.g. `qwen2.5-7b:q4_k_m`.
    pub fn parse(name: &str) -> Result<Self, SyntheticError> {
        let unknown = || SyntheticError::Unknown(name.to_string());
        let (shape, ty) = name.split_once(':').ok_or_else(unknown)?;
        let shape = *SHAPES
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(shape))
            .ok_or_else(unknown)?;
        let file_type = *FileType::ALL
            .iter()
            .find(|t| t.name().eq_ignore_ascii_case(ty))
            .ok_or_else(unknown)?;
        Self::new(shape, file_type)
    }

    pub fn new(shape: Shape, file_type: FileType) -> Result<Self, SyntheticError> {
        let s = shape;
        let u = |v: u64| Value::U32(v as u32);
        let metadata: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String("qwen2".into())),
            (
                "general.name".into(),
                Value::String(format!("{} synthetic", s.name)),
            ),
            ("qwen2.block_count".into(), u(s.n_layer)),
            ("qwen2.context_length".into(), u(32_768)),
            ("qwen2.embedding_length".into(), u(s.n_embd)),
            ("qwen2.feed_forward_length".into(), u(s.n_ff)),
            ("qwen2.attention.head_count".into(), u(s.n_head)),
            ("qwen2.attention.head_count_kv".into(), u(s.n_head_kv)),
            ("qwen2.rope.freq_base".into(), Value::F32(1e6)),
            (
                "qwen2.attention.layer_norm_rms_epsilon".into(),
                Value::F32(1e-6),
            ),
            ("qwen2.vocab_size".into(), u(s.vocab)),
        ];
        // The table the engine reads, from a config of these shapes: names and dims come
        // from the same tensor list the loaders use.
        let config = crate::model::ModelConfig {
            architecture: crate::model::Architecture::Qwen2,
            n_layer: s.n_layer as usize,
            n_embd: s.n_embd as usize,
            n_ff: s.n_ff as usize,
            n_head: s.n_head as usize,
            n_head_kv: s.n_head_kv as usize,
            head_dim: (s.n_embd / s.n_head) as usize,
            n_rot: (s.n_embd / s.n_head) as usize,
            rope_theta: 1e6,
            rope_type: crate::model::RopeType::Neox,
            rms_eps: 1e-6,
            context_length: 32_768,
            vocab_size: s.vocab as usize,
            tied_output: s.tied,
            qkv_bias: true,
        };
        let table = WeightTable::new(&config);
        let spec = |w: &WeightSpec| TensorSpec {
            name: w.name.clone(),
            dims: w.dims.clone(),
            ggml_type: tensor_type(file_type, &w.name, &w.dims, s.n_layer, s.tied),
        };
        let mut tensors = vec![spec(&table.token_embd)];
        for l in &table.layers {
            tensors.extend(Layer::all(l).map(spec));
        }
        tensors.push(spec(&table.output_norm));
        if !s.tied {
            tensors.push(spec(&table.output));
        }
        let layout =
            Layout::new(&metadata, tensors).map_err(|e| SyntheticError::Layout(e.to_string()))?;
        let header = parse(layout.header(), layout.file_size())
            .map_err(|e| SyntheticError::Layout(e.to_string()))?;
        Ok(Self {
            header,
            shape,
            file_type,
            layout,
        })
    }

    /// The file's bytes, generated as they are read.
    pub fn source(&self) -> SyntheticSource<'_> {
        SyntheticSource { model: self }
    }

    /// Bytes of tensor data (what a load reads).
    pub fn tensor_bytes(&self) -> u64 {
        self.header.tensor_bytes()
    }
}

/// The bytes of a [`Synthetic`] model: header bytes, then each tensor's generated blocks.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticSource<'a> {
    model: &'a Synthetic,
}

impl ByteSource for SyntheticSource<'_> {
    fn size(&self) -> u64 {
        self.model.layout.file_size()
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        let m = self.model;
        let header = m.layout.header();
        buf.fill(0);
        let end = offset + buf.len() as u64;
        if offset < header.len() as u64 {
            let n = (header.len() as u64).min(end) - offset;
            buf[..n as usize].copy_from_slice(&header[offset as usize..(offset + n) as usize]);
        }
        for (index, t) in m.header.tensors.iter().enumerate() {
            let (start, end) = (t.file_offset, t.file_offset + t.size);
            let (lo, hi) = (offset.max(start), (offset + buf.len() as u64).min(end));
            if lo >= hi {
                continue;
            }
            let dst = &mut buf[(lo - offset) as usize..(hi - offset) as usize];
            fill_tensor(t.ggml_type, index as u64, is_norm(&t.name), lo - start, dst);
        }
        Ok(())
    }
}

fn is_norm(name: &str) -> bool {
    name.ends_with("norm.weight")
}

/// splitmix64: a seeded, stateless stream.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Fills `dst` with the bytes of tensor `index` (type `ty`) from byte `at` of its data.
fn fill_tensor(ty: GgmlType, index: u64, norm: bool, at: u64, dst: &mut [u8]) {
    let block = ty.type_size();
    let first = at / block;
    let last = (at + dst.len() as u64).div_ceil(block);
    let mut bytes = vec![0u8; block as usize];
    for b in first..last {
        fill_block(ty, mix(index ^ mix(b)), norm, &mut bytes);
        let block_start = b * block;
        let (lo, hi) = (
            at.max(block_start),
            (at + dst.len() as u64).min(block_start + block),
        );
        dst[(lo - at) as usize..(hi - at) as usize]
            .copy_from_slice(&bytes[(lo - block_start) as usize..(hi - block_start) as usize]);
    }
}

/// One block of `ty` from `seed`: random quants with small finite scales, or float values.
fn fill_block(ty: GgmlType, seed: u64, norm: bool, out: &mut [u8]) {
    let mut state = seed;
    for chunk in out.chunks_mut(8) {
        state = mix(state);
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    // A value in [-0.02, 0.02), or [0.9, 1.1) for norm weights.
    let value = |r: u64| {
        let u = (r >> 40) as f32 / (1u64 << 24) as f32;
        if norm {
            0.9 + 0.2 * u
        } else {
            0.04 * u - 0.02
        }
    };
    let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
    // Scales small enough that a dot product over a 18944-wide row stays well inside f16.
    let d = f16(1.0 / 512.0);
    let m = f16(1.0 / 1024.0);
    match ty {
        GgmlType::F32 => {
            for (i, c) in out.chunks_mut(4).enumerate() {
                c.copy_from_slice(&value(mix(seed ^ i as u64)).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for (i, c) in out.chunks_mut(2).enumerate() {
                c.copy_from_slice(&f16(value(mix(seed ^ i as u64))));
            }
        }
        GgmlType::BF16 => {
            for (i, c) in out.chunks_mut(2).enumerate() {
                let v = half::bf16::from_f32(value(mix(seed ^ i as u64)));
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => out[..2].copy_from_slice(&d),
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => {
            out[..2].copy_from_slice(&d);
            out[2..4].copy_from_slice(&m);
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            out[..2].copy_from_slice(&d);
            out[2..4].copy_from_slice(&m);
        }
        GgmlType::Q2K => {
            out[80..82].copy_from_slice(&d);
            out[82..84].copy_from_slice(&m);
        }
        GgmlType::Q3K => out[108..110].copy_from_slice(&d),
        GgmlType::Q6K => out[208..210].copy_from_slice(&d),
        GgmlType::Q8K => out[..4].copy_from_slice(&(1.0f32 / 512.0).to_le_bytes()),
    }
}

/// The token embedding's rows: prompt ids for a synthetic model must be below this.
pub fn vocab(model: &Synthetic) -> u64 {
    model
        .header
        .tensor(TOKEN_EMBD.1)
        .and_then(|t| t.dims.get(1).copied())
        .unwrap_or(0)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    #[test]
    fn seven_b_has_m1s_shapes_and_q4_k_m_types() {
        let m = Synthetic::parse("qwen2.5-7b:q4_k_m").unwrap();
        let c = ModelConfig::from_header(&m.header).unwrap();
        assert_eq!(
            (c.n_layer, c.n_embd, c.n_ff, c.vocab_size),
            (28, 3584, 18944, 152_064)
        );
        assert!(!c.tied_output && c.qkv_bias);
        WeightTable::new(&c).validate(&m.header).unwrap();
        // llama.cpp's Q4_K_M: q4_k, q6_k for the output and for attn_v/ffn_down in the
        // sensitive layers; about 4.7 GB.
        let ty = |n: &str| m.header.tensor(n).unwrap().ggml_type;
        assert_eq!(ty("output.weight"), GgmlType::Q6K);
        assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::Q4K);
        assert_eq!(ty("blk.0.attn_v.weight"), GgmlType::Q6K);
        let gb = m.tensor_bytes() as f64 / 1e9;
        assert!((4.5..4.8).contains(&gb), "{gb} GB");
        assert!(Synthetic::parse("qwen2.5-7b").is_err());
        assert!(Synthetic::parse("llama-70b:q4_k_m").is_err());
    }

    #[test]
    fn bytes_are_the_same_however_they_are_read() {
        let m = Synthetic::parse("qwen2.5-0.5b:q8_0").unwrap();
        let mut src = m.source();
        let t = m.header.tensor("blk.1.attn_k.weight").unwrap().clone();
        let mut whole = vec![0u8; t.size as usize];
        pollster::block_on(src.read_at(t.file_offset, &mut whole)).unwrap();
        let mut pieces = vec![0u8; t.size as usize];
        for (i, chunk) in pieces.chunks_mut(1001).enumerate() {
            let at = t.file_offset + i as u64 * 1001;
            pollster::block_on(src.read_at(at, chunk)).unwrap();
        }
        assert_eq!(whole, pieces);
        // Q8_0 scales are the small constant, never NaN.
        let d = half::f16::from_le_bytes([whole[0], whole[1]]).to_f32();
        assert_eq!(d, 1.0 / 512.0);
        let mut head = vec![0u8; 4];
        pollster::block_on(src.read_at(0, &mut head)).unwrap();
        assert_eq!(&head, b"GGUF");
    }
}
