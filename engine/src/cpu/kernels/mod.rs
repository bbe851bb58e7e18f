//! Quantized matrix products for the CPU path, our own kernels in ggml's scheme: the
//! activations are quantized once per product to the weight type's dot partner (signed
//! bytes with a scale per 32 or 256 values, [`act`]), then each weight block is dotted with
//! them in integers and scaled once per block.
//!
//! - `blocks.rs`: the GGUF block layouts and the scalar dequantizers (the tests' reference).
//! - `act.rs`: the activation quantizers (scalar, AVX2, simd128; equal bit for bit).
//! - `scalar.rs`, `avx2.rs`, `simd128.rs`: one kernel per weight type per instruction set,
//!   each the dot products of one weight row with up to four activation rows.
//! - `gemm.rs`: the tile loop (rows x tokens) and its split over threads.
//! - `half.rs`: F16 and BF16 matrices, widened in registers and dotted with f32 activations.
//! - `pool.rs`: the worker threads.
//! - `interleave.rs`: the legacy types' rows interleaved in eights for the x86 tile kernels
//!   (in `avx2.rs`), which sum eight rows in the lanes of one vector.
//!
//! Weights stay in their GGUF blocks, read in place (on x86, the legacy types' rows
//! reordered in place in eights): no repacked copy, so memory is the file's. The
//! instruction set is detected at run time (`Isa::best`); every set computes the same
//! integer block sums, and a batch, a tile or a thread count never changes a result (see
//! `gemm.rs`).

pub mod act;
pub mod blocks;
mod gemm;
pub mod half;
pub mod interleave;
pub mod pool;
mod scalar;
pub mod vec;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "wasm32")]
mod simd128;

use thiserror::Error;

pub use act::{Activations, Partner};
pub use gemm::matmul_many;
pub use pool::Pool;

use crate::gguf::GgmlType;

/// The block types our kernels take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl QType {
    pub const ALL: [QType; 8] = [
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q4K,
        QType::Q5K,
        QType::Q6K,
    ];

    pub fn from_ggml(t: GgmlType) -> Option<Self> {
        Some(match t {
            GgmlType::Q4_0 => Self::Q4_0,
            GgmlType::Q4_1 => Self::Q4_1,
            GgmlType::Q5_0 => Self::Q5_0,
            GgmlType::Q5_1 => Self::Q5_1,
            GgmlType::Q8_0 => Self::Q8_0,
            GgmlType::Q4K => Self::Q4K,
            GgmlType::Q5K => Self::Q5K,
            GgmlType::Q6K => Self::Q6K,
            _ => return None,
        })
    }

    pub fn ggml(self) -> GgmlType {
        match self {
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
            Self::Q5_0 => GgmlType::Q5_0,
            Self::Q5_1 => GgmlType::Q5_1,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4K => GgmlType::Q4K,
            Self::Q5K => GgmlType::Q5K,
            Self::Q6K => GgmlType::Q6K,
        }
    }

    /// The activation format its blocks are dotted with.
    pub fn partner(self) -> Partner {
        match self {
            Self::Q4K | Self::Q5K | Self::Q6K => Partner::Q8K,
            _ => Partner::Q8_0,
        }
    }

    /// Values per block.
    pub fn block_values(self) -> usize {
        self.partner().block()
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.ggml().type_size() as usize
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KernelError {
    #[error("{ty:?} rows of {k} values: not a whole number of {block}-value blocks")]
    Width { ty: QType, k: usize, block: usize },
    #[error("{ty:?} matrix of {n} x {k} needs {needed} bytes, got {got}")]
    Bytes {
        ty: QType,
        n: usize,
        k: usize,
        needed: usize,
        got: usize,
    },
}

/// An instruction set the kernels run on, detected on this CPU (the only way to make one,
/// so a kernel never runs where its instructions are missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa(IsaKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IsaKind {
    Scalar,
    /// AVX2, FMA and F16C; `vnni` where AVX-512 VNNI (with VL) fuses the products' steps.
    #[cfg(target_arch = "x86_64")]
    Avx2 {
        vnni: bool,
    },
    #[cfg(target_arch = "wasm32")]
    Simd128,
}

impl Isa {
    /// The portable kernels.
    pub const fn scalar() -> Self {
        Isa(IsaKind::Scalar)
    }

    /// The fastest set this CPU has, or the one `M1_ISA` names where this CPU has it
    /// (`scalar`, `avx2`: to compare sets on one machine, or to step around one).
    pub fn best() -> Self {
        let detected = Self::detected();
        std::env::var("M1_ISA")
            .ok()
            .and_then(|name| {
                Self::below(detected)
                    .into_iter()
                    .find(|isa| isa.name() == name)
            })
            .unwrap_or(detected)
    }

    /// The sets a CPU with `best` can run, the scalar one first.
    fn below(best: Self) -> Vec<Self> {
        let mut all = vec![Self::scalar()];
        #[cfg(target_arch = "x86_64")]
        if best.0 == (IsaKind::Avx2 { vnni: true }) {
            // The plain AVX2 kernels too, which CPUs without AVX-512 run.
            all.push(Isa(IsaKind::Avx2 { vnni: false }));
        }
        if best.is_simd() {
            all.push(best);
        }
        all
    }

