//! The qwen2/llama decoder on candle-core's CPU backend: quantized weights stay quantized
//! (`matmul_t` dequantizes block by block inside the dot product), activations are f32.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{k_quants, GgmlDType, QMatMul, QStorage, QTensor, QuantizedType};
use candle_core::{CpuStorage, Device, Module, Storage, Tensor};

use super::kernels::half::{HalfMatrix, HalfType};
use super::kernels::vec::round_f16;
use super::kernels::{matmul_many, Activations, Isa, Partner, Pool, QMatrix, QType};
use super::ops::{add, add_bias, rms_norm, rope, rope_tables, swiglu, AttentionShape};
use super::CpuError;
use crate::gguf::{ByteSource, GgmlType, Header, TensorInfo, TensorStream, DEFAULT_CHUNK_BYTES};
use crate::model::{Assemble, Layer, ModelConfig, WeightSpec, WeightTable};

// Our block sizes and candle's must agree byte for byte: we hand candle raw GGUF bytes.
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<k_quants::BlockQ4_0>() as u64 == GgmlType::Q4_0.type_size());
    assert!(size_of::<k_quants::BlockQ4_1>() as u64 == GgmlType::Q4_1.type_size());
    assert!(size_of::<k_quants::BlockQ5_0>() as u64 == GgmlType::Q5_0.type_size());
    assert!(size_of::<k_quants::BlockQ5_1>() as u64 == GgmlType::Q5_1.type_size());
    assert!(size_of::<k_quants::BlockQ8_0>() as u64 == GgmlType::Q8_0.type_size());
    assert!(size_of::<k_quants::BlockQ8_1>() as u64 == GgmlType::Q8_1.type_size());
    assert!(size_of::<k_quants::BlockQ2K>() as u64 == GgmlType::Q2K.type_size());
    assert!(size_of::<k_quants::BlockQ3K>() as u64 == GgmlType::Q3K.type_size());
    assert!(size_of::<k_quants::BlockQ4K>() as u64 == GgmlType::Q4K.type_size());
    assert!(size_of::<k_quants::BlockQ5K>() as u64 == GgmlType::Q5K.type_size());
    assert!(size_of::<k_quants::BlockQ6K>() as u64 == GgmlType::Q6K.type_size());
    assert!(size_of::<k_quants::BlockQ8K>() as u64 == GgmlType::Q8K.type_size());
    // candle reinterprets the bytes as blocks in place, so the buffer must be aligned for
    // the most demanding block (f32 fields: 4 bytes); we allocate it as u32s.
    assert!(std::mem::align_of::<k_quants::BlockQ8K>() <= 4);
};

/// Q5_0 blocks re-encoded as Q8_0, losslessly: a Q5_0 value is `d * q` with q in -16..=15,
/// which a Q8_0 block with the same f16 `d` holds exactly. Both types dot against Q8_0
/// activations with integer sums, so results equal ggml's Q5_0 x Q8_0 up to the order of
/// the per-block float accumulation, but candle has SIMD kernels for Q8_0 and only a scalar
/// loop for Q5_0 (about 4x slower). Costs 34 instead of 22 bytes a block, so it is only done
/// where candle runs the products ([`reencodes_q5_0`]); our kernels take Q5_0 as it is.
///
/// Q5_0 block (ggml-common.h `block_q5_0`): f16 d | u32 qh (5th bits) | 16 bytes of nibbles;
/// element j < 16 is the low nibble of qs[j] plus bit j of qh, element j + 16 the high
/// nibble plus bit j + 16, each minus 16 (ggml `dequantize_row_q5_0`).
fn q5_0_to_q8_0(src: &[u8]) -> Vec<u32> {
    const Q5: usize = 22;
    const Q8: usize = 34;
    let blocks = src.len() / Q5;
    let mut words = vec![0u32; (blocks * Q8).div_ceil(4)];
    let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    for (b, q8) in src.chunks_exact(Q5).zip(dst.chunks_exact_mut(Q8)) {
        q8[..2].copy_from_slice(&b[..2]);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        for j in 0..16 {
            let lo = (b[6 + j] & 0x0F) | ((((qh >> j) << 4) & 0x10) as u8);
            let hi = (b[6 + j] >> 4) | (((qh >> (j + 12)) & 0x10) as u8);
            q8[2 + j] = (lo as i8 - 16) as u8;
            q8[2 + j + 16] = (hi as i8 - 16) as u8;
        }
    }
    words
}

