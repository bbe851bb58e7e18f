//! Kernel benchmarks: each decode mat-vec type at m1-7B's shapes, as effective GB/s (weight
//! bytes over kernel time) and, where a reference is known, the fraction of the adapter's
//! bandwidth. The native CLI (`m1 bench --kernels`) and the browser bench
//! (`tests/gpu_browser_bench.rs`) both call [`matvec`].
//!
//! Kernel time comes from timestamp queries around a compute pass of `reps` back-to-back
//! dispatches where the device offers them (`GpuOptions { timestamps: true }`), else from the
//! wall clock around the same pass, submitted and awaited. The reference bandwidth is a
//! measured buffer-to-buffer copy on the same device (bytes read plus bytes written over its
//! time), and the caller's stated peak when given: wgpu cannot tell a device's memory
//! bandwidth.

use std::fmt;

use super::{F32Buffer, Gpu, GpuError, Ops, Tuning, WeightTensor};
use crate::gguf::GgmlType;

/// One weight matrix shape: `rows` outputs of `cols` inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub name: &'static str,
    pub rows: u32,
    pub cols: u32,
}

/// m1-7B's (Qwen2.5-7B's) decode mat-vecs, with q/k/v and gate/up fused as the model loads them.
pub const M1_SHAPES: [Shape; 5] = [
    Shape {
        name: "attn_qkv",
        rows: 3584 + 2 * 512,
        cols: 3584,
    },
    Shape {
        name: "attn_output",
        rows: 3584,
        cols: 3584,
    },
    Shape {
        name: "ffn_gate_up",
        rows: 2 * 18944,
        cols: 3584,
    },
    Shape {
        name: "ffn_down",
        rows: 3584,
        cols: 18944,
    },
    Shape {
        name: "output",
        rows: 152064,
        cols: 3584,
    },
];

/// The types of llama.cpp's Q4_K_M, Q5_K_M, Q6_K, Q8_0 and Q4_0 files, and Q5_0/Q4_1 (the 0.5B
/// test model's and SmolLM2's).
pub const BENCH_TYPES: [GgmlType; 7] = [
    GgmlType::Q4K,
    GgmlType::Q6K,
    GgmlType::Q8_0,
    GgmlType::Q5K,
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q4_1,
];

/// What [`matvec`] measures.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub types: Vec<GgmlType>,
    pub shapes: Vec<Shape>,
    /// Tokens per product: 1 times the decode mat-vec, more the prefill mat-mat.
    pub tokens: u32,
    /// Dispatches per timed pass (after one untimed pass that compiles and warms up).
    pub reps: u32,
    /// The adapter's memory bandwidth in GB/s, when the caller knows it.
    pub peak_gb_s: Option<f64>,
    /// Kernel shapes; `None` picks the adapter's defaults.
    pub tuning: Option<Tuning>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            types: BENCH_TYPES.to_vec(),
            shapes: M1_SHAPES.to_vec(),
            tokens: 1,
            reps: 8,
            peak_gb_s: None,
            tuning: None,
        }
    }
}

/// How a time was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// GPU timestamps at the start and end of the pass.
    Timestamps,
    /// The host's clock from submit to completion.
    Wall,
}

/// One kernel's figure.
#[derive(Debug, Clone)]
pub struct KernelTiming {
    pub ty: GgmlType,
    pub shape: Shape,
    pub tokens: u32,
    /// Weight bytes one dispatch reads (as they sit on the GPU).
    pub bytes: u64,
    /// Milliseconds per dispatch.
    pub ms: f64,
    pub timer: Timer,
    /// CPU milliseconds the process spent per dispatch, where the platform says (Linux): on a
    /// software adapter the kernel's cost independent of what else the machine runs.
    pub cpu_ms: Option<f64>,
}

impl KernelTiming {
    pub fn gb_s(&self) -> f64 {
        self.bytes as f64 / (self.ms * 1e6)
    }

