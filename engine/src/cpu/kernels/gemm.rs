//! The product `out = x W^T` over tiles of rows x tokens, split over threads.
//!
//! A task owns a range of weight rows (16 for a batch, more for a single token; whole
//! eights, for the matrices interleaved in eights) and computes them for every token, four
//! tokens at a time: the kernel unpacks a weight block (or a tile of eight rows' blocks)
//! once and dots it with the four activation rows, and the task's rows stay in cache while
//! the tokens stream past. Every output element is one kernel call's, summed in the same
//! order whatever the tile, task or thread, so a batch equals its tokens run one by one and
//! any thread count equals one thread, bit for bit.

use std::ops::Range;

use bytemuck::Pod;

use super::act::{Activations, XRow};
use super::interleave::ROWS;
use super::pool::{Pool, SharedMut};
use super::{Isa, IsaKind, QMatrix, QType};

/// One weight type's kernel on one instruction set: the dot products of a row of weight
/// blocks with `C` activation rows.
pub(crate) trait RowDot {
    type Block: Pod;
    /// SAFETY: the implementation's instruction set is available; every row of `x` holds
    /// the values of `w`'s blocks (and their scales and sums).
    unsafe fn dot<const C: usize>(w: &[Self::Block], x: &[XRow<'_>; C]) -> [f32; C];
}

/// One weight type's kernel on eight interleaved rows (`interleave.rs`): their dot
/// products with `C` activation rows, each token's eight in one array. x86 only for now:
/// simd128 has no byte dot product to put one row in each lane.
#[cfg(target_arch = "x86_64")]
pub(crate) trait TileDot {
    type Tile: Pod;
    /// SAFETY: as [`RowDot::dot`], `w` being one tile per block.
    unsafe fn dot<const C: usize>(w: &[Self::Tile], x: &[XRow<'_>; C]) -> [[f32; ROWS]; C];
}

/// Tokens per tile.
const TILE: usize = 4;
/// Rows a task takes when there are several tokens: enough that their blocks are reused
/// while the tokens stream past, few enough to stay in L1/L2.
const BATCH_ROWS: usize = 16;

type TaskFn = unsafe fn(&QMatrix, &Activations, Range<usize>, &SharedMut<f32>);

#[inline(always)]
unsafe fn tile<K: RowDot, const C: usize>(
    w: &QMatrix,
    x: &Activations,
    rows: Range<usize>,
    t0: usize,
    out: &SharedMut<f32>,
) {
    let xr: [XRow<'_>; C] = std::array::from_fn(|c| x.row(t0 + c));
    for r in rows {
        let blocks: &[K::Block] = bytemuck::cast_slice(w.row_bytes(r));
        // SAFETY: the caller vouches for the instruction set; shapes were checked in `matmul`.
        let v = unsafe { K::dot::<C>(blocks, &xr) };
        for (c, v) in v.into_iter().enumerate() {
            // SAFETY: this task is the only one with row r.
            unsafe { out.write((t0 + c) * w.n + r, v) };
        }
    }
}

#[inline(always)]
unsafe fn rows<K: RowDot>(w: &QMatrix, x: &Activations, rows: Range<usize>, out: &SharedMut<f32>) {
    let mut t = 0;
    while t < x.m {
        // SAFETY: passed on from the caller.
        unsafe {
            match x.m - t {
                1 => tile::<K, 1>(w, x, rows.clone(), t, out),
                2 => tile::<K, 2>(w, x, rows.clone(), t, out),
                3 => tile::<K, 3>(w, x, rows.clone(), t, out),
                _ => tile::<K, TILE>(w, x, rows.clone(), t, out),
            }
        }
        t += TILE;
    }
}

/// Rows `rows` (from a multiple of 8) of a matrix whose whole eights are interleaved: those
/// eight at a time by `T`, the rows after them by `K`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tiles<T: TileDot, K: RowDot>(
    w: &QMatrix,
    x: &Activations,
    rows: Range<usize>,
    out: &SharedMut<f32>,
) {
    let split = w.tiled_rows().clamp(rows.start, rows.end);
    let mut t = 0;
    while t < x.m {
        // SAFETY: passed on from the caller.
        unsafe {
            match x.m - t {
                1 => tile8::<T, 1>(w, x, rows.start..split, t, out),
                2 => tile8::<T, 2>(w, x, rows.start..split, t, out),
                3 => tile8::<T, 3>(w, x, rows.start..split, t, out),
                _ => tile8::<T, TILE>(w, x, rows.start..split, t, out),
            }
        }
        t += TILE;
    }
    // SAFETY: passed on from the caller.
    unsafe { self::rows::<K>(w, x, split..rows.end, out) }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile8<T: TileDot, const C: usize>(
    w: &QMatrix,
    x: &Activations,
    rows: Range<usize>,
    t0: usize,
    out: &SharedMut<f32>,
) {
    debug_assert!(rows.start.is_multiple_of(ROWS) && rows.len().is_multiple_of(ROWS));
    let xr: [XRow<'_>; C] = std::array::from_fn(|c| x.row(t0 + c));
    for g in rows.step_by(ROWS) {
        let tiles: &[T::Tile] = bytemuck::cast_slice(w.group_bytes(g));
        // SAFETY: the caller vouches for the instruction set; shapes were checked in `matmul`.
        let v = unsafe { T::dot::<C>(tiles, &xr) };
        for (c, v) in v.into_iter().enumerate() {
            for (j, v) in v.into_iter().enumerate() {
                // SAFETY: this task is the only one with rows g..g + 8.
                unsafe { out.write((t0 + c) * w.n + g + j, v) };
            }
        }
    }
}

/// For the scalar kernels, and simd128 (enabled for the whole wasm build).
unsafe fn rows_plain<K: RowDot>(
    w: &QMatrix,
    x: &Activations,
    r: Range<usize>,
    out: &SharedMut<f32>,
) {
    // SAFETY: passed on from the caller.
    unsafe { rows::<K>(w, x, r, out) }
}

/// The same loop compiled with AVX2, so the kernels inline into it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2<K: RowDot>(
    w: &QMatrix,
    x: &Activations,
    r: Range<usize>,
    out: &SharedMut<f32>,
) {
    // SAFETY: passed on from the caller.
    unsafe { rows::<K>(w, x, r, out) }
}

/// And with AVX-512 VNNI for the kernels' `Vnni` flavor.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rows_vnni<K: RowDot>(
    w: &QMatrix,
    x: &Activations,
    r: Range<usize>,
    out: &SharedMut<f32>,
) {
    // SAFETY: passed on from the caller.
    unsafe { rows::<K>(w, x, r, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tiles_avx2<T: TileDot, K: RowDot>(
    w: &QMatrix,
    x: &Activations,
    r: Range<usize>,
    out: &SharedMut<f32>,
) {
    // SAFETY: passed on from the caller.
    unsafe { tiles::<T, K>(w, x, r, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tiles_vnni<T: TileDot, K: RowDot>(
    w: &QMatrix,
    x: &Activations,
    r: Range<usize>,
    out: &SharedMut<f32>,
) {
    // SAFETY: passed on from the caller.
    unsafe { tiles::<T, K>(w, x, r, out) }
}

/// The task for a matrix of `ty` on `isa`, interleaved (`tiled`) or not; `None` where a
/// tiled matrix has no kernel on `isa`, which is what [`QMatrix::arrange_for`] asks.
pub(super) fn task_fn(ty: QType, isa: Isa, tiled: bool) -> Option<TaskFn> {
    if !tiled {
        return Some(block_task_fn(ty, isa));
    }
    #[allow(unused_macros)]
    macro_rules! pick {
        ($module:ident, $driver:ident, $flavor:ty) => {
            match ty {
                QType::Q4_0 => {
                    Some($driver::<$module::Q4_0Tiles<$flavor>, $module::Q4_0<$flavor>> as TaskFn)
                }
                QType::Q5_0 => {
                    Some($driver::<$module::Q5_0Tiles<$flavor>, $module::Q5_0<$flavor>> as TaskFn)
                }
                QType::Q4_1 => {
                    Some($driver::<$module::Q4_1Tiles<$flavor>, $module::Q4_1<$flavor>> as TaskFn)
                }
                QType::Q5_1 => {
                    Some($driver::<$module::Q5_1Tiles<$flavor>, $module::Q5_1<$flavor>> as TaskFn)
                }
                QType::Q8_0 => {
                    Some($driver::<$module::Q8_0Tiles<$flavor>, $module::Q8_0<$flavor>> as TaskFn)
                }
                _ => None,
            }
        };
    }
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2 { vnni: false } => {
            use super::avx2;
            pick!(avx2, tiles_avx2, avx2::Avx2)
        }
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2 { vnni: true } => {
            use super::avx2;
            pick!(avx2, tiles_vnni, avx2::Vnni)
        }
        _ => None,
    }
}

fn block_task_fn(ty: QType, isa: Isa) -> TaskFn {
    use super::scalar;
    macro_rules! pick {
        ($module:ident, $driver:ident $(, $flavor:ty)?) => {
            match ty {
                QType::Q4_0 => $driver::<$module::Q4_0$(<$flavor>)?>,
                QType::Q4_1 => $driver::<$module::Q4_1$(<$flavor>)?>,
                QType::Q5_0 => $driver::<$module::Q5_0$(<$flavor>)?>,
                QType::Q5_1 => $driver::<$module::Q5_1$(<$flavor>)?>,
                QType::Q8_0 => $driver::<$module::Q8_0$(<$flavor>)?>,
                QType::Q4K => $driver::<$module::Q4K$(<$flavor>)?>,
                QType::Q5K => $driver::<$module::Q5K$(<$flavor>)?>,
                QType::Q6K => $driver::<$module::Q6K$(<$flavor>)?>,
            }
        };
    }
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2 { vnni: false } => {
            use super::avx2;
            pick!(avx2, rows_avx2, avx2::Avx2)
        }
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2 { vnni: true } => {
            use super::avx2;
            pick!(avx2, rows_vnni, avx2::Vnni)
        }
        #[cfg(target_arch = "wasm32")]
        IsaKind::Simd128 => {
            use super::simd128;
            pick!(simd128, rows_plain)
        }
        _ => pick!(scalar, rows_plain),
    }
}

/// `out_j = x W_j^T` for each `(W_j, out_j)` (`out_j`: m x n_j, row-major by token), all in
/// one job on the pool. Every W_j must take `x`'s partner and have `x`'s width.
pub fn matmul_many(jobs: &mut [(&QMatrix, &mut [f32])], x: &Activations, isa: Isa, pool: &Pool) {
    for (w, out) in jobs.iter() {
        assert_eq!(
            w.ty.partner(),
            x.partner,
            "{:?} weights with {:?} activations",
            w.ty,
            x.partner
        );
        assert_eq!(
            w.k, x.k,
            "weights of width {} with activations of width {}",
            w.k, x.k
        );
        assert_eq!(
            out.len(),
            x.m * w.n,
            "output of {} for {} x {}",
            out.len(),
            x.m,
            w.n
        );
    }
    let total: usize = jobs.iter().map(|(w, _)| w.n).sum();
    let chunk = if x.m > 1 {
        BATCH_ROWS
    } else {
        // One token: about 8 tasks a thread, for balance; whole tiles of rows.
        (total / (8 * pool.threads())).clamp(ROWS, 64) / ROWS * ROWS
    };
    // (matrix, first row) of each task.
    let mut tasks = Vec::new();
    for (j, (w, _)) in jobs.iter().enumerate() {
        tasks.extend((0..w.n).step_by(chunk).map(|r| (j, r)));
    }
    let parts: Vec<(&QMatrix, SharedMut<f32>, TaskFn)> = jobs
        .iter_mut()
        .map(|(w, out)| {
            let f = task_fn(w.ty, isa, w.tiled).unwrap_or_else(|| {
                panic!(
                    "{:?} matrix interleaved for another instruction set than {}",
                    w.ty,
                    isa.name()
                )
            });
            (*w, SharedMut::new(out), f)
        })
        .collect();
    pool.run(tasks.len(), &|t| {
        let (j, r0) = tasks[t];
        let (w, out, f) = &parts[j];
        // SAFETY: `isa` was detected on this CPU (an `Isa` is only made that way); shapes were
        // checked above; tasks cover disjoint rows.
        unsafe { f(w, x, r0..(r0 + chunk).min(w.n), out) };
    });
}
