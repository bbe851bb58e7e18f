//! How the next token is chosen, as settings and the draw both backends share: the GPU
//! sampler (gpu/kernels/sample.wgsl) and the CPU one (`backend::sample_logits`) take the same
//! [`Sampling`] and draw the same uniform number for a (seed, step), so they pick the same
//! token from the same logits.

use serde::{Deserialize, Serialize};

/// The m1 evaluation's seed (notes/m1-recipe.md).
pub const DEFAULT_SEED: u64 = 42;

/// How to pick each token. The default is m1's recipe: greedy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    /// 0 means greedy (argmax, lowest id on ties).
    pub temperature: f32,
    /// Keep the smallest set of most likely tokens whose probability reaches this; 1 keeps all.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self::GREEDY
    }
}

impl Sampling {
    pub const GREEDY: Sampling = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: DEFAULT_SEED,
    };

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// The PCG hash of sample.wgsl / common.wgsl, bit for bit (Jarzynski & Olano 2020).
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// The uniform number in [0, 1) drawn for (seed, step): a counter-based draw, so a token's
/// choice depends on its position and the seed, never on what was drawn before.
pub fn sample_uniform(seed: u64, step: u32) -> f64 {
    let r = pcg(seed as u32 ^ pcg((seed >> 32) as u32 ^ pcg(step)));
    f64::from(r >> 8) / 16_777_216.0
}