/// Whether Q5_0 tensors are held as Q8_0: where our kernels have no SIMD set and candle's
/// `matmul_t` runs the products.
fn reencodes_q5_0() -> bool {
    !Isa::best().is_simd()
}

/// One tensor as candle reads it: its bytes (Q5_0 perhaps re-encoded as Q8_0) in u32
/// words, which give candle's block structs the 4-byte alignment they need, and its shape
/// in candle's order (the GGUF dims reversed: ne0 last).
struct Raw {
    /// The type in the file.
    ty: GgmlType,
    /// The type of `words`.
    dtype: GgmlDType,
    shape: Vec<usize>,
    words: Vec<u32>,
    len: usize,
}

impl Raw {
    /// Takes the words a tensor's GGUF bytes were read into.
    fn new(info: &TensorInfo, words: Vec<u32>) -> Result<Self, CpuError> {
        let size = info.size as usize;
        if words.len() * 4 < size {
            return Err(CpuError::Internal {
                what: format!("tensor {:?} buffer shorter than {size} bytes", info.name),
            });
        }
        let shape = info.dims.iter().rev().map(|&d| d as usize).collect();
        Ok(if info.ggml_type == GgmlType::Q5_0 && reencodes_q5_0() {
            let bytes: &[u8] = bytemuck::cast_slice(&words);
            Self {
                ty: info.ggml_type,
                dtype: GgmlDType::Q8_0,
                shape,
                words: q5_0_to_q8_0(&bytes[..size]),
                len: size / 22 * 34,
            }
        } else {
            Self {
                ty: info.ggml_type,
                dtype: info.ggml_type.to_candle(),
                shape,
                words,
                len: size,
            }
        })
    }

    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    /// A QTensor over a copy of the bytes.
    fn qtensor(&self) -> Result<QTensor, CpuError> {
        let storage = QStorage::from_data(Cow::Borrowed(self.bytes()), &Device::Cpu, self.dtype)?;
        Ok(QTensor::new(storage, self.shape.clone())?)
    }

    /// F16 and BF16 weights go to our half kernels and block types to our block kernels,
    /// both taking the read buffer itself (or, for the block types they do not take,
    /// candle's `matmul_t`); F32 weights to `QMatMul`.
    fn linear(&self) -> Result<Linear, CpuError> {
        Self::into_linear(Raw {
            ty: self.ty,
            dtype: self.dtype,
            shape: self.shape.clone(),
            words: self.words[..self.len.div_ceil(4)].to_vec(),
            len: self.len,
        })
    }

    fn into_linear(self) -> Result<Linear, CpuError> {
        let &[n, k] = self.shape.as_slice() else {
            return Err(CpuError::Internal {
                what: format!("a linear layer's weight has shape {:?}", self.shape),
            });
        };
        let half = match self.ty {
            GgmlType::F16 => Some(HalfType::F16),
            GgmlType::BF16 => Some(HalfType::Bf16),
            _ => None,
        };
        if let Some(ty) = half {
            return HalfMatrix::new(ty, n, k, self.words)
                .map(Linear::Half)
                .ok_or_else(|| CpuError::Internal {
                    what: format!("{ty:?} matrix of {n} x {k}: too few bytes read"),
                });
        }
        if let Some(values) = self.ty.widen_to_f32(self.bytes()) {
            let weight = Tensor::from_vec(values, (n, k), &Device::Cpu)?;
            return Ok(Linear::Candle(QMatMul::Tensor(weight)));
        }
        if let Some(ty) = QType::from_ggml(self.dtype_ggml()).filter(|_| Isa::best().is_simd()) {
            let mut matrix =
                QMatrix::new(ty, n, k, self.words).map_err(|e| CpuError::Internal {
                    what: e.to_string(),
                })?;
            matrix.arrange_for(Isa::best());
            return Ok(Linear::Ours(matrix));
        }
        let weight = self.dtype.from_data(Cow::Borrowed(self.bytes()));
        Ok(Linear::Direct { weight, n })
    }

