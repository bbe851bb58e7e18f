//! `m1 quantize`: a Hugging Face Qwen2/Llama folder (config, tokenizer, safetensors shards)
//! to a quantized GGUF that our engine and llama.cpp both load.
//!
//! [`plan`] reads everything but the weights and fixes the whole output: metadata (what
//! llama.cpp's convert_hf_to_gguf.py writes), tensor names and each tensor's type (the
//! engine's [`m1_engine::quantize`] rules) and so every offset. [`quantize`] then writes the header and streams the
//! tensors through a bounded pipeline ([`pipeline`]) into `<output>.partial`, renamed into
//! place only when complete; on any error the partial file is removed.

mod hf;
mod pipeline;
mod safetensors;
mod vocab;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

pub use hf::{HfConfig, MAX_VOCAB};
pub use pipeline::{Progress, CHUNK_ELEMENTS};
pub use safetensors::{parse_shard_header, shard_header_len, Checkpoint, Dtype, SourceTensor};
pub use vocab::{read_vocab, vocab_from_json, GgufVocab};

use m1_engine::gguf::{GgmlType, Layout, TensorSpec, Value, WriteError};
use m1_engine::model::{Architecture, ModelConfig, RopeType, WeightTable};
use m1_engine::quantize::{map_name, rope_permutation, tensor_type, write_order, FileType, Mapped};
use m1_engine::units::fmt_bytes;

/// `general.quantization_version`: ggml's `GGML_QNT_VERSION`, the block layouts in use
/// since 2023 (llama.cpp refuses files that claim another).
pub const QUANTIZATION_VERSION: u32 = 2;

#[derive(Debug, Error)]
pub enum QuantizeError {
    #[error("{path}: not found", path = .path.display())]
    MissingFile { path: PathBuf },
    #[error("{path}: {source}", path = .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not valid JSON: {source}", path = .path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {key}: {why}", path = .path.display())]
    Config {
        path: PathBuf,
        key: String,
        why: String,
    },
    #[error("{path}: unknown architecture {found:?} (supported: {classes})", path = .path.display(), classes = hf_classes())]
    UnknownArchitecture { path: PathBuf, found: String },
    #[error("{dir}: no safetensors weights (expected model.safetensors or model.safetensors.index.json with its shards)", dir = .dir.display())]
    NoShards { dir: PathBuf },
    #[error("{path}: malformed safetensors: {why}", path = .path.display())]
    Safetensors { path: PathBuf, why: String },
    #[error("tensor {tensor}: element type {dtype} is not supported (BF16, F16 or F32)")]
    UnsupportedDtype { tensor: String, dtype: String },
    #[error("{path}: tokenizer: {why}", path = .path.display())]
    Tokenizer { path: PathBuf, why: String },
    #[error("tensor {name} is not part of a {arch} model")]
    UnexpectedTensor { name: String, arch: &'static str },
    #[error("tensor {name} is missing from the checkpoint")]
    MissingTensor { name: String },
    #[error("tensor {name}: shape {got:?}, but config.json implies {expected:?}")]
    Shape {
        name: String,
        expected: Vec<u64>,
        got: Vec<u64>,
    },
    #[error("quantizing {tensor}: {why}")]
    Quantize { tensor: String, why: String },
    #[error("writing the GGUF: {0}")]
    Layout(WriteError),
    #[error("writing the output: {source}")]
    Output { source: io::Error },
    #[error(
        "{path}: disk full after {} of {}; the partial output was removed",
        fmt_bytes(*written), fmt_bytes(*total), path = .path.display()
    )]
    DiskFull {
        path: PathBuf,
        written: u64,
        total: u64,
    },
    #[error("{path}: {source}; the partial output was removed", path = .path.display())]
    Write { path: PathBuf, source: io::Error },
}

impl QuantizeError {
    /// Whether the input folder is at fault (as opposed to the output or the machine).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            QuantizeError::Output { .. }
                | QuantizeError::DiskFull { .. }
                | QuantizeError::Write { .. }
                | QuantizeError::Layout(_)
                | QuantizeError::Quantize { .. }
        )
    }
}

/// One output tensor: where it comes from and how it is stored.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    pub hf_name: String,
    pub spec: TensorSpec,
    pub source: SourceTensor,
    /// Output row `i` is source row `row_order[i]` (llama's q/k rotary permutation).
    pub row_order: Option<Vec<u64>>,
}

/// Everything about the output except the tensor bytes.
pub struct Plan {
    pub config: HfConfig,
    pub file_type: FileType,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<PlannedTensor>,
    pub layout: Layout,
    pub checkpoint: Checkpoint,
}

impl Plan {
    /// Bytes of weights in the source checkpoint.
    pub fn source_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.source.n_elements() * t.source.dtype.size() as u64)
            .sum()
    }
}

