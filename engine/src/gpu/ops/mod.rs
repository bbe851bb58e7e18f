//! The ops of a qwen2/llama forward pass. Each op checks shapes and appends prepared
//! dispatches (pipeline, bind group, uniform slot, workgroup grid) to a [`Recording`]. A
//! recording is built once and replayed into a compute pass as often as needed: the GPU
//! model prepares its decode and prefill steps this way at load, tests build one per check.
//! Replaying sets a pipeline, a bind group and a dispatch per entry; it allocates nothing
//! and clones no handle.
//!
//! Each dispatch's parameters sit in a slot of the recording's own uniform buffers, written
//! once when the recording is finished. What changes between steps (the position) is the
//! small [`Step`] uniform the recording binds to every kernel; a kernel's position is
//! `P.pos + S.pos`, so an op recorded for a fixed position (with a zero `Step`) and a step
//! replayed at every position share their kernels.

mod attention;
mod elementwise;
mod matmul;
mod rope;
mod sample;

use std::num::NonZeroU64;

pub(crate) use attention::AttnParams;
pub(crate) use elementwise::{EwParams, NormParams};
pub use matmul::QkvLayout;
pub(crate) use matmul::{EmbedParams, MatParams};
pub(crate) use rope::RopeParams;
pub use rope::{RopeFreqs, RopeMode};
pub(crate) use sample::SampleParams;

pub use super::pipelines::{Epilogue, Step};
use super::pipelines::{Kernel, PipelineCache, PipelineKey};
use super::{Gpu, GpuBuffer, GpuError};

/// Knobs for kernel shapes and arithmetic, chosen per adapter by [`Tuning::for_adapter`];
/// tests and benchmarks set them to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Mat-vec rows per workgroup (each x chunk loaded serves them all); `None` picks per
    /// shape ([`Tuning::matvec_shape`]).
    pub matvec_rows: Option<u32>,
    /// Mat-vec threads per workgroup: a power of two in 8..=256; `None` picks per shape.
    pub matvec_wg: Option<u32>,
    /// Mat-vec threads sharing each row (a power of two dividing `matvec_wg`; 1: each thread
    /// owns its rows); `None` picks per shape.
    pub matvec_lanes: Option<u32>,
    /// Shapes for an adapter that runs compute shaders on the CPU (lavapipe, SwiftShader),
    /// where a workgroup is a loop on one core and a barrier a context switch.
    pub software: bool,
    /// f16 arithmetic in the decode mat-vec where the device has shader-f16.
    pub f16_math: bool,
    /// Cap on workgroups per dispatch dimension, below the device's; larger grids fold into y.
    pub max_groups_per_dim: u32,
}

impl Default for Tuning {
    /// A hardware GPU's shapes, f16 arithmetic where offered.
    fn default() -> Self {
        Self {
            matvec_rows: None,
            matvec_wg: None,
            matvec_lanes: None,
            software: false,
            f16_math: true,
            max_groups_per_dim: 65535,
        }
    }
}

impl Tuning {
    /// The defaults for `adapter`. A software adapter gets its own shapes and f32 arithmetic:
    /// it emulates f16 through f32 conversions, so f16 only costs it time.
    pub fn for_adapter(adapter: &super::AdapterReport) -> Self {
        let software = adapter.device_type == "Cpu";
        Self {
            software,
            f16_math: !software,
            ..Self::default()
        }
    }

