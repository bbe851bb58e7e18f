//! The qwen2/llama decoder on the GPU: weights streamed from GGUF straight into GPU buffers
//! (still quantized), a KV cache sized once, activations allocated once for the largest
//! prefill chunk, and a forward pass that reads like the equations.
//!
//! A step is one command encoder and one submit: [`GpuModel::forward`] records the pass and
//! leaves the encoder open, so [`GpuModel::sample`] can append the sampling kernel and the
//! copy of the chosen id, and the token costs a single submit and one `u32` readback. The
//! logits never leave the GPU except when a caller asks for them ([`GpuModel::logits`]).

use std::collections::HashMap;

use thiserror::Error;

use super::{
    F32Buffer, Gpu, GpuError, KvCache, KvDtype, Ops, RopeFreqs, RopeMode, Sampling, TokenReadback,
    U32Buffer, WeightTensor, WeightType,
};
use crate::gguf::{ByteSource, GgufError, Header, TensorInfo, TensorStream, DEFAULT_CHUNK_BYTES};
use crate::model::{ConfigError, ModelConfig, RopeType, WeightSpec, WeightTable};
use crate::units::fmt_bytes;

/// Why a model cannot be put on the GPU.
#[derive(Debug, Error)]
pub enum GpuModelError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    Gguf(#[from] GgufError),

    #[error(transparent)]
    Gpu(#[from] GpuError),

    #[error("tensor {name:?} is {ty}, which has no GPU kernel")]
    UnsupportedType { name: String, ty: String },

    #[error("tensor {name:?} is {ty}; norm weights and biases must be F32, F16 or BF16")]
    UnsupportedVectorType { name: String, ty: String },

    #[error(
        "out of GPU memory allocating {what} ({}) with {} of the model's {} already on the GPU \
         ({} of weights and a {} KV cache for {context} positions); a shorter context or a \
         smaller quantization needs less ({message})",
        fmt_bytes(*bytes), fmt_bytes(*placed), fmt_bytes(*weights + *kv_cache), fmt_bytes(*weights),
        fmt_bytes(*kv_cache)
    )]
    OutOfMemory {
        what: String,
        bytes: u64,
        /// GPU bytes this load had allocated before the failure.
        placed: u64,
        /// What the model needs (activations come on top).
        weights: u64,
        kv_cache: u64,
        context: usize,
        message: String,
    },

    #[error("GPU error while loading {what}: {message}")]
    Load { what: String, message: String },

    #[error("tensor {name:?} ended after {got} of {expected} bytes")]
    Truncated {
        name: String,
        expected: u64,
        got: u64,
    },
}

/// What a load has placed on the GPU so far against what the whole model needs, so an
/// out-of-memory error can say how far short the device fell.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    placed: u64,
    weights: u64,
    kv_cache: u64,
    context: usize,
}

/// Options for [`GpuModel::load`].
#[derive(Debug, Clone)]
pub struct GpuModelOptions {
    /// Positions the KV cache holds; capped at the model's context length. `None` means
    /// [`DEFAULT_CONTEXT`] (a 32k-token cache of a 7B model would be gigabytes).
    pub context: Option<usize>,
    /// Most tokens one batched pass takes; longer prompts run in chunks of this size.
    pub max_prefill: usize,
    /// KV cache storage; `None` picks f16 where the device has shader-f16.
    pub kv_dtype: Option<KvDtype>,
    /// Bytes per read while streaming weights (the bound on host memory while loading).
    pub chunk_bytes: usize,
}

/// The KV cache size when the caller does not pick one.
pub const DEFAULT_CONTEXT: usize = 4096;

/// Default prefill chunk: large enough that prefill runs the tiled mat-mat kernels at full
/// width, small enough that a 7B model's [chunk, n_ff] activations stay in tens of MB.
pub const DEFAULT_MAX_PREFILL: usize = 256;

