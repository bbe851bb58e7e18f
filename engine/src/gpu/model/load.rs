//! Streaming a GGUF's tensors onto the GPU, in file order and bounded chunks, straight into
//! the buffers the forward pass binds. Quantized matrices keep their GGUF blocks; norms and
//! biases become f32.
//!
//! Some file tensors share one GPU weight so that a decode step reads them in one dispatch:
//! a block's q, k and v (with their biases) become one `[q; k; v]` weight, its gate and up one
//! `[gate; up]` weight. They fuse where the members have one type, rows of whole 4-byte
//! words (so each member's bytes can be written at its own row, in any file order) and fit
//! one binding; otherwise q and k fuse without v (llama.cpp's Q4_K_M keeps v in Q6_K in some
//! layers), or every tensor stands alone and the step runs them separately.

use std::collections::HashMap;

use super::GpuModelError;
use crate::gguf::{ByteSource, GgmlType, Header, TensorInfo, TensorStream};
use crate::gpu::{has_kernel, F32Buffer, Gpu, GpuError, WeightTensor, MAX_PART_BYTES};
use crate::model::{Assemble, ConfigError, Layer, LayerWeights, WeightSpec, WeightTable};

/// Rows `first..first + rows` of GPU weight `tensor`: where a file matrix went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rows {
    pub tensor: usize,
    pub first: u32,
    pub rows: u32,
}

/// Elements `first..first + len` of f32 buffer `buffer`: where a file vector went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Elems {
    pub buffer: usize,
    pub first: u32,
    pub len: u32,
}

/// One decoder block: where each of its tensors is.
pub(super) type Block = Layer<Rows, Elems>;

/// The model's weights on the GPU.
pub(super) struct Weights {
    pub matrices: Vec<WeightTensor>,
    pub vectors: Vec<F32Buffer>,
    pub token_embd: Rows,
    pub blocks: Vec<Block>,
    pub output_norm: Elems,
    /// The LM head: `token_embd` when tied.
    pub output: Rows,
}

impl Weights {
    pub fn bytes(&self) -> u64 {
        self.matrices.iter().map(|w| w.gpu_bytes()).sum::<u64>()
            + self.vectors.iter().map(|v| v.buffer().size()).sum::<u64>()
    }
}

/// A GPU weight to allocate: one file matrix, or the members of a fused group.
struct MatrixSlot {
    name: String,
    ty: GgmlType,
    rows: u32,
    cols: u32,
}

/// What a load has placed on the GPU so far against what the whole model needs, so an
/// out-of-memory error can say how far short the device fell.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub placed: u64,
    pub weights: u64,
    pub kv_cache: u64,
    pub context: usize,
}

/// Where every tensor of the table goes, decided from the header before a byte is read.
struct Placement {
    matrices: Vec<MatrixSlot>,
    /// Lengths of the f32 buffers.
    vectors: Vec<(String, u32)>,
    matrix_of: HashMap<String, Rows>,
    vector_of: HashMap<String, Elems>,
}

impl Placement {
    fn new(header: &Header, table: &WeightTable, max_part: u64) -> Result<Self, GpuModelError> {
        let mut p = Placement {
            matrices: Vec::new(),
            vectors: Vec::new(),
            matrix_of: HashMap::new(),
            vector_of: HashMap::new(),
        };
        p.alone(header, &table.token_embd)?;
        for l in &table.layers {
            p.layer(header, l, max_part)?;
        }
        p.vector(header, &[&table.output_norm])?;
        if table.output.name != table.token_embd.name {
            p.alone(header, &table.output)?;
        }
        Ok(p)
    }