    /// The block type of `words`.
    fn dtype_ggml(&self) -> GgmlType {
        match self.ty {
            GgmlType::Q5_0 if reencodes_q5_0() => GgmlType::Q8_0,
            t => t,
        }
    }
}

/// A linear layer `y = x W^T`.
///
/// Quantized weights go through our kernels (`cpu/kernels`): ggml's scheme (the activations
/// quantized once to the weight type's dot partner, Q8_0 or Q8_K, then integer block dot
/// products), the weights read in place in their GGUF blocks, a batch of tokens as one
/// product (each weight block read once per tile of tokens) with rows split over threads.
/// Not candle's `QMatMul`: on x86 CPUs with AVX2 or VNNI, candle 0.11's `QMatMul` repacks
/// Q4_K (and, for prefill, Q6_K and Q8_0) weights on first use into 16-row tiles with f32
/// scales and keeps them beside the original (`repack_x86`). Measured on m1-7B's shapes
/// (Q4_K_M, 4.68 GB): 17.1 GB peak RSS that way; a 16 GB machine would be killed part-way
/// through the first question instead of being told the model does not fit.
///
/// F16 and BF16 weights take our half kernels, read in place (`kernels/half.rs`); F32
/// weights `QMatMul`. Block types our kernels do not take (Q2_K, Q3_K), and every block
/// type on CPUs without AVX2 or simd128, take candle's `matmul_t`.
enum Linear {
    Candle(QMatMul),
    Ours(QMatrix),
    Half(HalfMatrix),
    Direct {
        weight: Box<dyn QuantizedType>,
        /// Output features (rows of W).
        n: usize,
    },
}

/// Where our kernels run: the instruction set detected at load and the threads.
struct Compute {
    isa: Isa,
    pool: Arc<Pool>,
}

impl Linear {
    /// `x`: m rows of k -> m rows of n.
    fn forward(&self, x: &[f32], k: usize, cx: &Compute) -> candle_core::Result<Vec<f32>> {
        let mut y = Self::forward_many(&[self], x, k, cx)?;
        Ok(y.remove(0))
    }

    /// Several layers of one input (q, k and v; gate and up): the input is quantized once
    /// per dot partner and our layers run as one job on the pool.
    fn forward_many(
        layers: &[&Linear],
        x: &[f32],
        k: usize,
        cx: &Compute,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let m = x.len() / k;
        let mut outs: Vec<Vec<f32>> = layers.iter().map(|_| Vec::new()).collect();
        for partner in [Partner::Q8_0, Partner::Q8K] {
            let ours: Vec<(usize, &QMatrix)> = layers
                .iter()
                .enumerate()
                .filter_map(|(i, l)| match l {
                    Self::Ours(w) if w.ty().partner() == partner => Some((i, w)),
                    _ => None,
                })
                .collect();
            if ours.is_empty() {
                continue;
            }
            let acts = Activations::quantize(partner, x, k, cx.isa, &cx.pool);
            let mut bufs: Vec<Vec<f32>> = ours.iter().map(|(_, w)| vec![0f32; m * w.n()]).collect();
            let mut jobs: Vec<(&QMatrix, &mut [f32])> = ours
                .iter()
                .zip(bufs.iter_mut())
                .map(|((_, w), b)| (*w, b.as_mut_slice()))
                .collect();
            matmul_many(&mut jobs, &acts, cx.isa, &cx.pool);
            for ((i, _), b) in ours.iter().zip(bufs) {
                outs[*i] = b;
            }
        }
        for (l, out) in layers.iter().zip(outs.iter_mut()) {
            match l {
                Self::Ours(_) => {}
                Self::Half(w) => {
                    *out = vec![0f32; m * w.n()];
                    w.matmul(x, cx.isa, &cx.pool, out);
                }
                Self::Candle(w) => {
                    let t = Tensor::from_slice(x, (m, k), &Device::Cpu)?;
                    *out = w.forward(&t)?.flatten_all()?.to_vec1::<f32>()?;
                }
                Self::Direct { weight, n } => {
                    *out = vec![0f32; m * n];
                    weight.matmul_t((m, k, *n), x, out)?;
                }
            }
        }
        Ok(outs)
    }