impl Default for GpuModelOptions {
    fn default() -> Self {
        Self {
            context: None,
            max_prefill: DEFAULT_MAX_PREFILL,
            kv_dtype: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

/// One decoder block's weights on the GPU.
#[derive(Debug)]
struct Block {
    attn_norm: F32Buffer,
    attn_q: WeightTensor,
    attn_k: WeightTensor,
    attn_v: WeightTensor,
    attn_q_bias: Option<F32Buffer>,
    attn_k_bias: Option<F32Buffer>,
    attn_v_bias: Option<F32Buffer>,
    attn_output: WeightTensor,
    ffn_norm: F32Buffer,
    ffn_gate: WeightTensor,
    ffn_up: WeightTensor,
    ffn_down: WeightTensor,
}

/// Activations for up to `max_prefill` tokens, allocated once; row-major [t, width].
#[derive(Debug)]
struct Scratch {
    ids: U32Buffer,
    x: F32Buffer,
    h: F32Buffer,
    q: F32Buffer,
    k: F32Buffer,
    v: F32Buffer,
    attn: F32Buffer,
    proj: F32Buffer,
    gate: F32Buffer,
    up: F32Buffer,
    last: F32Buffer,
    last_norm: F32Buffer,
    logits: F32Buffer,
    token: U32Buffer,
}

impl Scratch {
    fn new(gpu: &Gpu, c: &ModelConfig, t: usize) -> Result<Self, GpuError> {
        let f = |label: &str, len: usize| F32Buffer::zeros(gpu, label, len);
        Ok(Self {
            ids: U32Buffer::zeros(gpu, "ids", t)?,
            x: f("x", t * c.n_embd)?,
            h: f("h", t * c.n_embd)?,
            q: f("q", t * c.q_dim())?,
            k: f("k", t * c.kv_dim())?,
            v: f("v", t * c.kv_dim())?,
            attn: f("attn", t * c.q_dim())?,
            proj: f("proj", t * c.n_embd)?,
            gate: f("gate", t * c.n_ff)?,
            up: f("up", t * c.n_ff)?,
            last: f("last", c.n_embd)?,
            last_norm: f("last_norm", c.n_embd)?,
            logits: f("logits", c.vocab_size)?,
            token: U32Buffer::zeros(gpu, "token", 1)?,
        })
    }

    fn bytes(&self) -> u64 {
        let f = [
            &self.x,
            &self.h,
            &self.q,
            &self.k,
            &self.v,
            &self.attn,
            &self.proj,
            &self.gate,
            &self.up,
            &self.last,
            &self.last_norm,
            &self.logits,
        ];
        f.iter().map(|b| b.buffer().size()).sum::<u64>()
            + self.ids.buffer().size()
            + self.token.buffer().size()
    }
}

/// A model loaded onto the GPU with its KV cache.
pub struct GpuModel {
    gpu: Gpu,
    ops: Ops,
    config: ModelConfig,
    token_embd: WeightTensor,
    blocks: Vec<Block>,
    output_norm: F32Buffer,
    /// `None` when the LM head is tied to `token_embd`.
    output: Option<WeightTensor>,
    rope: RopeFreqs,
    cache: KvCache,
    scratch: Scratch,
    readback: TokenReadback,
    max_prefill: usize,
    weight_bytes: u64,
    pos: usize,
    /// The encoder of the last `forward`, not yet submitted: `sample` finishes the step.
    pending: Option<wgpu::CommandEncoder>,
    /// The logits buffer holds the last fed position's logits (or will, once `pending` runs).
    has_logits: bool,
}

impl std::fmt::Debug for GpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel")
            .field("adapter", &self.gpu.report.name)
            .field("config", &self.config)
            .field("pos", &self.pos)
            .finish()
    }
}

/// What a tensor becomes on the GPU: a quantized matrix, or an f32 vector (norms, biases).
fn is_vector(info: &TensorInfo) -> bool {
    info.dims.len() == 1
}

fn vector_to_f32(info: &TensorInfo, bytes: &[u8]) -> Result<Vec<f32>, GpuModelError> {
    info.ggml_type
        .widen_to_f32(bytes)
        .ok_or_else(|| GpuModelError::UnsupportedVectorType {
            name: info.name.clone(),
            ty: info.ggml_type.name().to_string(),
        })
}

/// Runs `f` (which allocates and fills GPU buffers) inside out-of-memory and validation error
/// scopes, so a failed allocation is reported against the tensor that caused it (and
/// against `tally`, into which `bytes` are counted when it succeeds).
async fn scoped<T>(
    gpu: &Gpu,
    tally: &mut Tally,
    what: &str,
    bytes: u64,
    f: impl std::future::Future<Output = Result<T, GpuModelError>>,
) -> Result<T, GpuModelError> {
    let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let out = f.await;
    let oom_error = oom.pop().await;
    let validation_error = validation.pop().await;
    let value = out?;
    if let Some(e) = oom_error {
        return Err(GpuModelError::OutOfMemory {
            what: what.to_string(),
            bytes,
            placed: tally.placed,
            weights: tally.weights,
            kv_cache: tally.kv_cache,
            context: tally.context,
            message: e.to_string(),
        });
    }
    if let Some(e) = validation_error {
        return Err(GpuModelError::Load {
            what: what.to_string(),
            message: e.to_string(),
        });
    }
    tally.placed += bytes;
    Ok(value)
}

/// Tensors read so far, by name, until the model takes them.
#[derive(Default)]
struct Uploaded {
    matrices: HashMap<String, WeightTensor>,
    vectors: HashMap<String, F32Buffer>,
}

impl Uploaded {
    fn matrix(&mut self, name: &str) -> Result<WeightTensor, GpuModelError> {
        self.matrices
            .remove(name)
            .ok_or_else(|| ConfigError::MissingTensor {
                name: name.to_string(),
            })
            .map_err(GpuModelError::from)
    }