    fn layer(
        &mut self,
        header: &Header,
        l: &LayerWeights,
        max_part: u64,
    ) -> Result<(), GpuModelError> {
        let info = |s: &WeightSpec| s.resolve(header);
        let (q, k, v) = (info(&l.attn_q)?, info(&l.attn_k)?, info(&l.attn_v)?);
        let biases = [&l.attn_q_bias, &l.attn_k_bias, &l.attn_v_bias];
        if fusable(&[q, k, v], max_part) {
            self.fused(header, "attn_qkv", &[&l.attn_q, &l.attn_k, &l.attn_v])?;
            self.bias_group(header, &biases)?;
        } else if fusable(&[q, k], max_part) {
            self.fused(header, "attn_qk", &[&l.attn_q, &l.attn_k])?;
            self.bias_group(header, &biases[..2])?;
            self.alone(header, &l.attn_v)?;
            self.bias_group(header, &biases[2..])?;
        } else {
            for (m, b) in [&l.attn_q, &l.attn_k, &l.attn_v].into_iter().zip(biases) {
                self.alone(header, m)?;
                self.bias_group(header, &[b])?;
            }
        }
        self.vector(header, &[&l.attn_norm])?;
        self.alone(header, &l.attn_output)?;
        self.vector(header, &[&l.ffn_norm])?;
        if fusable(&[info(&l.ffn_gate)?, info(&l.ffn_up)?], max_part) {
            self.fused(header, "ffn_gate_up", &[&l.ffn_gate, &l.ffn_up])?;
        } else {
            self.alone(header, &l.ffn_gate)?;
            self.alone(header, &l.ffn_up)?;
        }
        self.alone(header, &l.ffn_down)
    }

    fn alone(&mut self, header: &Header, spec: &WeightSpec) -> Result<(), GpuModelError> {
        let name = spec.name.clone();
        self.fused(header, &name, &[spec])
    }

    /// One GPU weight holding `members` in order. A fused weight is named after the
    /// first member's block with `suffix` ("blk.3.attn_qkv"); a single member keeps its name.
    fn fused(
        &mut self,
        header: &Header,
        suffix: &str,
        members: &[&WeightSpec],
    ) -> Result<(), GpuModelError> {
        let tensor = self.matrices.len();
        let mut first = 0u32;
        let mut slot: Option<MatrixSlot> = None;
        for spec in members {
            let info = spec.resolve(header)?;
            let (rows, cols) = matrix_shape(info)?;
            if !has_kernel(info.ggml_type) {
                return Err(GpuModelError::UnsupportedType {
                    name: info.name.clone(),
                    ty: info.ggml_type.name().to_string(),
                });
            }
            self.matrix_of.insert(
                info.name.clone(),
                Rows {
                    tensor,
                    first,
                    rows,
                },
            );
            first += rows;
            slot.get_or_insert(MatrixSlot {
                name: if members.len() == 1 {
                    info.name.clone()
                } else {
                    block_name(&info.name, suffix)
                },
                ty: info.ggml_type,
                rows: 0,
                cols,
            })
            .rows = first;
        }
        self.matrices.extend(slot);
        Ok(())
    }

    /// One f32 buffer holding the present `members` in order (a fused weight's biases line
    /// up with its rows).
    fn bias_group(
        &mut self,
        header: &Header,
        members: &[&Option<WeightSpec>],
    ) -> Result<(), GpuModelError> {
        let present: Vec<&WeightSpec> = members.iter().filter_map(|m| m.as_ref()).collect();
        if present.is_empty() {
            return Ok(());
        }
        if present.len() != members.len() {
            // Every block of a model has all three biases or none (`ModelConfig::qkv_bias`).
            return Err(ConfigError::MissingTensor {
                name: members
                    .iter()
                    .find_map(|m| m.as_ref())
                    .map_or_else(String::new, |s| s.name.clone()),
            }
            .into());
        }
        self.vector(header, &present)
    }

    fn vector(&mut self, header: &Header, members: &[&WeightSpec]) -> Result<(), GpuModelError> {
        let buffer = self.vectors.len();
        let mut first = 0u32;
        for spec in members {
            let info = spec.resolve(header)?;
            let len = u32::try_from(info.n_elements()).map_err(|_| too_large(info))?;
            self.vector_of
                .insert(info.name.clone(), Elems { buffer, first, len });
            first += len;
        }
        let name = members.first().map_or_else(String::new, |s| s.name.clone());
        self.vectors.push((name, first));
        Ok(())
    }
}

