//! Rotary position embedding.

use super::{key, need, within, Bind, Ops, Recording};
use crate::gpu::buffers::{F32Buffer, U32Buffer};
use crate::gpu::pipelines::{uniform, Kernel};
use crate::gpu::{Gpu, GpuBuffer, GpuError};

/// Which dimensions rotate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RopeMode {
    /// Pairs (2i, 2i + 1): llama GGUFs (llama.cpp's converter permutes q/k rows for it).
    Normal,
    /// Pairs (i, i + n_rot / 2): qwen2 and other HF-layout models.
    Neox,
}

/// Each rotated pair's frequency, `1 / (theta^(2i / n_rot) * factor_i)` radians per position,
/// uploaded as turns per position in 64-bit fixed point so the kernel's angles stay exact at
/// long positions (see rope.wgsl).
#[derive(Debug)]
pub struct RopeFreqs {
    turns: U32Buffer,
    n_rot: u32,
}

impl RopeFreqs {
    /// `factors` are llama3-style per-pair frequency divisors (`rope_freqs.weight`), if any.
    pub fn new(
        gpu: &Gpu,
        n_rot: u32,
        theta: f64,
        factors: Option<&[f32]>,
    ) -> Result<Self, GpuError> {
        let freqs = Self::frequencies(n_rot, theta, factors)?;
        let turns: Vec<u32> = freqs
            .iter()
            .flat_map(|&f| {
                // Whole turns drop out of every angle; keep the fraction as 0.64 fixed point.
                let t = (f / std::f64::consts::TAU).fract();
                let fixed = (t * 2f64.powi(64)) as u128;
                [(fixed >> 32) as u32, fixed as u32]
            })
            .collect();
        Ok(Self {
            turns: U32Buffer::from_slice(gpu, "rope turns", &turns)?,
            n_rot,
        })
    }

    /// The radians-per-position of each pair, as the GPU uses them (and the CPU twin should).
    pub fn frequencies(
        n_rot: u32,
        theta: f64,
        factors: Option<&[f32]>,
    ) -> Result<Vec<f64>, GpuError> {
        const OP: &str = "RopeFreqs::new";
        if n_rot == 0 || !n_rot.is_multiple_of(2) {
            return Err(GpuError::NotMultiple {
                op: OP,
                what: "n_rot",
                value: u64::from(n_rot),
                multiple: 2,
            });
        }
        let half = (n_rot / 2) as usize;
        if let Some(f) = factors {
            if f.len() != half {
                return Err(GpuError::Shape {
                    op: OP,
                    what: "rope frequency factors".to_string(),
                    expected: half as u64,
                    got: f.len() as u64,
                });
            }
        }
        Ok((0..half)
            .map(|i| {
                let factor = factors.map_or(1.0, |f| f64::from(f[i]));
                1.0 / (theta.powf(2.0 * i as f64 / f64::from(n_rot)) * factor)
            })
            .collect())
    }

    pub fn n_rot(&self) -> u32 {
        self.n_rot
    }

    pub(crate) fn turns(&self) -> &GpuBuffer {
        &self.turns.buffer
    }
}

uniform! {
    /// rope.wgsl's `Params`.
    pub(crate) struct RopeParams {
        n_heads: u32,
        head_dim: u32,
        n_rot: u32,
        pos: u32,
        t: u32,
        neox: u32,
        groups_x: u32,
        _pad0: u32,
    }
}

impl Ops {
    /// Rotates `x[t, head, :n_rot]` in place for tokens at positions `pos..pos + t`; `x` is
    /// `[t, n_heads, head_dim]` (q or k straight from their projections).
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &mut self,
        rec: &mut Recording,
        x: &F32Buffer,
        freqs: &RopeFreqs,
        mode: RopeMode,
        n_heads: u32,
        head_dim: u32,
        pos: u32,
        t: u32,
    ) -> Result<(), GpuError> {
        const OP: &str = "rope";
        within(OP, "n_rot", u64::from(freqs.n_rot), 2, u64::from(head_dim))?;
        need(
            OP,
            &format!("x for {t} tokens x {n_heads} heads x {head_dim}"),
            (t * n_heads * head_dim) as usize,
            x.len(),
        )?;
        let pairs = t * n_heads * (freqs.n_rot / 2);
        if pairs == 0 {
            return Ok(());
        }
        let (gx, gy) = self.fold(OP, pairs.div_ceil(256))?;
        let params = RopeParams {
            n_heads,
            head_dim,
            n_rot: freqs.n_rot,
            pos,
            t,
            neox: u32::from(mode == RopeMode::Neox),
            groups_x: gx,
            ..Default::default()
        };
        self.push(
            rec,
            key(Kernel::Rope),
            &[Bind::whole(&x.buffer), Bind::whole(&freqs.turns.buffer)],
            &params,
            [gx, gy, 1],
        );
        Ok(())
    }
}