    fn vector(&mut self, name: &str) -> Result<F32Buffer, GpuModelError> {
        self.vectors
            .remove(name)
            .ok_or_else(|| ConfigError::MissingTensor {
                name: name.to_string(),
            })
            .map_err(GpuModelError::from)
    }

    fn bytes(&self) -> u64 {
        self.matrices.values().map(|w| w.gpu_bytes()).sum::<u64>()
            + self
                .vectors
                .values()
                .map(|v| v.buffer().size())
                .sum::<u64>()
    }
}

impl GpuModel {
    /// Loads every tensor the forward pass reads from `source`, in file order, one bounded
    /// chunk at a time, straight into GPU buffers (quantized matrices keep their GGUF blocks;
    /// norms and biases become f32). Types and shapes are checked before anything is read.
    pub async fn load<S: ByteSource>(
        gpu: Gpu,
        header: &Header,
        source: S,
        options: GpuModelOptions,
    ) -> Result<Self, GpuModelError> {
        let config = ModelConfig::from_header(header)?;
        let table = WeightTable::new(&config);
        table.validate(header)?;
        for spec in table.all() {
            let info = spec.resolve(header)?;
            if !is_vector(info) && WeightType::from_gguf_id(info.ggml_type.id()).is_err() {
                return Err(GpuModelError::UnsupportedType {
                    name: info.name.clone(),
                    ty: info.ggml_type.name().to_string(),
                });
            }
        }
        let n_ctx = options
            .context
            .unwrap_or(DEFAULT_CONTEXT)
            .clamp(1, config.context_length);
        let max_prefill = options.max_prefill.clamp(1, n_ctx);
        let kv_dtype = options.kv_dtype.unwrap_or_else(|| KvDtype::preferred(&gpu));
        let u32_of = |what: &'static str, v: usize| {
            u32::try_from(v).map_err(|_| GpuError::OutOfRange {
                op: "GpuModel::load",
                what,
                value: v as u64,
                min: 1,
                max: u64::from(u32::MAX),
            })
        };
        let n_ctx32 = u32_of("context", n_ctx)?;
        let (n_kv, head_dim) = (
            u32_of("head_count_kv", config.n_head_kv)?,
            u32_of("head_dim", config.head_dim)?,
        );
        let kv_bytes = config.kv_cache_bytes(n_ctx, kv_dtype.bytes());
        // Everything the model will hold, known before the first byte is read.
        let mut tally = Tally {
            weights: table
                .all()
                .map(|spec| {
                    let info = spec.resolve(header)?;
                    Ok(if is_vector(info) {
                        4 * info.dims.iter().product::<u64>()
                    } else {
                        info.size
                    })
                })
                .sum::<Result<u64, GpuModelError>>()?,
            kv_cache: kv_bytes,
            context: n_ctx,
            placed: 0,
        };
        let wanted: std::collections::HashSet<&str> =
            table.all().map(|s| s.name.as_str()).collect();
        let mut stream = TensorStream::new(header, source, options.chunk_bytes)
            .filter(|t| wanted.contains(t.name.as_str()));
        let mut up = Uploaded::default();
        while let Some(first) = stream.next_chunk().await? {
            let info = first.info.clone();
            let mut data = first.data.to_vec();
            let mut last = first.last;
            if is_vector(&info) {
                // Vectors are a few KB (one row), so they are gathered on the host.
                while !last {
                    let Some(c) = stream.next_chunk().await? else {
                        return Err(truncated(&info, data.len() as u64));
                    };
                    data.extend_from_slice(c.data);
                    last = c.last;
                }
                let values = vector_to_f32(&info, &data)?;
                let buffer = scoped(
                    &gpu,
                    &mut tally,
                    &info.name,
                    values.len() as u64 * 4,
                    async { Ok(F32Buffer::from_slice(&gpu, &info.name, &values)?) },
                )
                .await?;
                up.vectors.insert(info.name.clone(), buffer);
                continue;
            }
            let ty = WeightType::from_gguf_id(info.ggml_type.id())?;
            let cols = info.dims.first().copied().unwrap_or(1) as usize;
            let rows = info.dims.iter().skip(1).product::<u64>() as usize;
            let weight = scoped(&gpu, &mut tally, &info.name, info.size, async {
                let w = WeightTensor::new(&gpu, &info.name, ty, rows, cols)?;
                {
                    let mut writer = w.writer();
                    writer.write(&gpu, &data)?;
                    drop(std::mem::take(&mut data));
                    while !last {
                        let Some(c) = stream.next_chunk().await? else {
                            return Err(truncated(&info, 0));
                        };
                        writer.write(&gpu, c.data)?;
                        last = c.last;
                    }
                    writer.finish()?;
                }
                Ok(w)
            })
            .await?;
            up.matrices.insert(info.name.clone(), weight);
        }
        let weight_bytes = up.bytes();

