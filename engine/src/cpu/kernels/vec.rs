//! f32 vector helpers for the rest of the forward pass (attention's dot products and
//! weighted sums, llama.cpp's f16 rounding), with the same run-time choice of instruction
//! set as the quantized kernels.

use super::{Isa, IsaKind};

/// `sum(a[i] * b[i])`.
#[inline]
pub fn dot(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an Isa with AVX2 is only made where AVX2, FMA and F16C were detected.
        IsaKind::Avx2 => unsafe { x86::dot(&a[..n], &b[..n]) },
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
        IsaKind::Avx2 => unsafe { x86::axpy(&mut y[..n], a, &x[..n]) },
        _ => {
            for (y, &x) in y[..n].iter_mut().zip(&x[..n]) {
                *y += a * x;
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
        IsaKind::Avx2 => unsafe { x86::round_f16(v) },
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
