//! f32 vector helpers for the rest of the forward pass (attention's dot products and
//! weighted sums, llama.cpp's f16 rounding), with the same run-time choice of instruction
//! set as the quantized kernels.

use super::Isa;
#[cfg(target_arch = "x86_64")]
use super::IsaKind;

/// `sum(a[i] * b[i])`.
#[inline]
pub fn dot(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an Isa with AVX2 is only made where AVX2, FMA and F16C were detected.
        IsaKind::Avx2 { .. } => unsafe { x86::dot(&a[..n], &b[..n]) },
        _ => {
            // Eight partial sums: the compiler keeps them in one vector register.
            let mut acc = [0f32; 8];
            let (ca, cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
            let (ra, rb) = (ca.remainder(), cb.remainder());
            for (x, y) in ca.zip(cb) {
                for l in 0..8 {
                    acc[l] += x[l] * y[l];
                }
            }
            let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
            acc.iter().sum::<f32>() + tail
        }
    }
}

/// `y[i] += a * x[i]`.
#[inline]
pub fn axpy(isa: Isa, y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        IsaKind::Avx2 { .. } => unsafe { x86::axpy(&mut y[..n], a, &x[..n]) },
        _ => {
            for (y, &x) in y[..n].iter_mut().zip(&x[..n]) {
                *y += a * x;
            }
        }
    }
}

/// Keys per block of a transposed key cache: [`scores`] reads a block's `head_dim` rows of
/// 8 keys as one vector each.
pub const KEYS: usize = 8;

/// `out[j] = q . k_j` for the `blocks * KEYS` keys of `kt`, stored in blocks of [`KEYS`]
/// keys transposed (`kt[(b * head_dim + d) * KEYS + l]` is dimension d of key b * KEYS + l).
/// Per block, eight partial sums over d mod 8, added pairwise.
pub fn scores(isa: Isa, q: &[f32], kt: &[f32], blocks: usize, out: &mut [f32]) {
    let hd = q.len();
    assert!(kt.len() >= blocks * hd * KEYS && out.len() >= blocks * KEYS);
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`; lengths asserted above.
        IsaKind::Avx2 { .. } if hd.is_multiple_of(8) => unsafe { x86::scores(q, kt, blocks, out) },
        _ => {
            for b in 0..blocks {
                let mut acc = [[0f32; KEYS]; 8];
                let kb = &kt[b * hd * KEYS..(b + 1) * hd * KEYS];
                for (d, (&qd, row)) in q.iter().zip(kb.chunks_exact(KEYS)).enumerate() {
                    for l in 0..KEYS {
                        acc[d % 8][l] += qd * row[l];
                    }
                }
                for l in 0..KEYS {
                    let a = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
                    let c = (acc[4][l] + acc[5][l]) + (acc[6][l] + acc[7][l]);
                    out[b * KEYS + l] = a + c;
                }
            }
        }
    }
}

/// `out = sum_j p[j] * v_j` over the rows v_j of `v` (`p.len()` rows of `out.len()`), keys in
/// order.
pub fn weighted_sum(isa: Isa, out: &mut [f32], p: &[f32], v: &[f32]) {
    let hd = out.len();
    assert!(v.len() >= p.len() * hd);
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`; lengths asserted above.
        IsaKind::Avx2 { .. } if hd.is_multiple_of(8) => unsafe { x86::weighted_sum(out, p, v) },
        _ => {
            out.fill(0.0);
            for (j, &pj) in p.iter().enumerate() {
                for (o, &x) in out.iter_mut().zip(&v[j * hd..(j + 1) * hd]) {
                    *o += pj * x;
                }
            }
        }
    }
}

/// Rounds every value to the nearest f16 (ties to even) and back, as llama.cpp's f16 KV
/// cache and f16 attention probabilities do.
pub fn round_f16(isa: Isa, v: &mut [f32]) {
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        IsaKind::Avx2 { .. } => unsafe { x86::round_f16(v) },
        _ => v
            .iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n for both slices.
            unsafe {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), acc[0]);
                acc[1] = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(8)),
                    _mm256_loadu_ps(pb.add(8)),
                    acc[1],
                );
            }
            i += 16;
        }
        let v = _mm256_add_ps(acc[0], acc[1]);
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let v = _mm_add_ss(v, _mm_movehdup_ps(v));
        let mut s = _mm_cvtss_f32(v);
        for j in i..n {
            s += a[j] * b[j];
        }
        s
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        let n = y.len();
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n for both slices.
            unsafe {
                let py = y.as_mut_ptr().add(i);
                let v =
                    _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(py));
                _mm256_storeu_ps(py, v);
            }
            i += 8;
        }
        for j in i..n {
            y[j] += a * x[j];
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn scores(q: &[f32], kt: &[f32], blocks: usize, out: &mut [f32]) {
        let hd = q.len();
        for b in 0..blocks {
            let mut acc = [_mm256_setzero_ps(); 8];
            // SAFETY: block b's hd rows of 8 keys and out[b * 8..] are in bounds (the caller).
            unsafe {
                let kb = kt.as_ptr().add(b * hd * 8);
                for d in (0..hd).step_by(8) {
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let qd = _mm256_broadcast_ss(&*q.as_ptr().add(d + i));
                        *acc = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb.add((d + i) * 8)), *acc);
                    }
                }
                let a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let c = _mm256_add_ps(_mm256_add_ps(acc[4], acc[5]), _mm256_add_ps(acc[6], acc[7]));
                _mm256_storeu_ps(out.as_mut_ptr().add(b * 8), _mm256_add_ps(a, c));
            }
        }
    }

    /// Eight accumulators (64 dimensions) at a time keep eight FMA chains in flight.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn weighted_sum(out: &mut [f32], p: &[f32], v: &[f32]) {
        let hd = out.len();
        let mut c0 = 0;
        while c0 < hd {
            // SAFETY: passed on; each call covers dimensions c0.. of every row.
            c0 += unsafe {
                match (hd - c0) / 8 {
                    8.. => weighted_lanes::<8>(out, p, v, c0),
                    4..=7 => weighted_lanes::<4>(out, p, v, c0),
                    2..=3 => weighted_lanes::<2>(out, p, v, c0),
                    _ => weighted_lanes::<1>(out, p, v, c0),
                }
            };
        }
    }

    /// Dimensions c0..c0 + 8 * L of `out`; returns 8 * L.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn weighted_lanes<const L: usize>(
        out: &mut [f32],
        p: &[f32],
        v: &[f32],
        c0: usize,
    ) -> usize {
        let hd = out.len();
        let mut acc = [_mm256_setzero_ps(); L];
        for (j, &pj) in p.iter().enumerate() {
            let w = _mm256_set1_ps(pj);
            // SAFETY: row j's dimensions c0..c0 + 8L are in bounds (the caller).
            let row = unsafe { v.as_ptr().add(j * hd + c0) };
            for (i, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(w, unsafe { _mm256_loadu_ps(row.add(8 * i)) }, *acc);
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            // SAFETY: out[c0 + 8i..+8] is in bounds.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * i), *acc) };
        }
        8 * L
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn round_f16(v: &mut [f32]) {
        let mut chunks = v.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: 8 floats.
            unsafe {
                let x = _mm256_loadu_ps(c.as_ptr());
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                _mm256_storeu_ps(c.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        for x in chunks.into_remainder() {
            *x = half::f16::from_f32(*x).to_f32();
        }
    }
}