        let blocks = table
            .layers
            .iter()
            .map(|l| {
                let opt = |s: &Option<WeightSpec>, up: &mut Uploaded| {
                    s.as_ref().map(|s| up.vector(&s.name)).transpose()
                };
                Ok(Block {
                    attn_norm: up.vector(&l.attn_norm.name)?,
                    attn_q: up.matrix(&l.attn_q.name)?,
                    attn_k: up.matrix(&l.attn_k.name)?,
                    attn_v: up.matrix(&l.attn_v.name)?,
                    attn_q_bias: opt(&l.attn_q_bias, &mut up)?,
                    attn_k_bias: opt(&l.attn_k_bias, &mut up)?,
                    attn_v_bias: opt(&l.attn_v_bias, &mut up)?,
                    attn_output: up.matrix(&l.attn_output.name)?,
                    ffn_norm: up.vector(&l.ffn_norm.name)?,
                    ffn_gate: up.matrix(&l.ffn_gate.name)?,
                    ffn_up: up.matrix(&l.ffn_up.name)?,
                    ffn_down: up.matrix(&l.ffn_down.name)?,
                })
            })
            .collect::<Result<Vec<_>, GpuModelError>>()?;
        let token_embd = up.matrix(&table.token_embd.name)?;
        let output = if config.tied_output {
            None
        } else {
            Some(up.matrix(&table.output.name)?)
        };
        let output_norm = up.vector(&table.output_norm.name)?;