    /// `[q, k, v]` or `[gate, up]`: `forward_many` with a fixed count.
    fn forward_n<const N: usize>(
        layers: [&Linear; N],
        x: &[f32],
        k: usize,
        cx: &Compute,
    ) -> Result<[Vec<f32>; N], CpuError> {
        <[Vec<f32>; N]>::try_from(Self::forward_many(&layers, x, k, cx)?).map_err(|_| {
            CpuError::Internal {
                what: format!("{N} layers gave another number of outputs"),
            }
        })
    }
}

/// Options for [`CpuModel`].
#[derive(Debug, Clone)]
pub struct CpuOptions {
    /// Longest sequence the KV cache may hold; `None` means the model's context length.
    pub max_seq_len: Option<usize>,
    /// Round K, V and attention probabilities to f16 as llama.cpp's default f16 KV cache
    /// does (on by default: this path is the reference the GPU path is checked against).
    pub kv_f16: bool,
    /// Bytes per read while loading.
    pub chunk_bytes: usize,
    /// Memory the model may take (weights, a full KV cache, the tensor being read); a
    /// model that needs more is refused before its first byte instead of failing an
    /// allocation part-way (which on wasm32 aborts the worker). `None`: no check.
    pub memory_limit: Option<u64>,
    /// Threads for the matrix products, the caller's included. `None`: the process's
    /// shared pool, `M1_THREADS` threads or one per logical CPU (at most 16). Results do not
    /// depend on it.
    pub threads: Option<usize>,
}

/// What wasm32 can address: 65,536 pages of 64 KiB.
pub const WASM32_MEMORY: u64 = 4 << 30;

impl Default for CpuOptions {
    fn default() -> Self {
        Self {
            max_seq_len: None,
            kv_f16: true,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            memory_limit: cfg!(target_arch = "wasm32").then_some(WASM32_MEMORY),
            threads: None,
        }
    }
}

/// Keys and values of one layer for every position so far: keys [n_head_kv][capacity /
/// KEYS][head_dim][KEYS] (transposed in blocks of `vec::KEYS` positions, as attention's
/// score kernel reads them), values [n_head_kv][capacity][head_dim]; the capacity doubles as
/// the sequence grows.
struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    capacity: usize,
    len: usize,
}

impl KvCache {
    fn new() -> Self {
        Self {
            k: Vec::new(),
            v: Vec::new(),
            capacity: 0,
            len: 0,
        }
    }

