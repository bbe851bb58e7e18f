//! The attention KV cache: per layer, one K and one V buffer laid out
//! [n_ctx, n_kv_heads, head_dim], so the rows of a new token are one contiguous write.

use super::{Gpu, GpuError};

/// Storage type of cached keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvDtype {
    F32,
    /// Halves the cache and its read bandwidth; needs shader-f16.
    F16,
}

impl KvDtype {
    /// F16 where the device has shader-f16, F32 otherwise.
    pub fn preferred(gpu: &Gpu) -> Self {
        if gpu.report.shader_f16 {
            Self::F16
        } else {
            Self::F32
        }
    }

    pub fn bytes(self) -> u64 {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }
}

#[derive(Debug)]
pub struct KvCache {
    n_ctx: u32,
    n_kv_heads: u32,
    head_dim: u32,
    dtype: KvDtype,
    pub(crate) layers: Vec<(wgpu::Buffer, wgpu::Buffer)>,
}

impl KvCache {
    pub fn new(
        gpu: &Gpu,
        n_layers: usize,
        n_ctx: u32,
        n_kv_heads: u32,
        head_dim: u32,
        dtype: KvDtype,
    ) -> Result<Self, GpuError> {
        if dtype == KvDtype::F16 && !gpu.report.shader_f16 {
            return Err(GpuError::NoShaderF16);
        }
        let per_buffer =
            u64::from(n_ctx) * u64::from(n_kv_heads) * u64::from(head_dim) * dtype.bytes();
        if per_buffer > gpu.max_binding() {
            return Err(GpuError::BindingTooLarge {
                what: format!("KV cache layer ({n_ctx} tokens x {n_kv_heads} heads x {head_dim})"),
                bytes: per_buffer,
                max_binding: gpu.max_binding(),
            });
        }
        // f16 rows of an odd element count would leave a buffer size that is not 4-aligned.
        let size = per_buffer.max(4).next_multiple_of(4);
        let make = |what: &str, layer: usize| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
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
            dtype,
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

    pub fn dtype(&self) -> KvDtype {
        self.dtype
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Layer `layer`'s K and V buffers.
    pub(crate) fn layer(&self, layer: usize) -> Result<(&wgpu::Buffer, &wgpu::Buffer), GpuError> {
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
        let width = (self.n_kv_heads * self.head_dim) as usize;
        let at = pos as usize * width;
        Ok((
            self.read_row(gpu, k, at, width).await?,
            self.read_row(gpu, v, at, width).await?,
        ))
    }

    async fn read_row(
        &self,
        gpu: &Gpu,
        b: &wgpu::Buffer,
        at: usize,
        width: usize,
    ) -> Result<Vec<f32>, GpuError> {
        Ok(match self.dtype {
            KvDtype::F32 => super::read_elements::<f32>(gpu, b, at, width).await?,
            KvDtype::F16 => {
                // Halves two to a word: the row is whole words when its width is even.
                let words = super::read_elements::<u32>(gpu, b, at / 2, width / 2).await?;
                words
                    .iter()
                    .flat_map(|w| [*w as u16, (*w >> 16) as u16])
                    .map(|h| half::f16::from_bits(h).to_f32())
                    .collect()
            }
        })
    }

    /// GPU bytes held by all layers.
    pub fn bytes(&self) -> u64 {
        self.layers.iter().map(|(k, v)| k.size() + v.size()).sum()
    }
}