        let cache = scoped(&gpu, &mut tally, "KV cache", kv_bytes, async {
            Ok(KvCache::new(
                &gpu,
                config.n_layer,
                n_ctx32,
                n_kv,
                head_dim,
                kv_dtype,
            )?)
        })
        .await?;
        let scratch = scoped(&gpu, &mut tally, "activations", 0, async {
            Ok(Scratch::new(&gpu, &config, max_prefill)?)
        })
        .await?;
        let rope = RopeFreqs::new(
            &gpu,
            u32_of("rope dimension count", config.n_rot)?,
            f64::from(config.rope_theta),
            None,
        )?;
        let ops = Ops::new(&gpu)?;
        let readback = TokenReadback::new(&gpu);
        gpu.take_error()?;
        Ok(Self {
            gpu,
            ops,
            config,
            token_embd,
            blocks,
            output_norm,
            output,
            rope,
            cache,
            scratch,
            readback,
            max_prefill,
            weight_bytes,
            pos: 0,
            pending: None,
            has_logits: false,
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Tokens in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Positions the KV cache holds.
    pub fn context_len(&self) -> usize {
        self.cache.n_ctx() as usize
    }

    pub fn max_prefill(&self) -> usize {
        self.max_prefill
    }

    /// GPU bytes holding weights (file bytes plus at most 3 bytes of padding per buffer).
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// GPU bytes of the KV cache and the activations.
    pub fn state_bytes(&self) -> u64 {
        self.cache.bytes() + self.scratch.bytes()
    }

    /// Forgets every position. The cache is not cleared: attention only reads positions
    /// below the current one, and those are rewritten before they are read.
    pub fn reset(&mut self) {
        self.pos = 0;
        if self.pending.take().is_some() {
            // The dropped pass's uniforms are still staged; flushing empties the arena.
            self.ops.flush();
        }
        self.has_logits = false;
    }

    /// Appends `tokens` at the current position in batched passes of at most
    /// [`Self::max_prefill`] tokens and computes the last one's logits (on the GPU). The last
    /// pass stays unsubmitted until [`Self::sample`] or [`Self::logits`] completes the step.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<(), GpuError> {
        let n_ctx = self.cache.n_ctx();
        let end = self.pos + tokens.len();
        if end > n_ctx as usize {
            return Err(GpuError::ContextFull {
                start: self.pos as u32,
                end: u32::try_from(end).unwrap_or(u32::MAX),
                n_ctx,
            });
        }
        let vocab = self.token_embd.rows();
        if let Some(&bad) = tokens.iter().find(|&&t| t >= vocab) {
            return Err(GpuError::OutOfRange {
                op: "GpuModel::forward",
                what: "token id",
                value: u64::from(bad),
                min: 0,
                max: u64::from(vocab) - 1,
            });
        }
        if tokens.is_empty() {
            return Ok(());
        }
        self.submit_pending();
        self.has_logits = false;
        let n_chunks = tokens.len().div_ceil(self.max_prefill);
        for (i, chunk) in tokens.chunks(self.max_prefill).enumerate() {
            let mut enc = self
                .gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("forward"),
                });
            self.scratch.ids.write(&self.gpu.queue, 0, chunk);
            let last = i + 1 == n_chunks;
            self.encode_forward(&mut enc, self.pos as u32, chunk.len() as u32, last)?;
            self.pos += chunk.len();
            if last {
                self.pending = Some(enc);
            } else {
                self.ops.submit(enc);
            }
        }
        self.has_logits = true;
        Ok(())
    }