    /// Appends `k`, `v` (n rows of n_kv heads of head_dim).
    fn append(&mut self, k: &[f32], v: &[f32], n_kv: usize, hd: usize, max_len: usize) {
        const KEYS: usize = super::kernels::vec::KEYS;
        let n = k.len() / (n_kv * hd).max(1);
        let needed = self.len + n;
        if needed > self.capacity {
            // Doubling keeps appends amortised O(1) without sizing the cache for the whole
            // context up front (32k positions of a 7B model would be 3.7 GB).
            let cap = needed
                .max(self.capacity * 2)
                .max(256)
                .min(max_len.max(needed));
            let cap = cap.next_multiple_of(KEYS);
            let (old_cap, len) = (self.capacity, self.len);
            let grow = |old: &[f32], used: usize| {
                let mut t = vec![0f32; n_kv * cap * hd];
                for g in 0..n_kv {
                    t[g * cap * hd..][..used].copy_from_slice(&old[g * old_cap * hd..][..used]);
                }
                t
            };
            self.k = grow(&self.k, len.next_multiple_of(KEYS) * hd);
            self.v = grow(&self.v, len * hd);
            self.capacity = cap;
        }
        let cap = self.capacity;
        for i in 0..n {
            let p = self.len + i;
            let (block, lane) = (p / KEYS, p % KEYS);
            for g in 0..n_kv {
                let from = (i * n_kv + g) * hd;
                let kt = &mut self.k[g * cap * hd + block * hd * KEYS..][..hd * KEYS];
                for (d, &x) in k[from..from + hd].iter().enumerate() {
                    kt[d * KEYS + lane] = x;
                }
                let at = (g * cap + p) * hd;
                self.v[at..at + hd].copy_from_slice(&v[from..from + hd]);
            }
        }
        self.len = needed;
    }
}

/// One decoder block: its weights (linear layers; f32 norms and biases) and its KV cache.
struct Block {
    w: Layer<Linear, Tensor>,
    cache: KvCache,
}

/// A loaded model with its KV cache.
pub struct CpuModel {
    config: ModelConfig,
    options: CpuOptions,
    compute: Compute,
    max_seq_len: usize,
    token_embd: QTensor,
    blocks: Vec<Block>,
    output_norm: Tensor,
    output: Linear,
    pos: usize,
}

/// What the model makes of a tensor.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// The token embedding: a QTensor for row lookups and, for a tied head, also the
    /// output matrix. candle lends neither's bytes to the other, so a tied head is a copy.
    Embedding {
        tied: bool,
    },
    /// 1-D: norm weights and biases, widened to f32.
    Dense,
    Linear,
}

impl Role {
    fn of(info: &TensorInfo, table: &WeightTable, config: &ModelConfig) -> Self {
        if info.name == table.token_embd.name {
            Self::Embedding {
                tied: config.tied_output,
            }
        } else if info.dims.len() == 1 {
            Self::Dense
        } else {
            Self::Linear
        }
    }

    /// Bytes the model holds for `info` in this role.
    fn held_bytes(self, info: &TensorInfo) -> u64 {
        // Every matrix is read in place (F32 ones are f32 already).
        let stored = stored_bytes(info);
        match self {
            Self::Embedding { tied } => stored + if tied { stored } else { 0 },
            Self::Dense => info.dims.iter().product::<u64>() * 4,
            Self::Linear => stored,
        }
    }
}

/// Bytes of a tensor as held in blocks: the file's, except where Q5_0 becomes Q8_0.
fn stored_bytes(info: &TensorInfo) -> u64 {
    match info.ggml_type {
        GgmlType::Q5_0 if reencodes_q5_0() => info.size / 22 * 34,
        _ => info.size,
    }
}

/// A tensor as the model holds it, made as soon as its last byte is read so that the read
/// buffer is freed at once: loading peaks at the weights plus one tensor.
enum Held {
    Embedding { rows: QTensor, head: Option<Linear> },
    Dense(Tensor),
    Linear(Linear),
}

impl Held {
    fn new(raw: Raw, role: Role) -> Result<Self, CpuError> {
        Ok(match role {
            Role::Embedding { tied } => Self::Embedding {
                rows: raw.qtensor()?,
                head: tied.then(|| raw.linear()).transpose()?,
            },
            Role::Dense => Self::Dense(raw.qtensor()?.dequantize(&Device::Cpu)?),
            Role::Linear => Self::Linear(raw.into_linear()?),
        })
    }
}