/// The shapes config.json implies, PyTorch order, by GGUF name, and whether each is
/// required: the engine's tensor table for a config of these sizes, listing the q/k/v
/// biases, which only families that require them must have.
fn expected_shapes(c: &HfConfig, with_output: bool) -> Vec<(String, Vec<u64>, bool)> {
    let head_dim = c.head_dim() as usize;
    let config = ModelConfig {
        architecture: c.arch,
        n_layer: c.num_layers as usize,
        n_embd: c.hidden_size as usize,
        n_ff: c.intermediate_size as usize,
        n_head: c.num_heads as usize,
        n_head_kv: c.num_kv_heads as usize,
        head_dim,
        n_rot: head_dim,
        rope_theta: c.rope_theta as f32,
        rope_type: c.arch.rope_type(),
        rms_eps: c.rms_norm_eps as f32,
        context_length: c.context_length as usize,
        vocab_size: c.vocab_size as usize,
        tied_output: !with_output,
        qkv_bias: true,
    };
    let biases_required = c.arch.requires_qkv_bias();
    WeightTable::new(&config)
        .all()
        .map(|spec| {
            let required = !spec.name.ends_with(".bias") || biases_required;
            let shape = spec.dims.iter().rev().copied().collect();
            (spec.name.clone(), shape, required)
        })
        .collect()
}

/// "Qwen2ForCausalLM, LlamaForCausalLM": the classes the table converts.
fn hf_classes() -> String {
    Architecture::ALL
        .iter()
        .flat_map(|a| a.hf_classes())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the folder's config, tokenizer and shard headers and fixes the output.
pub fn plan(input: &Path, file_type: FileType) -> Result<Plan, QuantizeError> {
    let config = HfConfig::read(input)?;
    let generation_ids = hf::generation_token_ids(input)?;
    let vocab = read_vocab(input, config.vocab_size, &config.token_ids, &generation_ids)?;
    let checkpoint = Checkpoint::open(input)?;
    let tied = config.tie_word_embeddings;

    let mut by_gguf = std::collections::HashMap::new();
    for (hf_name, src) in &checkpoint.tensors {
        match map_name(hf_name, tied) {
            Some(Mapped::Gguf(g)) => {
                by_gguf.insert(g, (hf_name.clone(), src.clone()));
            }
            Some(Mapped::Skip) => {}
            None => {
                return Err(QuantizeError::UnexpectedTensor {
                    name: hf_name.clone(),
                    arch: config.arch.name(),
                })
            }
        }
    }
    let mut tensors = Vec::new();
    let expected = expected_shapes(&config, !tied);
    for (name, shape, required) in &expected {
        let Some((hf_name, src)) = by_gguf.remove(name) else {
            if *required {
                return Err(QuantizeError::MissingTensor { name: name.clone() });
            }
            continue;
        };
        if &src.shape != shape {
            return Err(QuantizeError::Shape {
                name: hf_name,
                expected: shape.clone(),
                got: src.shape.clone(),
            });
        }
        let dims: Vec<u64> = shape.iter().rev().copied().collect();
        let ggml_type = tensor_type(file_type, name, &dims, config.num_layers, tied);
        let row_order = match (config.arch.rope_type(), name.rsplit('.').nth(1)) {
            (RopeType::Normal, Some("attn_q")) => {
                Some(rope_permutation(shape[0], config.num_heads))
            }
            (RopeType::Normal, Some("attn_k")) => {
                Some(rope_permutation(shape[0], config.num_kv_heads))
            }
            _ => None,
        };
        // Biases of permuted rows move with their rows.
        let row_order = match (config.arch.rope_type(), name.as_str()) {
            (RopeType::Normal, n) if n.ends_with("attn_q.bias") || n.ends_with("attn_k.bias") => {
                return Err(QuantizeError::UnexpectedTensor {
                    name: hf_name,
                    arch: "llama (q/k biases are not supported)",
                })
            }
            _ => row_order,
        };
        tensors.push(PlannedTensor {
            hf_name,
            spec: TensorSpec {
                name: name.clone(),
                dims,
                ggml_type,
            },
            source: src,
            row_order,
        });
    }
    // Names that mapped but that config.json does not account for (a layer past
    // num_hidden_layers, an lm_head of a tied model written as output).
    if let Some((name, (hf_name, _))) = by_gguf.into_iter().min_by(|a, b| a.0.cmp(&b.0)) {
        return Err(QuantizeError::UnexpectedTensor {
            name: format!("{hf_name} ({name})"),
            arch: config.arch.name(),
        });
    }
    tensors.sort_by_key(|t| write_order(&t.spec.name));

    let metadata = metadata(&config, &vocab, file_type, &hf::model_name(input));
    let layout = Layout::new(&metadata, tensors.iter().map(|t| t.spec.clone()).collect())
        .map_err(QuantizeError::Layout)?;
    Ok(Plan {
        config,
        file_type,
        metadata,
        tensors,
        layout,
        checkpoint,
    })
}

/// The GGUF metadata, in convert_hf_to_gguf.py's order.
fn metadata(c: &HfConfig, vocab: &GgufVocab, ft: FileType, name: &str) -> Vec<(String, Value)> {
    let arch = c.arch.name();
    let s = |v: &str| Value::String(v.to_string());
    // Counts are u32 in llama.cpp's files; the values come from checked config fields.
    let u = |v: u64| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let k = |key: &str| format!("{arch}.{key}");
    let mut md = vec![
        ("general.architecture".to_string(), s(arch)),
        ("general.type".to_string(), s("model")),
        ("general.name".to_string(), s(name)),
        (k("block_count"), u(c.num_layers)),
        (k("context_length"), u(c.context_length)),
        (k("embedding_length"), u(c.hidden_size)),
        (k("feed_forward_length"), u(c.intermediate_size)),
        (k("attention.head_count"), u(c.num_heads)),
        (k("attention.head_count_kv"), u(c.num_kv_heads)),
        (k("rope.freq_base"), Value::F32(c.rope_theta as f32)),
        (
            k("attention.layer_norm_rms_epsilon"),
            Value::F32(c.rms_norm_eps as f32),
        ),
    ];
    if c.arch == Architecture::Llama {
        md.push((k("vocab_size"), u(c.vocab_size)));
        md.push((k("rope.dimension_count"), u(c.head_dim())));
    }
    md.push(("general.file_type".to_string(), Value::U32(ft.ftype())));
    md.push((
        "general.quantization_version".to_string(),
        Value::U32(QUANTIZATION_VERSION),
    ));
    md.extend(vocab.metadata());
    md
}

/// How [`quantize`] runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub input: PathBuf,
    pub output: PathBuf,
    pub file_type: FileType,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
}