    /// Records the decoder over `t` tokens (ids already in the scratch) at `pos`; with
    /// `logits`, also the LM head on the last position.
    fn encode_forward(
        &mut self,
        enc: &mut wgpu::CommandEncoder,
        pos: u32,
        t: u32,
        logits: bool,
    ) -> Result<(), GpuError> {
        let c = &self.config;
        let (eps, n_head, n_kv, head_dim) = (
            c.rms_eps,
            c.n_head as u32,
            c.n_head_kv as u32,
            c.head_dim as u32,
        );
        let rope_mode = match c.rope_type {
            RopeType::Neox => RopeMode::Neox,
            RopeType::Normal => RopeMode::Normal,
        };
        let (embd_width, ff) = (c.n_embd, c.n_ff);
        let n = t as usize;
        let s = &self.scratch;
        let ops = &mut self.ops;
        ops.embed(enc, &self.token_embd, &s.ids, &s.x, t)?;
        for (layer, b) in self.blocks.iter().enumerate() {
            // Attention: x += W_o · attention(rope(W_q h + b_q), rope(W_k h + b_k), W_v h + b_v)
            ops.rms_norm(enc, &s.x, &b.attn_norm, &s.h, t, eps)?;
            ops.matmul(enc, &s.h, &b.attn_q, b.attn_q_bias.as_ref(), &s.q, t)?;
            ops.matmul(enc, &s.h, &b.attn_k, b.attn_k_bias.as_ref(), &s.k, t)?;
            ops.matmul(enc, &s.h, &b.attn_v, b.attn_v_bias.as_ref(), &s.v, t)?;
            ops.rope(enc, &s.q, &self.rope, rope_mode, n_head, head_dim, pos, t)?;
            ops.rope(enc, &s.k, &self.rope, rope_mode, n_kv, head_dim, pos, t)?;
            ops.kv_write(enc, &self.cache, layer, &s.k, &s.v, pos, t)?;
            ops.attention(enc, &s.q, &self.cache, layer, &s.attn, n_head, pos, t)?;
            ops.matmul(enc, &s.attn, &b.attn_output, None, &s.proj, t)?;
            ops.add(enc, &s.x, &s.proj, n * embd_width)?;
            // Feed-forward: x += W_down · (silu(W_gate h) ⊙ W_up h)
            ops.rms_norm(enc, &s.x, &b.ffn_norm, &s.h, t, eps)?;
            ops.matmul(enc, &s.h, &b.ffn_gate, None, &s.gate, t)?;
            ops.matmul(enc, &s.h, &b.ffn_up, None, &s.up, t)?;
            ops.swiglu(enc, &s.gate, &s.up, n * ff)?;
            ops.matmul(enc, &s.gate, &b.ffn_down, None, &s.proj, t)?;
            ops.add(enc, &s.x, &s.proj, n * embd_width)?;
        }
        if logits {
            let lm_head = self.output.as_ref().unwrap_or(&self.token_embd);
            ops.copy_rows(enc, &s.x, n - 1, &s.last, 0, embd_width, 1)?;
            ops.rms_norm(enc, &s.last, &self.output_norm, &s.last_norm, 1, eps)?;
            ops.matmul(enc, &s.last_norm, lm_head, None, &s.logits, 1)?;
        }
        Ok(())
    }

    fn submit_pending(&mut self) {
        if let Some(enc) = self.pending.take() {
            self.ops.submit(enc);
        }
    }

    /// Picks the next token from the last position's logits on the GPU and reads back only
    /// its id. The draw's step is the position being predicted, as on the CPU path.
    pub async fn sample(&mut self, sampling: &Sampling) -> Result<u32, GpuError> {
        if !self.has_logits {
            return Err(GpuError::Readback(
                "sample called before any token was fed".to_string(),
            ));
        }
        let mut enc = match self.pending.take() {
            Some(enc) => enc,
            None => self
                .gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("sample"),
                }),
        };
        let s = &self.scratch;
        let vocab = self.config.vocab_size as u32;
        let step = u32::try_from(self.pos).unwrap_or(u32::MAX);
        self.ops
            .sample(&mut enc, &s.logits, vocab, sampling, step, &s.token)?;
        self.readback.copy(&mut enc, &s.token);
        self.ops.submit(enc);
        self.readback.read(&self.gpu).await
    }

    /// The last fed position's logits, read back (tests and diagnostics; decoding never
    /// needs them on the host).
    pub async fn logits(&mut self) -> Result<Vec<f32>, GpuError> {
        if !self.has_logits {
            return Err(GpuError::Readback(
                "logits requested before any token was fed".to_string(),
            ));
        }
        self.submit_pending();
        self.scratch.logits.read(&self.gpu).await
    }
}

fn truncated(info: &TensorInfo, got: u64) -> GpuModelError {
    GpuModelError::Truncated {
        name: info.name.clone(),
        expected: info.size,
        got,
    }
}
