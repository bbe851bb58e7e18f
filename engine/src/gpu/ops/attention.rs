//! KV cache writes and causal grouped-query attention.

use super::{key, need, within, Bind, Ops, Recording};
use crate::gpu::buffers::F32Buffer;
use crate::gpu::kv::KvCache;
use crate::gpu::pipelines::{uniform, Kernel};
use crate::gpu::GpuError;

uniform! {
    /// attention.wgsl's `Params`.
    pub(crate) struct AttnParams {
        n_heads: u32,
        n_kv_heads: u32,
        head_dim: u32,
        pos: u32,
        t: u32,
        /// Keys per chunk (attention.wgsl's CH).
        chunk: u32,
        n_chunks: u32,
        /// 1 / sqrt(head_dim).
        scale: f32,
        groups_x: u32,
        /// Positions the cache holds (its K rows' stride).
        n_ctx: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// attention.wgsl holds q for head_dim <= 256 in workgroup memory.
const MAX_HEAD_DIM: u32 = 256;
/// Keys per attention chunk (attention.wgsl's CH).
const CHUNK: u32 = 128;

/// attn_partial's head dims held and query heads per workgroup for `head_dim` and a GQA
/// group of `group` query heads: 8 heads of up to 128 dims, or 4 of up to 256, fit the
/// kernel's 12 KiB of workgroup memory.
fn attn_kernel(head_dim: u32, group: u32) -> (Kernel, u32) {
    let ahd = head_dim.next_multiple_of(64).next_power_of_two();
    let ag = group.min(if ahd > 128 { 4 } else { 8 });
    (Kernel::AttnPartial { ahd, ag }, ag)
}

pub(super) fn check_span(cache: &KvCache, layer: usize, pos: u32, t: u32) -> Result<(), GpuError> {
    within(
        "attention",
        "layer",
        layer as u64,
        0,
        cache.n_layers().saturating_sub(1) as u64,
    )?;
    let end = u64::from(pos) + u64::from(t);
    if end > u64::from(cache.n_ctx()) {
        return Err(GpuError::ContextFull {
            start: pos,
            end: end.min(u64::from(u32::MAX)) as u32,
            n_ctx: cache.n_ctx(),
        });
    }
    Ok(())
}

/// The span's layer exists and, in a recording for fixed positions, its positions fit the
/// cache (a live recording's position is only known when it is replayed; the model checks).
fn check_target(
    rec: &Recording,
    cache: &KvCache,
    layer: usize,
    pos: u32,
    t: u32,
) -> Result<(), GpuError> {
    if rec.fixed() {
        check_span(cache, layer, pos, t)
    } else {
        cache.layer(layer).map(|_| ())
    }
}

impl Ops {
    /// Stores `k` and `v` (`[t, n_kv_heads, head_dim]`) at positions `pos..pos + t` of `layer`
    /// (plus the step's position in a live recording).
    #[allow(clippy::too_many_arguments)]
    pub fn kv_write(
        &mut self,
        rec: &mut Recording,
        cache: &KvCache,
        layer: usize,
        k: &F32Buffer,
        v: &F32Buffer,
        pos: u32,
        t: u32,
    ) -> Result<(), GpuError> {
        const OP: &str = "kv_write";
        check_target(rec, cache, layer, pos, t)?;
        // One thread per cached word (two values).
        let n = t * cache.n_kv_heads() * cache.head_dim() / 2;
        need(OP, "k rows", n as usize, k.len())?;
        need(OP, "v rows", n as usize, v.len())?;
        if n == 0 {
            return Ok(());
        }
        let (gx, gy) = self.fold(OP, n.div_ceil(256))?;
        let params = AttnParams {
            n_heads: cache.n_kv_heads(),
            n_kv_heads: cache.n_kv_heads(),
            head_dim: cache.head_dim(),
            pos,
            t,
            groups_x: gx,
            n_ctx: cache.n_ctx(),
            ..Default::default()
        };
        let (kc, vc) = cache.layer(layer)?;
        self.push(
            rec,
            key(Kernel::KvWrite),
            &[
                Bind::whole(&k.buffer),
                Bind::whole(&v.buffer),
                Bind::whole(kc),
                Bind::whole(vc),
            ],
            &params,
            [gx, gy, 1],
        );
        Ok(())
    }

    /// `out = softmax(q k^T / sqrt(head_dim)) v` for `t` queries at positions `pos..pos + t`,
    /// each over keys `0..=its position` of `layer` (write the new keys first). `q` and `out`
    /// are `[t, n_heads, head_dim]`; query head h reads kv head h / (n_heads / n_kv_heads).
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        rec: &mut Recording,
        q: &F32Buffer,
        cache: &KvCache,
        layer: usize,
        out: &F32Buffer,
        n_heads: u32,
        pos: u32,
        t: u32,
    ) -> Result<(), GpuError> {
        const OP: &str = "attention";
        check_target(rec, cache, layer, pos, t)?;
        let (hd, n_kv) = (cache.head_dim(), cache.n_kv_heads());
        within(OP, "head_dim", u64::from(hd), 1, u64::from(MAX_HEAD_DIM))?;
        if n_kv == 0 || !n_heads.is_multiple_of(n_kv) || n_heads == 0 {
            return Err(GpuError::NotMultiple {
                op: OP,
                what: "n_heads (by n_kv_heads)",
                value: u64::from(n_heads),
                multiple: u64::from(n_kv),
            });
        }
        let n = (t * n_heads * hd) as usize;
        need(OP, "q", n, q.len())?;
        need(OP, "out", n, out.len())?;
        if t == 0 {
            return Ok(());
        }
        let (kernel, ag) = attn_kernel(hd, n_heads / n_kv);
        let head_groups = n_kv * (n_heads / n_kv).div_ceil(ag);
        self.check_groups(OP, "heads", n_heads.max(head_groups))?;
        self.check_groups(OP, "tokens", t)?;
        // Chunks of CHUNK keys, one workgroup each, so a long context at one token still
        // spreads over many. A live recording runs at any position, so its grid covers the
        // whole context; chunks past a query's keys come out empty.
        let keys = if rec.fixed() { pos + t } else { cache.n_ctx() };
        let chunk = CHUNK;
        let n_chunks = keys.div_ceil(chunk);
        self.check_groups(OP, "key chunks", n_chunks)?;
        let scratch_bytes =
            u64::from(t) * u64::from(n_heads) * u64::from(n_chunks) * u64::from(hd + 2) * 4;
        if scratch_bytes > self.max_binding {
            return Err(GpuError::BindingTooLarge {
                what: format!(
                    "attention scratch for {t} queries x {n_heads} heads x {n_chunks} chunks"
                ),
                bytes: scratch_bytes,
                max_binding: self.max_binding,
            });
        }
        let scratch = match &self.attn_scratch {
            Some(b) if b.size() >= scratch_bytes => b.clone(),
            _ => {
                let b = self.gpu.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("attention scratch"),
                    size: scratch_bytes
                        .next_power_of_two()
                        .min(self.max_binding.max(scratch_bytes)),
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                });
                self.attn_scratch = Some(b.clone());
                b
            }
        };
        let params = AttnParams {
            n_heads,
            n_kv_heads: n_kv,
            head_dim: hd,
            pos,
            t,
            chunk,
            n_chunks,
            scale: 1.0 / (hd as f32).sqrt(),
            groups_x: 0,
            n_ctx: cache.n_ctx(),
            ..Default::default()
        };
        let (kc, vc) = cache.layer(layer)?;
        self.push(
            rec,
            key(kernel),
            &[
                Bind::whole(&q.buffer),
                Bind::whole(kc),
                Bind::whole(vc),
                Bind::whole(&scratch),
            ],
            &params,
            [n_chunks, head_groups, t],
        );
        self.push(
            rec,
            key(Kernel::AttnCombine),
            &[Bind::whole(&scratch), Bind::whole(&out.buffer)],
            &params,
            [n_heads, t, 1],
        );
        Ok(())
    }
}