    /// Threads, lanes (threads sharing a row) and rows of a mat-vec workgroup over `n` rows
    /// of `chunks` chunks each.
    ///
    /// A hardware GPU wants many loads in flight and each row's loads contiguous: all threads
    /// share the workgroup's rows (lanes = threads), as many threads (up to 256) as keep at
    /// least 85% of them busy in the last pass over a row, and 4 rows per workgroup where the
    /// rows still make over a thousand workgroups (2 below). A software adapter runs a
    /// workgroup as SIMD batches on one core, where every load costs about the same whoever
    /// makes it: 32 threads share 32 rows, so each x chunk a thread loads serves 32 rows.
    /// Measured on lavapipe (Q4_K, 3584 x 3584, CPU time per dispatch): 30 ms, against 37.5
    /// with 64 threads and 16 rows, 65-110 with threads owning rows (1 lane), 107.5 before
    /// the dedicated kernels.
    pub fn matvec_shape(&self, chunks: u32, n: u32) -> (u32, u32, u32) {
        let (wg, lanes, rows) = if self.software {
            (32, 32, 32)
        } else {
            let busy = |wg: u32| f64::from(chunks) / f64::from(chunks.div_ceil(wg) * wg);
            let wg = [256, 128, 64, 32]
                .into_iter()
                .find(|&wg| busy(wg) >= 0.85)
                .unwrap_or_else(|| {
                    [256, 128, 64, 32]
                        .into_iter()
                        .max_by(|&a, &b| busy(a).total_cmp(&busy(b)))
                        .unwrap_or(64)
                });
            (wg, wg, if n >= 4096 { 4 } else { 2 })
        };
        let wg = self.matvec_wg.unwrap_or(wg);
        let lanes = self.matvec_lanes.unwrap_or(lanes).min(wg);
        (wg, lanes, self.matvec_rows.unwrap_or(rows))
    }
}

const PARAM_CHUNK: u64 = 64 * 1024;

/// A recording's uniform parameters: slots in chunks of [`PARAM_CHUNK`] bytes, staged until
/// [`Recording::finish`] writes them.
#[derive(Debug)]
struct ParamArena {
    buffers: Vec<GpuBuffer>,
    staged: Vec<Vec<u8>>,
    align: u64,
}

impl ParamArena {
    /// A slot holding `bytes`: its buffer and offset.
    fn push(&mut self, gpu: &Gpu, bytes: &[u8]) -> (GpuBuffer, u64) {
        let size = (bytes.len() as u64).next_multiple_of(16);
        let full = self
            .staged
            .last()
            .is_none_or(|s| s.len() as u64 + size > PARAM_CHUNK);
        if full {
            self.buffers
                .push(gpu.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("op params"),
                    size: PARAM_CHUNK,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
            self.staged.push(Vec::new());
        }
        let last = self.staged.len() - 1;
        let staged = &mut self.staged[last];
        let offset = staged.len() as u64;
        staged.extend_from_slice(bytes);
        staged.resize((offset + size).next_multiple_of(self.align) as usize, 0);
        (self.buffers[last].clone(), offset)
    }

    fn write(&mut self, queue: &wgpu::Queue) {
        for (buffer, staged) in self.buffers.iter().zip(&mut self.staged) {
            if !staged.is_empty() {
                let len = (staged.len() as u64).min(PARAM_CHUNK) as usize;
                queue.write_buffer(buffer, 0, &staged[..len]);
                staged.clear();
                staged.shrink_to_fit();
            }
        }
    }
}

/// One prepared dispatch.
#[derive(Debug)]
struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    offset: u32,
    groups: [u32; 3],
}

/// Prepared dispatches, replayed in order into one compute pass (see the module docs).
#[derive(Debug)]
pub struct Recording {
    dispatches: Vec<Dispatch>,
    params: ParamArena,
    step: GpuBuffer,
    /// Every buffer the dispatches bind: a buffer is destroyed when the engine's last handle
    /// to it drops, so one a recording may replay must not be.
    bound: Vec<GpuBuffer>,
    /// Replayed at positions given by `step` at each replay (its ops take offsets from the
    /// step's position, and attention is gridded for the whole context), rather than built
    /// for the positions its ops name.
    live: bool,
}

impl Recording {
    /// Built for the positions its ops name (the `Step` is zero).
    pub fn fixed(&self) -> bool {
        !self.live
    }

    /// Dispatches (the length of the list replayed).
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// Writes the parameters; call once, after the last op and before the first replay.
    pub fn finish(&mut self, queue: &wgpu::Queue) {
        self.params.write(queue);
    }

    /// Records every dispatch into `pass`.
    pub fn replay(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[d.offset]);
            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
        }
    }
}

/// The kernel context: pipeline cache, uniform arena and scratch buffers. One per device.
#[derive(Debug)]
pub struct Ops {
    gpu: Gpu,
    pipelines: PipelineCache,
    /// Minimum uniform offset alignment.
    align: u64,
    tuning: Tuning,
    /// The mat-vec kernels compute in f16 (tuning and device agree).
    f16_math: bool,
    max_groups: u32,
    max_binding: u64,
    /// Bound where an optional input is absent (a matmul without bias).
    empty: GpuBuffer,
    attn_scratch: Option<GpuBuffer>,
    /// The `Step` of recordings made for fixed positions: all zero.
    zero_step: GpuBuffer,
    sample_max: GpuBuffer,
    sample_idx: GpuBuffer,
}