    /// Multiply-adds times two per second, in GFLOP/s.
    pub fn gflop_s(&self) -> f64 {
        2.0 * f64::from(self.shape.rows) * f64::from(self.shape.cols) * f64::from(self.tokens)
            / (self.ms * 1e6)
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub adapter: String,
    /// Bytes read plus written per second by a buffer copy, in GB/s.
    pub copy_gb_s: f64,
    pub peak_gb_s: Option<f64>,
    pub kernels: Vec<KernelTiming>,
}

impl BenchReport {
    /// The reference a kernel's GB/s is a fraction of: the stated peak, else the copy.
    pub fn reference_gb_s(&self) -> f64 {
        self.peak_gb_s.unwrap_or(self.copy_gb_s)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "adapter {}", self.adapter)?;
        writeln!(
            f,
            "buffer copy {:.2} GB/s (read + write){}",
            self.copy_gb_s,
            match self.peak_gb_s {
                Some(p) => format!("; stated peak {p:.1} GB/s"),
                None => String::new(),
            }
        )?;
        let of = if self.peak_gb_s.is_some() {
            "of peak"
        } else {
            "of copy"
        };
        writeln!(
            f,
            "{:<6} {:<12} {:>15} {:>6} {:>9} {:>10} {:>8} {:>9}  {:>10} {:>10} {:>9}",
            "type",
            "tensor",
            "rows x cols",
            "tokens",
            "MB",
            "ms",
            "GB/s",
            "fraction",
            "timer",
            "CPU ms",
            "GFLOP/s"
        )?;
        for k in &self.kernels {
            writeln!(
                f,
                "{:<6} {:<12} {:>15} {:>6} {:>9.1} {:>10.3} {:>8.2} {:>5.1}% {of} {:>10} {:>10} {:>9.2}",
                k.ty.name(),
                k.shape.name,
                format!("{} x {}", k.shape.rows, k.shape.cols),
                k.tokens,
                k.bytes as f64 / 1e6,
                k.ms,
                k.gb_s(),
                100.0 * k.gb_s() / self.reference_gb_s(),
                match k.timer {
                    Timer::Timestamps => "timestamps",
                    Timer::Wall => "wall clock",
                },
                k.cpu_ms.map_or("-".to_string(), |c| format!("{c:.1}")),
                k.gflop_s(),
            )?;
        }
        Ok(())
    }
}

/// Times `Ops::matmul` over `opts.tokens` tokens (one: the decode mat-vec; more: the prefill
/// mat-mat) for every type in `opts` at every shape, one weight on the GPU at a time;
/// `progress` sees each figure as it is taken (a software adapter takes seconds per kernel).
pub async fn matvec(
    gpu: &Gpu,
    opts: &BenchOptions,
    mut progress: impl FnMut(&KernelTiming),
) -> Result<BenchReport, GpuError> {
    let tuning = opts
        .tuning
        .unwrap_or_else(|| Tuning::for_adapter(&gpu.report));
    let mut ops = Ops::with_tuning(gpu, tuning)?;
    let copy_gb_s = copy_bandwidth(gpu).await?;
    let mut kernels = Vec::new();
    for &ty in &opts.types {
        for &shape in &opts.shapes {
            let w = synthetic_weight(gpu, ty, shape)?;
            let t = opts.tokens.max(1);
            let x = F32Buffer::from_slice(
                gpu,
                "bench x",
                &synthetic_x(t as usize * shape.cols as usize),
            )?;
            let y = F32Buffer::zeros(gpu, "bench y", t as usize * shape.rows as usize)?;
            let mut rec = ops.recording();
            for _ in 0..opts.reps.max(1) {
                ops.matmul(&mut rec, &x, &w, None, &y, t)?;
            }
            rec.finish(&gpu.queue);
            // Untimed: compiles the pipeline and touches every page of the weight.
            time_pass(gpu, &rec, false).await?;
            let cpu0 = process_cpu_ms();
            let (ms, timer) = time_pass(gpu, &rec, gpu.report.timestamps).await?;
            let cpu_ms = cpu0.zip(process_cpu_ms()).map(|(a, b)| b - a);
            gpu.take_error()?;
            let reps = f64::from(opts.reps.max(1));
            let k = KernelTiming {
                ty,
                shape,
                tokens: t,
                bytes: w.gpu_bytes(),
                ms: ms / reps,
                timer,
                cpu_ms: cpu_ms.map(|c| c / reps),
            };
            progress(&k);
            kernels.push(k);
        }
    }
    Ok(BenchReport {
        adapter: format!("{} ({})", gpu.report.name, gpu.report.backend),
        copy_gb_s,
        peak_gb_s: opts.peak_gb_s,
        kernels,
    })
}