    /// The fastest set this CPU has.
    fn detected() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
            {
                let vnni = std::is_x86_feature_detected!("avx512vnni")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512f");
                return Isa(IsaKind::Avx2 { vnni });
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            // The wasm build is compiled with +simd128 (.cargo/config.toml): a runtime
            // without it refuses the module before any of this runs.
            return Isa(IsaKind::Simd128);
        }
        #[allow(unreachable_code)]
        Self::scalar()
    }

    /// Whether a SIMD set was found (else only the scalar kernels run).
    pub fn is_simd(self) -> bool {
        self.0 != IsaKind::Scalar
    }

    /// Every set this CPU can run, the scalar one first (for tests).
    pub fn available() -> Vec<Self> {
        Self::below(Self::detected())
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            IsaKind::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2 { vnni: false } => "avx2",
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2 { vnni: true } => "avx512-vnni",
            #[cfg(target_arch = "wasm32")]
            IsaKind::Simd128 => "simd128",
        }
    }
}

/// A weight matrix of `n` rows of `k` values in GGUF blocks, read in place (or their
/// whole eights interleaved in place, [`QMatrix::arrange_for`]).
#[derive(Clone)]
pub struct QMatrix {
    ty: QType,
    n: usize,
    k: usize,
    row_bytes: usize,
    /// The blocks' bytes, in u32 words as the loader reads them.
    words: Vec<u32>,
    /// Whether each whole eight of rows is interleaved (`interleave.rs`).
    tiled: bool,
}

impl QMatrix {
    /// Takes the words a tensor's bytes were read into (at least `n * k / block * size`
    /// bytes).
    pub fn new(ty: QType, n: usize, k: usize, words: Vec<u32>) -> Result<Self, KernelError> {
        let block = ty.block_values();
        if k == 0 || !k.is_multiple_of(block) {
            return Err(KernelError::Width { ty, k, block });
        }
        let row_bytes = k / block * ty.block_bytes();
        let needed = n * row_bytes;
        if words.len() * 4 < needed {
            return Err(KernelError::Bytes {
                ty,
                n,
                k,
                needed,
                got: words.len() * 4,
            });
        }
        Ok(Self {
            ty,
            n,
            k,
            row_bytes,
            words,
            tiled: false,
        })
    }

    /// Interleaves the rows in eights where `isa` has kernels for that (`interleave.rs`), in
    /// place; the products then need `isa` or another set with those kernels.
    pub fn arrange_for(&mut self, isa: Isa) {
        if self.tiled || self.n < interleave::ROWS || gemm::task_fn(self.ty, isa, true).is_none() {
            return;
        }
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.words);
        interleave::interleave(self.ty, bytes, self.n, self.row_bytes);
        self.tiled = true;
    }

    /// Whether the rows are interleaved in eights.
    pub fn is_tiled(&self) -> bool {
        self.tiled
    }

    /// Rows held in tiles: the whole eights where interleaved, else none.
    fn tiled_rows(&self) -> usize {
        if self.tiled {
            self.n / interleave::ROWS * interleave::ROWS
        } else {
            0
        }
    }

    pub fn ty(&self) -> QType {
        self.ty
    }

    /// Rows (output features).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Values a row (input features).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.words.len() * 4
    }

    /// Row `r`'s blocks, where rows are not interleaved.
    fn row_bytes(&self, r: usize) -> &[u8] {
        debug_assert!(r >= self.tiled_rows());
        let bytes: &[u8] = bytemuck::cast_slice(&self.words);
        &bytes[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// The tiles of rows `g..g + 8`, interleaved.
    #[cfg(target_arch = "x86_64")]
    fn group_bytes(&self, g: usize) -> &[u8] {
        let bytes: &[u8] = bytemuck::cast_slice(&self.words);
        &bytes[g * self.row_bytes..(g + interleave::ROWS) * self.row_bytes]
    }

    /// Row `r` as f32 values (ggml's dequantization), for tests and the embedding lookup.
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let gathered;
        let b = if r < self.tiled_rows() {
            let bytes: &[u8] = bytemuck::cast_slice(&self.words);
            gathered = interleave::row_blocks(self.ty, bytes, r, self.row_bytes);
            &gathered[..]
        } else {
            self.row_bytes(r)
        };
        let mut out = Vec::with_capacity(self.k);
        use blocks::*;
        match self.ty {
            QType::Q4_0 => dequantize_q4_0(bytemuck::cast_slice(b), &mut out),
            QType::Q4_1 => dequantize_q4_1(bytemuck::cast_slice(b), &mut out),
            QType::Q5_0 => dequantize_q5_0(bytemuck::cast_slice(b), &mut out),
            QType::Q5_1 => dequantize_q5_1(bytemuck::cast_slice(b), &mut out),
            QType::Q8_0 => dequantize_q8_0(bytemuck::cast_slice(b), &mut out),
            QType::Q4K => dequantize_q4k(bytemuck::cast_slice(b), &mut out),
            QType::Q5K => dequantize_q5k(bytemuck::cast_slice(b), &mut out),
            QType::Q6K => dequantize_q6k(bytemuck::cast_slice(b), &mut out),
        }
        out
    }

    /// `out = x W^T` (`x`: m rows of k; `out`: m x n, row-major by token).
    pub fn matmul(&self, x: &Activations, isa: Isa, pool: &Pool, out: &mut [f32]) {
        matmul_many(&mut [(self, out)], x, isa, pool);
    }
}
