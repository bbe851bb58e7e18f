//! The attention KV cache: per layer one K and one V buffer of f16 values, two adjacent dims
//! to a u32 word (WGSL's pack2x16float/unpack2x16float: no shader-f16 needed, so every device
//! stores half the bytes and reads half the bandwidth of f32).
//!
//! Laid out for attention's reads (kernels/common.wgsl, `k_word`/`v_word`): K transposed,
//! `[n_kv_heads * head_dim / 2][n_ctx]` words, so threads taking one key each read
//! consecutive words of one dim pair; V position-major, `[n_ctx][n_kv_heads * head_dim / 2]`,
//! so threads taking one dim pair each read consecutive words of one key.

use super::{Gpu, GpuBuffer, GpuError};

/// Bytes per cached value.
pub const KV_BYTES: u64 = 2;

#[derive(Debug)]
pub struct KvCache {
    n_ctx: u32,
    n_kv_heads: u32,
    head_dim: u32,
    pub(crate) layers: Vec<(GpuBuffer, GpuBuffer)>,
}

impl KvCache {
    pub fn new(
        gpu: &Gpu,
        n_layers: usize,
        n_ctx: u32,
        n_kv_heads: u32,
        head_dim: u32,
    ) -> Result<Self, GpuError> {
        if !head_dim.is_multiple_of(2) {
            return Err(GpuError::NotMultiple {
                op: "KvCache::new",
                what: "head_dim",
                value: u64::from(head_dim),
                multiple: 2,
            });
        }
        let per_buffer = u64::from(n_ctx) * u64::from(n_kv_heads) * u64::from(head_dim) * KV_BYTES;
        if per_buffer > gpu.max_binding() {
            return Err(GpuError::BindingTooLarge {
                what: format!("KV cache layer ({n_ctx} tokens x {n_kv_heads} heads x {head_dim})"),
                bytes: per_buffer,
                max_binding: gpu.max_binding(),
            });
        }
        let size = per_buffer.max(4);
        let make = |what: &str, layer: usize| {
            gpu.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("kv.{layer}.{what}")),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        };
        let layers = (0..n_layers)
            .map(|l| (make("k", l), make("v", l)))
            .collect();
        Ok(Self {
            n_ctx,
            n_kv_heads,
            head_dim,
            layers,
        })
    }

    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    pub fn n_kv_heads(&self) -> u32 {
        self.n_kv_heads
    }

    pub fn head_dim(&self) -> u32 {
        self.head_dim
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Layer `layer`'s K and V buffers.
    pub(crate) fn layer(&self, layer: usize) -> Result<(&GpuBuffer, &GpuBuffer), GpuError> {
        self.layers
            .get(layer)
            .map(|(k, v)| (k, v))
            .ok_or(GpuError::OutOfRange {
                op: "KvCache::layer",
                what: "layer",
                value: layer as u64,
                min: 0,
                max: self.layers.len().saturating_sub(1) as u64,
            })
    }

    /// The keys and values stored at position `pos` of `layer`, as f32 (tests).
    pub async fn read_position(
        &self,
        gpu: &Gpu,
        layer: usize,
        pos: u32,
    ) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        let (k, v) = self.layer(layer)?;
        let pairs = (self.n_kv_heads * self.head_dim / 2) as usize;
        let n_ctx = self.n_ctx as usize;
        let all_k = super::read_elements::<u32>(gpu, k, 0, pairs * n_ctx).await?;
        let k_words: Vec<u32> = (0..pairs)
            .map(|p| all_k[p * n_ctx + pos as usize])
            .collect();
        let v_words = super::read_elements::<u32>(gpu, v, pos as usize * pairs, pairs).await?;
        let halves = |words: &[u32]| -> Vec<f32> {
            words
                .iter()
                .flat_map(|w| [*w as u16, (*w >> 16) as u16])
                .map(|h| half::f16::from_bits(h).to_f32())
                .collect()
        };
        Ok((halves(&k_words), halves(&v_words)))
    }

    /// GPU bytes held by all layers.
    pub fn bytes(&self) -> u64 {
        self.layers.iter().map(|(k, v)| k.size() + v.size()).sum()
    }
}