/// Replays `rec` in one compute pass and returns its time in milliseconds.
async fn time_pass(
    gpu: &Gpu,
    rec: &super::Recording,
    timestamps: bool,
) -> Result<(f64, Timer), GpuError> {
    let queries = timestamps.then(|| {
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("bench timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        (set, resolve)
    });
    let mut enc = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("bench"),
        });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("bench"),
            timestamp_writes: queries
                .as_ref()
                .map(|(set, _)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
        });
        rec.replay(&mut pass);
    }
    if let Some((set, resolve)) = &queries {
        enc.resolve_query_set(set, 0..2, resolve, 0);
    }
    let t0 = crate::clock::now_ms();
    gpu.queue.submit([enc.finish()]);
    match &queries {
        Some((_, resolve)) => {
            let ticks: Vec<u64> = super::read_elements(gpu, resolve, 0, 2).await?;
            let ns = ticks[1].saturating_sub(ticks[0]) as f64
                * f64::from(gpu.queue.get_timestamp_period());
            Ok((ns / 1e6, Timer::Timestamps))
        }
        None => {
            wait_idle(gpu).await?;
            Ok((crate::clock::now_ms() - t0, Timer::Wall))
        }
    }
}

/// CPU time of the whole process (all threads, so a software adapter's workers too) in
/// milliseconds, from /proc/self/stat; `None` off Linux.
#[cfg(not(target_arch = "wasm32"))]
fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // Clock ticks of USER_HZ, 100 on every Linux we run on.
    Some((utime + stime) * 10.0)
}

#[cfg(target_arch = "wasm32")]
fn process_cpu_ms() -> Option<f64> {
    None
}

/// Waits for all submitted work: a one-word copy read back after it.
async fn wait_idle(gpu: &Gpu) -> Result<(), GpuError> {
    let probe = F32Buffer::zeros(gpu, "bench probe", 1)?;
    probe.read(gpu).await.map(|_| ())
}

/// GB/s of a 64 MiB buffer-to-buffer copy (bytes read plus written), timed like a kernel.
async fn copy_bandwidth(gpu: &Gpu) -> Result<f64, GpuError> {
    let size = (64u64 << 20).min(gpu.limits.max_buffer_size);
    let make = |label| {
        gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let (src, dst) = (make("copy src"), make("copy dst"));
    let reps = 4;
    let copy = |gpu: &Gpu| {
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for _ in 0..reps {
            enc.copy_buffer_to_buffer(&src, 0, &dst, 0, size);
        }
        gpu.queue.submit([enc.finish()]);
    };
    copy(gpu);
    wait_idle(gpu).await?;
    let t0 = crate::clock::now_ms();
    copy(gpu);
    wait_idle(gpu).await?;
    let ms = crate::clock::now_ms() - t0;
    Ok(2.0 * size as f64 * f64::from(reps) / (ms.max(1e-6) * 1e6))
}

/// x in [-1, 1).
fn synthetic_x(n: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9u32;
    (0..n)
        .map(|_| {
            state = crate::sampling::pcg(state);
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// A weight of random quants whose f16 scales are all 2^-7, streamed onto the GPU as a
/// model's weights are (in row chunks, through the writer).
fn synthetic_weight(gpu: &Gpu, ty: GgmlType, shape: Shape) -> Result<WeightTensor, GpuError> {
    let (rows, cols) = (shape.rows as usize, shape.cols as usize);
    let w = WeightTensor::new(gpu, shape.name, ty, rows, cols)?;
    let row_bytes = w.row_bytes() as usize;
    let rows_per_chunk = (8 << 20) / row_bytes.max(1);
    let mut writer = w.writer();
    let mut state = 0x2545_F491u32;
    let mut row0 = 0;
    while row0 < rows {
        let n = rows_per_chunk.clamp(1, rows - row0);
        let mut bytes = vec![0u8; n * row_bytes];
        for word in bytes.chunks_mut(4) {
            state = crate::sampling::pcg(state);
            let b = state.to_le_bytes();
            word.copy_from_slice(&b[..word.len()]);
        }
        set_scales(ty, &mut bytes);
        writer.write(gpu, &bytes)?;
        row0 += n;
    }
    writer.finish()?;
    Ok(w)
}

/// Overwrites the f16 fields of every block (ggml's layout) with 2^-7, and float weights
/// with small values, so no kernel meets a NaN or an infinity.
fn set_scales(ty: GgmlType, bytes: &mut [u8]) {
    const SCALE: [u8; 2] = [0x00, 0x20]; // f16 2^-7
    let fields: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        GgmlType::F16 | GgmlType::BF16 => {
            for h in bytes.chunks_mut(2) {
                h[1] &= 0x23; // exponent well below the max: |value| < 2^-3
            }
            return;
        }
        GgmlType::F32 => {
            for f in bytes.chunks_mut(4) {
                f[3] &= 0x3E;
            }
            return;
        }
        _ => &[],
    };
    let block = ty.type_size() as usize;
    for b in bytes.chunks_mut(block) {
        for &at in fields {
            b[at..at + 2].copy_from_slice(&SCALE);
        }
    }
}