/// Tensors read from the file, by name, until the model takes them.
struct Loaded {
    tensors: std::collections::HashMap<String, Held>,
}

impl Loaded {
    fn take(&mut self, spec: &WeightSpec) -> Result<Held, CpuError> {
        self.tensors
            .remove(&spec.name)
            .ok_or_else(|| CpuError::Internal {
                what: format!("tensor {:?} was not loaded", spec.name),
            })
    }

    fn misplaced(spec: &WeightSpec) -> CpuError {
        CpuError::Internal {
            what: format!("tensor {:?} was loaded in another role", spec.name),
        }
    }

    fn linear(&mut self, spec: &WeightSpec) -> Result<Linear, CpuError> {
        match self.take(spec)? {
            Held::Linear(l) => Ok(l),
            _ => Err(Self::misplaced(spec)),
        }
    }

    fn dense(&mut self, spec: &WeightSpec) -> Result<Tensor, CpuError> {
        match self.take(spec)? {
            Held::Dense(t) => Ok(t),
            _ => Err(Self::misplaced(spec)),
        }
    }
}

impl Assemble for Loaded {
    type Matrix = Linear;
    type Vector = Tensor;
    type Error = CpuError;

    fn matrix(&mut self, spec: &WeightSpec) -> Result<Linear, CpuError> {
        self.linear(spec)
    }

    fn vector(&mut self, spec: &WeightSpec) -> Result<Tensor, CpuError> {
        self.dense(spec)
    }
}

/// Refuses a model whose weights as held (see [`Role::held_bytes`]), full KV cache (f32,
/// `max_seq_len` positions) and the buffers of the largest tensor being read exceed `limit`
/// bytes.
fn check_memory(
    header: &Header,
    table: &WeightTable,
    config: &ModelConfig,
    max_seq_len: usize,
    limit: u64,
) -> Result<(), CpuError> {
    let mut weights = 0u64;
    let mut largest = 0u64;
    for spec in table.all() {
        let info = spec.resolve(header)?;
        weights += Role::of(info, table, config).held_bytes(info);
        // While a tensor is converted: the bytes read, and Q5_0's Q8_0 re-encoding.
        let reading = match info.ggml_type {
            GgmlType::Q5_0 if reencodes_q5_0() => info.size + stored_bytes(info),
            _ => info.size,
        };
        largest = largest.max(reading);
    }
    let kv_cache = config.kv_cache_bytes(max_seq_len, 4);
    let needed = weights + kv_cache + largest;
    if needed > limit {
        return Err(CpuError::TooLarge {
            needed,
            weights,
            kv_cache,
            context: max_seq_len,
            loading: largest,
            limit,
        });
    }
    Ok(())
}