/// Members fuse when they share a type, their rows are whole 4-byte words and together they
/// fit one binding.
fn fusable(members: &[&TensorInfo], max_part: u64) -> bool {
    let ty = members[0].ggml_type;
    let bytes: u64 = members.iter().map(|m| m.size).sum();
    members
        .iter()
        .all(|m| m.ggml_type == ty && m.row_size().is_multiple_of(4) && m.dims.len() == 2)
        && members.windows(2).all(|w| w[0].dims[0] == w[1].dims[0])
        && bytes <= max_part
}

/// "blk.3.attn_q.weight" with suffix "attn_qkv" -> "blk.3.attn_qkv".
fn block_name(member: &str, suffix: &str) -> String {
    let block = member.split('.').take(2).collect::<Vec<_>>().join(".");
    format!("{block}.{suffix}")
}

fn matrix_shape(info: &TensorInfo) -> Result<(u32, u32), GpuModelError> {
    let cols = info.dims.first().copied().unwrap_or(1);
    let rows: u64 = info.dims.iter().skip(1).product();
    match (u32::try_from(rows), u32::try_from(cols)) {
        (Ok(r), Ok(c)) => Ok((r, c)),
        _ => Err(too_large(info)),
    }
}

fn too_large(info: &TensorInfo) -> GpuModelError {
    GpuError::OutOfRange {
        op: "GpuModel::load",
        what: "tensor dimension",
        value: info.n_elements(),
        min: 1,
        max: u64::from(u32::MAX),
    }
    .into()
}

/// Assembles a block from the placement.
impl Assemble for Placement {
    type Matrix = Rows;
    type Vector = Elems;
    type Error = GpuModelError;

    fn matrix(&mut self, spec: &WeightSpec) -> Result<Rows, GpuModelError> {
        self.matrix_of
            .get(&spec.name)
            .copied()
            .ok_or_else(|| missing(spec))
    }

    fn vector(&mut self, spec: &WeightSpec) -> Result<Elems, GpuModelError> {
        self.vector_of
            .get(&spec.name)
            .copied()
            .ok_or_else(|| missing(spec))
    }
}

fn missing(spec: &WeightSpec) -> GpuModelError {
    ConfigError::MissingTensor {
        name: spec.name.clone(),
    }
    .into()
}

/// Bytes the placement puts on the GPU: the matrices' blocks and the f32 vectors.
pub(super) fn weight_bytes(
    header: &Header,
    table: &WeightTable,
    gpu: &Gpu,
) -> Result<u64, GpuModelError> {
    let p = Placement::new(header, table, max_part(gpu))?;
    let matrices = p
        .matrices
        .iter()
        .map(|m| {
            m.ty.bytes_for(u64::from(m.rows) * u64::from(m.cols))
                .unwrap_or(0)
        })
        .sum::<u64>();
    let vectors = p
        .vectors
        .iter()
        .map(|(_, n)| 4 * u64::from(*n))
        .sum::<u64>();
    Ok(matrices + vectors)
}

/// The most bytes one GPU weight part holds: a binding less the padding to 16 bytes.
fn max_part(gpu: &Gpu) -> u64 {
    gpu.max_binding().min(MAX_PART_BYTES).saturating_sub(15)
}

