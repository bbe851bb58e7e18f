//! The qwen2/llama decoder on the GPU: weights streamed from GGUF straight into GPU buffers
//! (still quantized; `load`), a KV cache sized once, activations allocated once for the
//! largest prefill chunk, and a forward pass prepared once and replayed (`plan`).
//!
//! A step is one encoder, one compute pass and one submit: the fed tokens' embedding, the
//! decoder, the LM head and the sampler, then a copy of the chosen id into a readback slot.
//! The logits never leave the GPU unless a caller asks ([`GpuModel::logits`]), and the id
//! need not be read before the next step is submitted: [`GpuModel::submit_sample`] returns a
//! [`Ticket`], [`GpuModel::feed_sampled`] feeds the sampled id without the host seeing it,
//! and [`GpuModel::read_token`] waits for a ticket, so a caller can keep steps in flight.

mod load;
mod plan;

use thiserror::Error;

use super::{
    F32Buffer, Gpu, GpuError, KvCache, Ops, ReadbackRing, RopeFreqs, Step, Ticket, Tuning,
    U32Buffer,
};
use crate::gguf::{ByteSource, GgufError, Header, DEFAULT_CHUNK_BYTES};
use crate::model::{ConfigError, ModelConfig, WeightTable};
use crate::sampling::Sampling;
use crate::units::fmt_bytes;
use load::{Tally, Weights};
use plan::{Model, Part, Plan, SamplingKey};

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

/// Options for [`GpuModel::load`].
#[derive(Debug, Clone)]
pub struct GpuModelOptions {
    /// Positions the KV cache holds; capped at the model's context length. `None` means
    /// [`DEFAULT_CONTEXT`] (a 32k-token cache of a 7B model would be gigabytes).
    pub context: Option<usize>,
    /// Most tokens one batched pass takes; longer prompts run in chunks of this size.
    pub max_prefill: usize,
    /// Kernel shapes and arithmetic; `None` picks the adapter's ([`Tuning::for_adapter`]).
    pub tuning: Option<Tuning>,
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
            tuning: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
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
    logits: F32Buffer,
    /// The sampled id: the readback copies it out, the next decode step embeds it.
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
            &self.logits,
        ];
        f.iter().map(|b| b.buffer().size()).sum::<u64>()
            + self.ids.buffer().size()
            + self.token.buffer().size()
    }
}

/// What the next step feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// `t` ids the host wrote into the scratch.
    Ids { t: u32 },
    /// The id the previous step sampled, still on the GPU.
    Sampled,
}

/// A fed step not yet submitted: its input and position.
#[derive(Debug, Clone, Copy)]
struct Pending {
    input: Input,
    pos: u32,
}

/// Per-step host figures, for benchmarks: what the steps cost the CPU and what they
/// recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepStats {
    /// Steps submitted.
    pub steps: u64,
    /// Host time spent encoding and submitting them, in milliseconds.
    pub host_ms: f64,
    /// The part of `host_ms` before `submit`: the step's write and its recording, finished.
    /// On a software adapter `submit` runs the work, so this is its host cost.
    pub encode_ms: f64,
    pub dispatches: u64,
    pub passes: u64,
    /// Bytes written through the queue (the step uniform, fed ids).
    pub bytes_written: u64,
    /// GPU time of the steps read back with timestamps (`GpuOptions::timestamps`), and how
    /// many those were.
    pub gpu_ms: f64,
    pub timed_steps: u64,
}