impl CpuModel {
    /// Loads the model's tensors from `source` in file order, one bounded chunk at a time.
    pub async fn load<S: ByteSource>(
        header: &Header,
        source: S,
        options: CpuOptions,
    ) -> Result<Self, CpuError> {
        let config = ModelConfig::from_header(header)?;
        let table = WeightTable::new(&config);
        table.validate(header)?;
        let max_seq_len = options
            .max_seq_len
            .unwrap_or(config.context_length)
            .min(config.context_length);
        if let Some(limit) = options.memory_limit {
            check_memory(header, &table, &config, max_seq_len, limit)?;
        }
        let wanted: std::collections::HashSet<&str> =
            table.all().map(|s| s.name.as_str()).collect();

        let mut tensors = std::collections::HashMap::new();
        let mut stream = TensorStream::new(header, source, options.chunk_bytes)
            .filter(|t| wanted.contains(t.name.as_str()));
        let mut words: Vec<u32> = Vec::new();
        while let Some(chunk) = stream.next_chunk().await? {
            if chunk.offset == 0 {
                // u32 words give candle the 4-byte alignment its block structs need.
                words = vec![0u32; (chunk.info.size as usize).div_ceil(4)];
            }
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
            let start = chunk.offset as usize;
            let dst = bytes
                .get_mut(start..start + chunk.data.len())
                .ok_or_else(|| CpuError::Internal {
                    what: format!("chunk of {:?} past its buffer", chunk.info.name),
                })?;
            dst.copy_from_slice(chunk.data);
            if chunk.last {
                let info = chunk.info;
                let raw = Raw::new(info, std::mem::take(&mut words))?;
                let held = Held::new(raw, Role::of(info, &table, &config))?;
                tensors.insert(info.name.clone(), held);
            }
        }
        let mut loaded = Loaded { tensors };

        let Held::Embedding { rows, head } = loaded.take(&table.token_embd)? else {
            return Err(Loaded::misplaced(&table.token_embd));
        };
        let token_embd = rows;
        let output = match head {
            Some(tied) => tied,
            None => loaded.linear(&table.output)?,
        };
        let blocks = table
            .layers
            .iter()
            .map(|l| {
                Ok(Block {
                    w: Layer::build(l, &mut loaded)?,
                    cache: KvCache::new(),
                })
            })
            .collect::<Result<Vec<_>, CpuError>>()?;
        let output_norm = loaded.dense(&table.output_norm)?;
        let compute = Compute {
            isa: Isa::best(),
            pool: match options.threads {
                Some(n) => Arc::new(Pool::new(n)),
                None => Pool::global(),
            },
        };
        Ok(Self {
            config,
            options,
            compute,
            max_seq_len,
            token_embd,
            blocks,
            output_norm,
            output,
            pos: 0,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Positions held in the KV cache: the `pos` the next `forward` must be given.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Forgets all cached positions.
    pub fn reset(&mut self) {
        for b in &mut self.blocks {
            b.cache = KvCache::new();
        }
        self.pos = 0;
    }

    /// Keeps the first `pos` cached positions (a budget sweep returning from an answer to
    /// its thinking); the next `forward` writes over the rest.
    pub fn rewind(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
        for b in &mut self.blocks {
            b.cache.len = b.cache.len.min(self.pos);
        }
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()` in one batch and returns the
    /// logits of the last one. `pos` must equal [`CpuModel::position`].
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, CpuError> {
        if pos != self.pos {
            return Err(CpuError::PositionMismatch {
                expected: self.pos,
                got: pos,
            });
        }
        let n = tokens.len();
        if n == 0 {
            return Err(CpuError::EmptyInput);
        }
        if pos + n > self.max_seq_len {
            return Err(CpuError::ContextFull {
                needed: pos + n,
                max: self.max_seq_len,
            });
        }
        let vocab = self.config.vocab_size;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(CpuError::TokenOutOfRange { token: bad, vocab });
        }

        let c = &self.config;
        let cx = &self.compute;
        let d = c.n_embd;
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        // x: n rows of n_embd, one per token.
        let mut x = self
            .token_embd
            .embedding(&ids)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let rope = rope_tables(pos, n, c.n_rot, c.rope_theta);
        for block in &mut self.blocks {
            let h = with_values(&block.w.attn_norm, |w| rms_norm(&x, w, c.rms_eps))?;
            let a = attention(
                block,
                &h,
                c,
                pos,
                &rope,
                &self.options,
                self.max_seq_len,
                cx,
            )?;
            add(&mut x, &a);
            let h = with_values(&block.w.ffn_norm, |w| rms_norm(&x, w, c.rms_eps))?;
            let w = &block.w;
            let [mut gate, up] = Linear::forward_n([&w.ffn_gate, &w.ffn_up], &h, d, cx)?;
            swiglu(&mut gate, &up);
            let m = w.ffn_down.forward(&gate, up.len() / n, cx)?;
            add(&mut x, &m);
        }
        // Only the last position's logits are needed (llama.cpp's `inp_out_ids`).
        let last = &x[(n - 1) * d..];
        let h = with_values(&self.output_norm, |w| rms_norm(last, w, c.rms_eps))?;
        let logits = self.output.forward(&h, d, cx)?;
        self.pos += n;
        Ok(logits)
    }
}

/// The values of a dense f32 tensor (a norm's weights, a bias), borrowed.
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, CpuError> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(f(&v[a..b])),
        _ => Err(CpuError::Internal {
            what: format!(
                "a dense weight of shape {:?} is not contiguous f32",
                t.dims()
            ),
        }),
    }
}

/// Grouped-query causal self-attention of `h` (n rows of n_embd), appending to the
/// block's cache; returns the output projection's n rows.
#[allow(clippy::too_many_arguments)]
fn attention(
    block: &mut Block,
    h: &[f32],
    c: &ModelConfig,
    pos: usize,
    (cos, sin): &(Vec<f32>, Vec<f32>),
    opts: &CpuOptions,
    max_len: usize,
    cx: &Compute,
) -> Result<Vec<f32>, CpuError> {
    let w = &block.w;
    let n = h.len() / c.n_embd;
    let (hd, n_head, n_kv) = (c.head_dim, c.n_head, c.n_head_kv);
    let [mut q, mut k, mut v] =
        Linear::forward_n([&w.attn_q, &w.attn_k, &w.attn_v], h, c.n_embd, cx)?;
    for (y, b) in [
        (&mut q, &w.attn_q_bias),
        (&mut k, &w.attn_k_bias),
        (&mut v, &w.attn_v_bias),
    ] {
        if let Some(b) = b {
            with_values(b, |b| add_bias(y, b))?;
        }
    }
    rope(&mut q, n_head, hd, cos, sin, c.rope_type);
    rope(&mut k, n_kv, hd, cos, sin, c.rope_type);
    if opts.kv_f16 {
        for t in [&mut q, &mut k, &mut v] {
            round_f16(cx.isa, t);
        }
    }
    let cache = &mut block.cache;
    cache.append(&k, &v, n_kv, hd, max_len);
    let shape = AttentionShape {
        n,
        pos,
        n_head,
        n_kv,
        head_dim: hd,
        capacity: cache.capacity,
    };
    let out = super::ops::attention(cx.isa, &cx.pool, &q, &cache.k, &cache.v, shape, opts.kv_f16);
    Ok(w.attn_output.forward(&out, n_head * hd, cx)?)
}

/// Index of the largest logit.
pub fn greedy(logits: &[f32]) -> Option<u32> {
    super::ops::argmax(logits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random Q5_0 blocks dequantize to exactly the same values through candle's Q5_0 code
    /// and through our Q8_0 re-encoding.
    #[test]
    fn q5_0_to_q8_0_is_lossless() {
        let blocks: usize = 64;
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut src = vec![0u32; (blocks * 22).div_ceil(4)];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut src);
        for (i, b) in bytes.iter_mut().enumerate() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
            // Keep each block's f16 scale finite and moderate: exponent bits from a small range.
            if i % 22 == 1 {
                *b = 0x30 | (*b & 0x83);
            }
        }
        let bytes: &[u8] = &bytemuck::cast_slice(&src)[..blocks * 22];
        let n = blocks * 32;
        let q5 = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, GgmlDType::Q5_0).unwrap();
        let want = QTensor::new(q5, (n,))
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let converted = q5_0_to_q8_0(bytes);
        let q8_bytes: &[u8] = &bytemuck::cast_slice(&converted)[..blocks * 34];
        let q8 =
            QStorage::from_data(Cow::Borrowed(q8_bytes), &Device::Cpu, GgmlDType::Q8_0).unwrap();
        let got = QTensor::new(q8, (n,))
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let (want, got) = (
            want.to_vec1::<f32>().unwrap(),
            got.to_vec1::<f32>().unwrap(),
        );
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(
                w.to_bits(),
                g.to_bits(),
                "element {i}: Q5_0 {w} vs Q8_0 {g}"
            );
        }
    }
}