/// Runs `f` (which allocates and fills GPU buffers) inside out-of-memory and validation error
/// scopes, so a failed allocation is reported against the tensor that caused it (and
/// against `tally`, into which `bytes` are counted when it succeeds).
pub(super) async fn scoped<T>(
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

/// Reads every tensor of `table` from `source` onto the GPU (see the module docs).
pub(super) async fn load_weights<S: ByteSource>(
    gpu: &Gpu,
    header: &Header,
    table: &WeightTable,
    source: S,
    chunk_bytes: usize,
    tally: &mut Tally,
) -> Result<Weights, GpuModelError> {
    let mut placement = Placement::new(header, table, max_part(gpu))?;
    let mut matrices: Vec<Option<WeightTensor>> = placement.matrices.iter().map(|_| None).collect();
    let mut vectors: Vec<Option<F32Buffer>> = placement.vectors.iter().map(|_| None).collect();
    let wanted: std::collections::HashSet<&str> = table.all().map(|s| s.name.as_str()).collect();
    let mut stream =
        TensorStream::new(header, source, chunk_bytes).filter(|t| wanted.contains(t.name.as_str()));
    while let Some(first) = stream.next_chunk().await? {
        let info = first.info.clone();
        let mut data = first.data.to_vec();
        let mut last = first.last;
        if let Some(&at) = placement.vector_of.get(&info.name) {
            // Vectors are a few KB (one row), so they are gathered on the host.
            while !last {
                let Some(c) = stream.next_chunk().await? else {
                    return Err(truncated(&info, data.len() as u64));
                };
                data.extend_from_slice(c.data);
                last = c.last;
            }
            let values = info.ggml_type.widen_to_f32(&data).ok_or_else(|| {
                GpuModelError::UnsupportedVectorType {
                    name: info.name.clone(),
                    ty: info.ggml_type.name().to_string(),
                }
            })?;
            let (name, len) = &placement.vectors[at.buffer];
            if vectors[at.buffer].is_none() {
                let buffer = scoped(gpu, tally, name, 4 * u64::from(*len), async {
                    Ok(F32Buffer::zeros(gpu, name, *len as usize)?)
                })
                .await?;
                vectors[at.buffer] = Some(buffer);
            }
            if let Some(buffer) = &vectors[at.buffer] {
                buffer.write(&gpu.queue, at.first as usize, &values);
            }
            continue;
        }
        let Some(&at) = placement.matrix_of.get(&info.name) else {
            continue;
        };
        let slot = &placement.matrices[at.tensor];
        if matrices[at.tensor].is_none() {
            let bytes = slot
                .ty
                .bytes_for(u64::from(slot.rows) * u64::from(slot.cols))
                .unwrap_or(0);
            let w = scoped(gpu, tally, &slot.name, bytes, async {
                Ok(WeightTensor::new(
                    gpu,
                    &slot.name,
                    slot.ty,
                    slot.rows as usize,
                    slot.cols as usize,
                )?)
            })
            .await?;
            matrices[at.tensor] = Some(w);
        }
        let Some(w) = &matrices[at.tensor] else {
            continue;
        };
        let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut writer = w.writer_at(at.first, at.rows)?;
        writer.write(gpu, &data)?;
        drop(std::mem::take(&mut data));
        while !last {
            let Some(c) = stream.next_chunk().await? else {
                return Err(truncated(&info, 0));
            };
            writer.write(gpu, c.data)?;
            last = c.last;
        }
        writer.finish()?;
        if let Some(e) = validation.pop().await {
            return Err(GpuModelError::Load {
                what: info.name.clone(),
                message: e.to_string(),
            });
        }
    }
    let done = |what: &str| missing_in_file(what);
    let matrices = matrices
        .into_iter()
        .zip(&placement.matrices)
        .map(|(m, slot)| m.ok_or_else(|| done(&slot.name)))
        .collect::<Result<Vec<_>, _>>()?;
    let vectors = vectors
        .into_iter()
        .zip(&placement.vectors)
        .map(|(v, (name, _))| v.ok_or_else(|| done(name)))
        .collect::<Result<Vec<_>, _>>()?;
    let blocks = table
        .layers
        .iter()
        .map(|l| Block::build(l, &mut placement))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Weights {
        token_embd: Assemble::matrix(&mut placement, &table.token_embd)?,
        output: Assemble::matrix(&mut placement, &table.output)?,
        output_norm: Assemble::vector(&mut placement, &table.output_norm)?,
        matrices,
        vectors,
        blocks,
    })
}

/// A tensor the table names never arrived (the stream skips none it wants, so this means a
/// header and data that disagree).
fn missing_in_file(name: &str) -> GpuModelError {
    ConfigError::MissingTensor {
        name: name.to_string(),
    }
    .into()
}

fn truncated(info: &TensorInfo, got: u64) -> GpuModelError {
    GpuModelError::Truncated {
        name: info.name.clone(),
        expected: info.size,
        got,
    }
}