/// A model loaded onto the GPU with its KV cache.
pub struct GpuModel {
    gpu: Gpu,
    ops: Ops,
    config: ModelConfig,
    weights: Weights,
    rope: RopeFreqs,
    cache: KvCache,
    scratch: Scratch,
    plan: Plan,
    ring: ReadbackRing,
    max_prefill: usize,
    weight_bytes: u64,
    /// Tokens fed so far (submitted or pending).
    pos: usize,
    pending: Option<Pending>,
    /// The logits buffer holds the last fed position's logits (or will, once `pending` runs).
    has_logits: bool,
    stats: StepStats,
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

impl GpuModel {
    /// Loads every tensor the forward pass reads from `source`, in file order, one bounded
    /// chunk at a time, straight into GPU buffers, then prepares the decode step. Types and
    /// shapes are checked before anything is read.
    pub async fn load<S: ByteSource>(
        gpu: Gpu,
        header: &Header,
        source: S,
        options: GpuModelOptions,
    ) -> Result<Self, GpuModelError> {
        let config = ModelConfig::from_header(header)?;
        let table = WeightTable::new(&config);
        table.validate(header)?;
        let n_ctx = options
            .context
            .unwrap_or(DEFAULT_CONTEXT)
            .clamp(1, config.context_length);
        let max_prefill = options.max_prefill.clamp(1, n_ctx);
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
        let kv_bytes = config.kv_cache_bytes(n_ctx, super::KV_BYTES);
        // Everything the model will hold, known before the first byte is read.
        let mut tally = Tally {
            weights: load::weight_bytes(header, &table, &gpu)?,
            kv_cache: kv_bytes,
            context: n_ctx,
            placed: 0,
        };
        let weights = load::load_weights(
            &gpu,
            header,
            &table,
            source,
            options.chunk_bytes,
            &mut tally,
        )
        .await?;
        let weight_bytes = weights.bytes();
        let cache = load::scoped(&gpu, &mut tally, "KV cache", kv_bytes, async {
            Ok(KvCache::new(&gpu, config.n_layer, n_ctx32, n_kv, head_dim)?)
        })
        .await?;
        let scratch = load::scoped(&gpu, &mut tally, "activations", 0, async {
            Ok(Scratch::new(&gpu, &config, max_prefill)?)
        })
        .await?;
        let rope = RopeFreqs::new(
            &gpu,
            u32_of("rope dimension count", config.n_rot)?,
            f64::from(config.rope_theta),
            None,
        )?;
        let tuning = options
            .tuning
            .unwrap_or_else(|| Tuning::for_adapter(&gpu.report));
        let mut ops = Ops::with_tuning(&gpu, tuning)?;
        let plan = load::scoped(&gpu, &mut tally, "the decode step", 0, async {
            let m = Model {
                config: &config,
                weights: &weights,
                scratch: &scratch,
                cache: &cache,
                rope: &rope,
            };
            Ok(Plan::new(&mut ops, &m)?)
        })
        .await?;
        let ring = ReadbackRing::new(&gpu);
        gpu.take_error()?;
        Ok(Self {
            gpu,
            ops,
            config,
            weights,
            rope,
            cache,
            scratch,
            plan,
            ring,
            max_prefill,
            weight_bytes,
            pos: 0,
            pending: None,
            has_logits: false,
            stats: StepStats::default(),
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Tokens fed so far: where the next `forward` writes.
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

    /// Host figures of the steps submitted so far.
    pub fn stats(&self) -> StepStats {
        self.stats
    }

    /// Where the sampler leaves the chosen id (the next step's embedding reads it, and the
    /// step copies it into a readback slot) and the `Step` uniform every prepared dispatch
    /// binds: for the allocation test, which replays a step with the same buffer uses.
    pub fn step_buffers(&self) -> (&wgpu::Buffer, &wgpu::Buffer) {
        (&self.scratch.token.buffer, self.plan.step_buffer())
    }

    /// What one greedy decode step of a sampled id replays, in order (embedding, decoder,
    /// LM head, sampler), all prepared at load: for benchmarks and the allocation test.
    pub fn decode_step(&self) -> Result<[&crate::gpu::Recording; 4], GpuError> {
        let greedy = SamplingKey::of(&Sampling::GREEDY);
        Ok([
            self.plan.get(Part::Embed {
                t: 1,
                sampled: true,
            })?,
            self.plan.get(Part::Body { t: 1 })?,
            self.plan.get(Part::Head { t: 1 })?,
            self.plan.get(Part::Sample {
                sampling: greedy,
                ahead: 1,
            })?,
        ])
    }

    /// Dispatches of one greedy decode step.
    pub fn decode_dispatches(&self) -> usize {
        self.decode_step()
            .map_or(0, |parts| parts.iter().map(|r| r.len()).sum())
    }

    /// Forgets every position. The cache is not cleared: attention only reads positions
    /// below the current one, and those are rewritten before they are read.
    pub fn reset(&mut self) {
        self.rewind(0);
    }

    /// Forgets the positions from `pos` on (a step fed speculatively, a cut-off answer):
    /// the next token is written at `pos`. Steps already submitted still run; what they
    /// wrote past `pos` is overwritten before it is read.
    pub fn rewind(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
        self.pending = None;
        self.has_logits = false;
    }

    /// Appends `tokens` at the current position in batched passes of at most
    /// [`Self::max_prefill`] tokens and computes the last one's logits (on the GPU). The last
    /// pass is submitted with the next [`Self::sample`] or [`Self::logits`], with which it
    /// shares a submit.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<(), GpuError> {
        self.check_room(tokens.len())?;
        let vocab = self.config.vocab_size as u32;
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
        self.submit_pending(None)?;
        self.has_logits = false;
        let n_chunks = tokens.len().div_ceil(self.max_prefill);
        for (i, chunk) in tokens.chunks(self.max_prefill).enumerate() {
            let t = chunk.len() as u32;
            self.prepare(Part::Embed { t, sampled: false })?;
            self.prepare(Part::Body { t })?;
            self.pending = Some(Pending {
                input: Input::Ids { t },
                pos: self.pos as u32,
            });
            self.scratch.ids.write(&self.gpu.queue, 0, chunk);
            self.stats.bytes_written += 4 * u64::from(t);
            self.pos += chunk.len();
            if i + 1 < n_chunks {
                // The ids buffer is rewritten for the next chunk; this one runs now.
                self.submit_pending(None)?;
            }
        }
        self.has_logits = true;
        Ok(())
    }

    /// Appends the token the last [`Self::submit_sample`] chose, without reading it: the
    /// next step embeds it straight from the GPU.
    pub fn feed_sampled(&mut self) -> Result<(), GpuError> {
        self.check_room(1)?;
        self.submit_pending(None)?;
        self.pending = Some(Pending {
            input: Input::Sampled,
            pos: self.pos as u32,
        });
        self.pos += 1;
        self.has_logits = true;
        Ok(())
    }

    fn check_room(&self, n: usize) -> Result<(), GpuError> {
        let n_ctx = self.cache.n_ctx();
        let end = self.pos + n;
        if end > n_ctx as usize {
            return Err(GpuError::ContextFull {
                start: self.pos as u32,
                end: u32::try_from(end).unwrap_or(u32::MAX),
                n_ctx,
            });
        }
        Ok(())
    }

    fn prepare(&mut self, part: Part) -> Result<(), GpuError> {
        let m = Model {
            config: &self.config,
            weights: &self.weights,
            scratch: &self.scratch,
            cache: &self.cache,
            rope: &self.rope,
        };
        self.plan.prepare(&mut self.ops, &m, part)
    }

    /// Submits the pending step, if any, in one compute pass: its embedding and decoder,
    /// then with `sample` the LM head and the sampler, whose id is copied into `slot`.
    /// Without a pending step, `sample` samples the logits already computed.
    fn submit_pending(
        &mut self,
        sample: Option<(SamplingKey, usize)>,
    ) -> Result<Option<wgpu::SubmissionIndex>, GpuError> {
        let pending = self.pending.take();
        if pending.is_none() && sample.is_none() {
            return Ok(None);
        }
        let t = match pending.map(|p| p.input) {
            Some(Input::Ids { t }) => t,
            Some(Input::Sampled) => 1,
            None => 0,
        };
        // The sampler draws for the position it predicts: the step's first position plus t.
        let (step_pos, ahead) = match pending {
            Some(p) => (p.pos, t),
            None => (self.pos as u32, 0),
        };
        let head = sample.is_some() || pending.is_some_and(|_| self.has_logits);
        let sample_part = sample.map(|(sampling, _)| Part::Sample { sampling, ahead });
        if let Some(part) = sample_part {
            self.prepare(part)?;
        }
        if pending.is_some() && head {
            self.prepare(Part::Head { t })?;
        }
        let started = crate::clock::now_ms();
        let queue = &self.gpu.queue;
        queue.write_buffer(
            self.plan.step_buffer(),
            0,
            Step {
                pos: step_pos,
                ..Step::default()
            }
            .as_bytes(),
        );
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("step"),
            });
        let mut dispatches = 0;
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("step"),
                timestamp_writes: sample.and_then(|(_, slot)| self.ring.timestamp_writes(slot)),
            });
            let mut replay = |part: Part| -> Result<(), GpuError> {
                let rec = self.plan.get(part)?;
                rec.replay(&mut pass);
                dispatches += rec.len();
                Ok(())
            };
            if let Some(p) = pending {
                let sampled = p.input == Input::Sampled;
                replay(Part::Embed { t, sampled })?;
                replay(Part::Body { t })?;
                if head {
                    replay(Part::Head { t })?;
                }
            }
            if let Some(part) = sample_part {
                replay(part)?;
            }
        }
        if let Some((_, slot)) = sample {
            self.ring.copy(&mut enc, slot, &self.scratch.token);
        }
        let commands = enc.finish();
        self.stats.encode_ms += crate::clock::now_ms() - started;
        let index = queue.submit([commands]);
        self.stats.steps += 1;
        self.stats.passes += 1;
        self.stats.dispatches += dispatches as u64;
        self.stats.bytes_written += std::mem::size_of::<Step>() as u64;
        self.stats.host_ms += crate::clock::now_ms() - started;
        Ok(Some(index))
    }

    /// Submits the pending step with the sampler: the chosen id goes to the GPU's token
    /// buffer (for [`Self::feed_sampled`]) and into a readback slot, whose [`Ticket`] waits
    /// for it. Tickets must be read in the order they were issued; at most
    /// [`ReadbackRing::SLOTS`] may be unread.
    pub fn submit_sample(&mut self, sampling: &Sampling) -> Result<Ticket, GpuError> {
        if !self.has_logits {
            return Err(GpuError::Readback(
                "sample called before any token was fed".to_string(),
            ));
        }
        let slot = self.ring.next_slot();
        let index = self
            .submit_pending(Some((SamplingKey::of(sampling), slot)))?
            .ok_or_else(|| GpuError::Readback("no step to sample".to_string()))?;
        Ok(Ticket { slot, index })
    }

    /// The id a ticket's step chose, once it has run.
    pub async fn read_token(&mut self, ticket: Ticket) -> Result<u32, GpuError> {
        let (id, gpu_ms) = self.ring.read(&self.gpu, ticket).await?;
        if let Some(ms) = gpu_ms {
            self.stats.gpu_ms += ms;
            self.stats.timed_steps += 1;
        }
        Ok(id)
    }

    /// Picks the next token from the last position's logits on the GPU and reads back only
    /// its id. The draw's step is the position being predicted, as on the CPU path.
    pub async fn sample(&mut self, sampling: &Sampling) -> Result<u32, GpuError> {
        let ticket = self.submit_sample(sampling)?;
        self.read_token(ticket).await
    }

    /// The last fed position's logits, read back (tests and diagnostics; decoding never
    /// needs them on the host).
    pub async fn logits(&mut self) -> Result<Vec<f32>, GpuError> {
        if !self.has_logits {
            return Err(GpuError::Readback(
                "logits requested before any token was fed".to_string(),
            ));
        }
        if let Some(p) = self.pending {
            let t = match p.input {
                Input::Ids { t } => t,
                Input::Sampled => 1,
            };
            self.prepare(Part::Head { t })?;
        }
        self.submit_pending(None)?;
        self.scratch.logits.read(&self.gpu).await
    }
}