/// What a finished conversion reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub output: PathBuf,
    pub file_bytes: u64,
    pub source_bytes: u64,
    pub tensors: usize,
    pub seconds: f64,
    /// (GGUF name, type) per tensor, in file order.
    pub types: Vec<(String, GgmlType)>,
}

/// `<output>.partial`: where the file is written until it is complete.
pub fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}

/// Removes the partial file unless disarmed: on errors and on panics alike, so no
/// half-written file is ever left looking like a model.
struct PartialGuard<'a>(Option<&'a Path>);

impl Drop for PartialGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Converts `opts.input` to `opts.output`. `progress` is called after each tensor.
pub fn quantize(
    opts: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary, QuantizeError> {
    quantize_with_sink(opts, |f| f, progress)
}

/// [`quantize`] writing through `wrap(file)`: tests inject a writer that fails part way.
pub fn quantize_with_sink<W: Write>(
    opts: &Options,
    wrap: impl FnOnce(File) -> W,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary, QuantizeError> {
    let start = Instant::now();
    let plan = plan(&opts.input, opts.file_type)?;
    let partial = partial_path(&opts.output);
    let out_err = |source: io::Error, written: u64| {
        if matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) {
            QuantizeError::DiskFull {
                path: opts.output.clone(),
                written,
                total: plan.layout.file_size(),
            }
        } else {
            QuantizeError::Write {
                path: partial.clone(),
                source,
            }
        }
    };
    let file = File::create(&partial).map_err(|e| QuantizeError::Io {
        path: partial.clone(),
        source: e,
    })?;
    let mut guard = PartialGuard(Some(&partial));
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    // Counts bytes that reached the sink (past the buffer), for the disk-full message.
    let mut out = BufWriter::with_capacity(
        8 << 20,
        Counting {
            inner: wrap(file),
            n: 0,
        },
    );
    let result = pipeline::run(
        &plan.checkpoint,
        &plan.layout,
        &plan.tensors,
        &mut out,
        threads,
        2 * threads,
        progress,
    );
    match result {
        Ok(_) => {}
        Err(QuantizeError::Output { source }) => {
            return Err(out_err(source, out.get_ref().n));
        }
        Err(e) => return Err(e),
    }
    let written = out.get_ref().n;
    let sink = out
        .into_inner()
        .map_err(|e| out_err(e.into_error(), written))?;
    let written = sink.n;
    drop(sink);
    // Durable before it gets its final name: a crash must not leave a complete-looking
    // file with missing data.
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| out_err(e, written))?;
    std::fs::rename(&partial, &opts.output).map_err(|e| QuantizeError::Write {
        path: opts.output.clone(),
        source: e,
    })?;
    guard.0 = None;
    Ok(Summary {
        output: opts.output.clone(),
        file_bytes: plan.layout.file_size(),
        source_bytes: plan.source_bytes(),
        tensors: plan.tensors.len(),
        seconds: start.elapsed().as_secs_f64(),
        types: plan
            .tensors
            .iter()
            .map(|t| (t.spec.name.clone(), t.spec.ggml_type))
            .collect(),
    })
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
