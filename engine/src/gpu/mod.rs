//! WebGPU compute: device and limits, buffers, the pipeline cache and the ops.
//!
//! How a forward step is encoded: the model owns [`WeightTensor`]s (raw GGUF blocks, split by
//! rows when larger than one binding), [`F32Buffer`] activations, a [`KvCache`] and one
//! [`Ops`]. It creates a `wgpu::CommandEncoder`, calls one `Ops` method per op (each records
//! one compute pass), then [`Ops::submit`] writes the step's uniforms and submits everything
//! at once. The sampled token comes back through [`TokenReadback`] (async on every target).
//!
//! Rules the ops rely on: an op's output buffer must not also be one of its inputs (WebGPU
//! forbids a buffer bound read-only and read-write in one dispatch; `add` and `swiglu` update
//! their first operand in place by design); write new keys with [`Ops::kv_write`] before
//! [`Ops::attention`] reads them; await [`TokenReadback::read`] before copying into it again;
//! call [`Gpu::take_error`] after loading and after each step to surface device errors.
//! Kernel layout (one WGSL file per op family, quant types composed from files sharing the
//! `dequant16` contract, parameters and bindings declared once in Rust) is described in
//! `pipelines.rs` and `kernels/quant/bytes.wgsl`.

pub mod bench;
mod buffers;
mod device;
mod held;
mod kv;
mod model;
mod ops;
mod pipelines;
mod quant;
pub mod reference;

pub(crate) use buffers::MAX_PART_BYTES;
pub use buffers::{
    read_elements, F32Buffer, ReadbackRing, Ticket, TokenReadback, TypedBuffer, U32Buffer,
    WeightTensor, WeightWriter, FLUSH_BYTES,
};
pub use device::{AdapterReport, Gpu, GpuOptions};
pub use held::{GpuBuffer, Held};
pub use kv::{KvCache, KV_BYTES};
pub use model::{
    GpuModel, GpuModelError, GpuModelOptions, StepStats, DEFAULT_CONTEXT, DEFAULT_MAX_PREFILL,
};
pub use ops::{Epilogue, Ops, QkvLayout, Recording, RopeFreqs, RopeMode, Step, Tuning};
pub use pipelines::{Kernel, PipelineKey};
pub use quant::{has_kernel, kernel_types};

/// Errors from the GPU layer; each names the thing and the numbers.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no WebGPU adapter is available: {0}")]
    NoAdapter(String),
    #[error("the GPU refused to open a device: {0}")]
    RequestDevice(String),
    #[error("out of GPU memory allocating {what} ({bytes} bytes)")]
    OutOfMemory { what: String, bytes: u64 },
    #[error("GPU validation error in {what}: {message}")]
    Validation { what: String, message: String },
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
    #[error("{op}: {what} should be {expected} but is {got}")]
    Shape {
        op: &'static str,
        what: String,
        expected: u64,
        got: u64,
    },
    #[error("{op}: {what} ({value}) must be a multiple of {multiple}")]
    NotMultiple {
        op: &'static str,
        what: &'static str,
        value: u64,
        multiple: u64,
    },
    #[error("tensor type {0} has no GPU kernel (supported: {types})", types = quant::kernel_type_names())]
    UnsupportedType(crate::gguf::GgmlType),
    #[error("{what}: one row is {row_bytes} bytes but one GPU binding holds at most {max_binding} bytes")]
    RowTooLarge {
        what: String,
        row_bytes: u64,
        max_binding: u64,
    },
    #[error("{what}: {bytes} bytes exceed the {max_binding}-byte binding limit of this GPU")]
    BindingTooLarge {
        what: String,
        bytes: u64,
        max_binding: u64,
    },
    #[error("{what}: received {got} bytes but the tensor holds {expected}")]
    ByteCount {
        what: String,
        expected: u64,
        got: u64,
    },
    #[error("context full: positions {start}..{end} do not fit in the {n_ctx}-token KV cache")]
    ContextFull { start: u32, end: u32, n_ctx: u32 },
    #[error("{op}: {what} = {value} is outside {min}..={max}")]
    OutOfRange {
        op: &'static str,
        what: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}