impl Ops {
    /// With the adapter's defaults ([`Tuning::for_adapter`]).
    pub fn new(gpu: &Gpu) -> Result<Self, GpuError> {
        Self::with_tuning(gpu, Tuning::for_adapter(&gpu.report))
    }

    pub fn with_tuning(gpu: &Gpu, tuning: Tuning) -> Result<Self, GpuError> {
        let check = |what: &'static str, value: u32, min: u32, max: u32| {
            if value < min || value > max {
                Err(GpuError::OutOfRange {
                    op: "Ops::with_tuning",
                    what,
                    value: u64::from(value),
                    min: u64::from(min),
                    max: u64::from(max),
                })
            } else {
                Ok(())
            }
        };
        for (what, value, min) in [
            ("matvec_wg (a power of two)", tuning.matvec_wg, 8),
            ("matvec_lanes (a power of two)", tuning.matvec_lanes, 1),
        ] {
            if let Some(v) = value {
                check(what, v, min, 256)?;
                if !v.is_power_of_two() {
                    return Err(GpuError::NotMultiple {
                        op: "Ops::with_tuning",
                        what,
                        value: u64::from(v),
                        multiple: 2,
                    });
                }
            }
        }
        if let Some(rows) = tuning.matvec_rows {
            check("matvec_rows", rows, 1, 256)?;
        }
        check("max_groups_per_dim", tuning.max_groups_per_dim, 2, u32::MAX)?;
        // Every kernel uses at most 256 invocations and 16 KiB of workgroup memory.
        check(
            "max_compute_invocations_per_workgroup",
            gpu.limits.max_compute_invocations_per_workgroup,
            256,
            u32::MAX,
        )?;
        check(
            "max_compute_workgroup_storage_size",
            gpu.limits.max_compute_workgroup_storage_size,
            16384,
            u32::MAX,
        )?;
        let small = |label: &str, size: u64| {
            gpu.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        Ok(Self {
            gpu: gpu.clone(),
            pipelines: PipelineCache::default(),
            align: u64::from(gpu.limits.min_uniform_buffer_offset_alignment).max(16),
            tuning,
            f16_math: tuning.f16_math && gpu.report.shader_f16,
            max_groups: tuning
                .max_groups_per_dim
                .min(gpu.limits.max_compute_workgroups_per_dimension),
            max_binding: gpu.max_binding(),
            empty: small("empty", 16),
            attn_scratch: None,
            zero_step: gpu.create_buffer(&wgpu::BufferDescriptor {
                label: Some("zero step"),
                size: std::mem::size_of::<Step>() as u64,
                usage: wgpu::BufferUsages::UNIFORM,
                mapped_at_creation: false,
            }),
            sample_max: small("sample partial max", u64::from(sample::MAX_PARTIALS) * 4),
            sample_idx: small("sample partial index", u64::from(sample::MAX_PARTIALS) * 4),
        })
    }

    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.gpu.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.gpu.queue
    }

    /// An empty recording replayed at the position written into `step` before each replay
    /// (its ops' positions are offsets from it; see [`Step`]).
    pub fn live_recording(&self, step: &GpuBuffer) -> Recording {
        self.new_recording(step, true)
    }

    /// An empty recording for ops at the fixed positions they name.
    pub fn recording(&self) -> Recording {
        self.new_recording(&self.zero_step, false)
    }

    fn new_recording(&self, step: &GpuBuffer, live: bool) -> Recording {
        Recording {
            dispatches: Vec::new(),
            params: ParamArena {
                buffers: Vec::new(),
                staged: Vec::new(),
                align: self.align,
            },
            step: step.clone(),
            bound: Vec::new(),
            live,
        }
    }

    /// Finishes `rec`, replays it into one compute pass of a new encoder and submits it:
    /// how tests run ops.
    pub fn run(&self, rec: Recording) -> wgpu::SubmissionIndex {
        self.run_then(rec, |_| {})
    }

    /// As [`Self::run`], with `then` recording more (copies) after the pass.
    pub fn run_then(
        &self,
        mut rec: Recording,
        then: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> wgpu::SubmissionIndex {
        rec.finish(&self.gpu.queue);
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ops") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("ops"),
                timestamp_writes: None,
            });
            rec.replay(&mut pass);
        }
        then(&mut enc);
        self.gpu.queue.submit([enc.finish()])
    }

    /// Splits `n` workgroups into an (x, y) grid within the per-dimension cap.
    fn fold(&self, op: &'static str, n: u32) -> Result<(u32, u32), GpuError> {
        let m = self.max_groups;
        if n <= m {
            return Ok((n.max(1), 1));
        }
        let y = n.div_ceil(m);
        if y > m {
            return Err(GpuError::OutOfRange {
                op,
                what: "workgroups",
                value: u64::from(n),
                min: 1,
                max: u64::from(m) * u64::from(m),
            });
        }
        Ok((n.div_ceil(y), y))
    }

    fn check_groups(&self, op: &'static str, what: &'static str, n: u32) -> Result<(), GpuError> {
        if n > self.max_groups {
            return Err(GpuError::OutOfRange {
                op,
                what,
                value: u64::from(n),
                min: 1,
                max: u64::from(self.max_groups),
            });
        }
        Ok(())
    }

    /// Appends `key`'s pipeline over `groups` workgroups to `rec`, with `bindings` (in the
    /// order of [`Kernel::uses`]) and `params` in a slot of the recording's uniforms.
    fn push<P: bytemuck::Pod>(
        &mut self,
        rec: &mut Recording,
        key: PipelineKey,
        bindings: &[Bind<'_>],
        params: &P,
        groups: [u32; 3],
    ) {
        let pipe = self.pipelines.get(&self.gpu.device, key);
        debug_assert_eq!(bindings.len(), pipe.bindings.len(), "{}", pipe.label);
        let bytes = bytemuck::bytes_of(params);
        let (ubuf, offset) = rec.params.push(&self.gpu, bytes);
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
            .iter()
            .zip(&pipe.bindings)
            .map(|(b, &binding)| wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: 0,
                    size: b.size.and_then(NonZeroU64::new),
                }),
            })
            .collect();
        rec.bound.extend(bindings.iter().map(|b| b.buffer.clone()));
        entries.push(wgpu::BindGroupEntry {
            binding: pipe.uniform_binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &ubuf,
                offset: 0,
                size: NonZeroU64::new(bytes.len() as u64),
            }),
        });
        entries.push(wgpu::BindGroupEntry {
            binding: pipe.step_binding,
            resource: rec.step.as_entire_binding(),
        });
        let bind_group = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&pipe.label),
                layout: &pipe.layout,
                entries: &entries,
            });
        rec.dispatches.push(Dispatch {
            pipeline: pipe.pipeline,
            bind_group,
            offset: offset as u32,
            groups,
        });
    }
}

/// A storage buffer for one binding: all of it, or its first `size` bytes.
pub(crate) struct Bind<'a> {
    buffer: &'a GpuBuffer,
    size: Option<u64>,
}

impl<'a> Bind<'a> {
    pub(crate) fn whole(buffer: &'a GpuBuffer) -> Self {
        Self { buffer, size: None }
    }

    pub(crate) fn prefix(buffer: &'a GpuBuffer, size: u64) -> Self {
        Self {
            buffer,
            size: Some(size),
        }
    }
}

fn key(kernel: Kernel) -> PipelineKey {
    PipelineKey { kernel, f16: false }
}

/// `got` must be at least `expected` (buffer lengths).
fn need(op: &'static str, what: &str, expected: usize, got: usize) -> Result<(), GpuError> {
    if got < expected {
        return Err(GpuError::Shape {
            op,
            what: format!("{what} (at least)"),
            expected: expected as u64,
            got: got as u64,
        });
    }
    Ok(())
}

/// `value` must be in `min..=max`.
fn within(
    op: &'static str,
    what: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), GpuError> {
    if value < min || value > max {
        return Err(GpuError::OutOfRange {
            op,
            what,
            value,
            min,
            max,
        });
    }
    Ok(())
}
