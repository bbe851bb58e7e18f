//! y[T, N] = x[T, K] @ W^T (+ bias) for a GGUF weight W [N, K], and the embedding lookup.

use super::{key, need, Bind, Epilogue, Ops, Recording, RopeFreqs, RopeMode};
use crate::gpu::buffers::{F32Buffer, U32Buffer, WeightTensor};
use crate::gpu::kv::KvCache;
use crate::gpu::pipelines::{uniform, Kernel, PipelineKey};
use crate::gpu::{GpuBuffer, GpuError};

uniform! {
    /// The parameters of matvec.wgsl (with its epilogues) and matmat.wgsl.
    pub(crate) struct MatParams {
        /// Elements per row.
        k: u32,
        /// Rows this dispatch covers.
        rows: u32,
        /// The dispatch's first row within the bound weight part.
        w_row: u32,
        /// Its bias index (the row within the whole tensor).
        b_row: u32,
        /// Its output index.
        y_row: u32,
        /// The stride of y between tokens.
        n_out: u32,
        /// Blocks in the bound weight part (its rows times the blocks of a row): where each
        /// region of a split layout starts.
        pb: u32,
        has_bias: u32,
        groups_x: u32,
        /// Tokens (the mat-mat path).
        t: u32,
        /// The row of X the mat-vec reads (the last token's, for the LM head).
        x_row: u32,
        /// The rope_kv epilogue's layout: rows of q, then of k, then v to `rows`.
        q_rows: u32,
        k_rows: u32,
        /// Values per KV-cache position (n_kv_heads * head_dim).
        kv_width: u32,
        head_dim: u32,
        n_rot: u32,
        neox: u32,
        /// Position offset, added to the step's.
        pos: u32,
        /// Positions the KV cache holds (its K rows' stride).
        n_ctx: u32,
        _pad0: u32,
    }
}

uniform! {
    /// embed.wgsl's `Params`.
    pub(crate) struct EmbedParams {
        dim: u32,
        rows: u32,
        row_base: u32,
        /// Blocks in the bound part.
        pb: u32,
        t: u32,
        groups_x: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

/// Mat-mat tile: 64 rows by 16, 32 or 64 tokens, a 4 x 4 register tile per thread (64, 128 or
/// 256 threads). The token tile is the batch rounded up to 16 or 32 for short batches (less
/// work on padding) and 64 for longer ones, so each dequantized weight tile serves 64 tokens;
/// 64 x 64 with K steps of 32 fills the 16 KiB of workgroup memory WebGPU guarantees.
const TILE_ROWS: u32 = 64;

fn matmat_kernel(ty: crate::gguf::GgmlType, t: u32) -> Kernel {
    let tile_tokens = match t {
        0..=16 => 16,
        17..=32 => 32,
        _ => 64,
    };
    Kernel::MatMat {
        ty,
        tile_rows: TILE_ROWS,
        tile_tokens,
        wg: TILE_ROWS * tile_tokens / 16,
    }
}

/// Elements one mat-vec thread takes per step (one chunk, `kernels/matvec.wgsl`).
fn chunk_elems(ty: crate::gguf::GgmlType) -> u32 {
    use crate::gguf::GgmlType as T;
    match ty {
        T::Q6K => 64,
        T::Q4_0 | T::Q4_1 | T::Q5_0 | T::Q5_1 | T::Q8_0 | T::Q4K | T::Q5K => 32,
        _ => 16,
    }
}

/// Where a fused `[q; k; v]` weight's rows go (see [`Ops::matvec_rope_kv`]).
#[derive(Debug, Clone, Copy)]
pub struct QkvLayout {
    pub q_rows: u32,
    pub k_rows: u32,
    pub head_dim: u32,
    pub mode: RopeMode,
}

/// The fused kernels read one binding: a weight split into parts cannot take them.
fn single_part(op: &'static str, w: &WeightTensor) -> Result<(), GpuError> {
    if w.n_parts() != 1 {
        return Err(GpuError::BindingTooLarge {
            what: format!("{op} over {} ({} parts)", w.name(), w.n_parts()),
            bytes: w.byte_len(),
            max_binding: w.parts.first().map_or(0, |p| p.buffer.size()),
        });
    }
    Ok(())
}

/// One mat-vec or mat-mat over rows `first..first + rows` of `w`.
struct MatJob<'a> {
    w: &'a WeightTensor,
    first: u32,
    rows: u32,
    x: &'a F32Buffer,
    x_row: u32,
    bias: Option<&'a F32Buffer>,
    t: u32,
    kernel: Kernel,
    rows_per_group: u32,
}

impl Ops {
    /// `y[t, :] = W x[t, :] (+ bias)` for `t` tokens. One token runs the mat-vec kernel, more
    /// run the tiled mat-mat; a weight split into parts is dispatched once per part.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &mut self,
        rec: &mut Recording,
        x: &F32Buffer,
        w: &WeightTensor,
        bias: Option<&F32Buffer>,
        y: &F32Buffer,
        t: u32,
    ) -> Result<(), GpuError> {
        self.matmul_rows(rec, x, w, 0..w.rows(), bias, y, t)
    }

    /// As [`Self::matmul`] over rows `rows` of `w` (one tensor of a fused weight): `y[t, i]`
    /// is row `rows.start + i`; the bias is indexed by the row within `w`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_rows(
        &mut self,
        rec: &mut Recording,
        x: &F32Buffer,
        w: &WeightTensor,
        rows: std::ops::Range<u32>,
        bias: Option<&F32Buffer>,
        y: &F32Buffer,
        t: u32,
    ) -> Result<(), GpuError> {
        const OP: &str = "matmul";
        super::within(OP, "tokens", u64::from(t), 1, u64::from(u32::MAX))?;
        super::within(OP, "last row", u64::from(rows.end), 1, u64::from(w.rows()))?;
        let n = rows.end.saturating_sub(rows.start);
        let k = w.cols();
        let (tu, nu, ku) = (t as usize, n as usize, k as usize);
        need(OP, &format!("x for {t} tokens x {k}"), tu * ku, x.len())?;
        need(OP, &format!("y for {t} tokens x {n}"), tu * nu, y.len())?;
        if let Some(b) = bias {
            need(
                OP,
                &format!("bias of {}", w.name()),
                w.rows() as usize,
                b.len(),
            )?;
        }
        let ty = w.ty();
        let (kernel, rows_per_group) = if t == 1 {
            self.matvec_kernel(ty, k, n, Epilogue::Plain)
        } else {
            (matmat_kernel(ty, t), TILE_ROWS)
        };
        let job = MatJob {
            w,
            first: rows.start,
            rows: n,
            x,
            x_row: 0,
            bias,
            t,
            kernel,
            rows_per_group,
        };
        self.mat(rec, OP, &job, &[&y.buffer], MatParams::default())
    }

    /// `y = W x[x_row, :]` for the one token in row `x_row` of `x` (the LM head over the last
    /// position of a batch).
    pub fn matvec_row(
        &mut self,
        rec: &mut Recording,
        x: &F32Buffer,
        x_row: u32,
        w: &WeightTensor,
        y: &F32Buffer,
    ) -> Result<(), GpuError> {
        const OP: &str = "matvec_row";
        let k = w.cols();
        need(
            OP,
            &format!("x with row {x_row} of {k}"),
            (x_row as usize + 1) * k as usize,
            x.len(),
        )?;
        need(OP, "y", w.rows() as usize, y.len())?;
        let (kernel, rows_per_group) = self.matvec_kernel(w.ty(), k, w.rows(), Epilogue::Plain);
        let job = MatJob {
            w,
            first: 0,
            rows: w.rows(),
            x,
            x_row,
            bias: None,
            t: 1,
            kernel,
            rows_per_group,
        };
        self.mat(rec, OP, &job, &[&y.buffer], MatParams::default())
    }

    /// `y[j] = silu(gate_j . x) * (up_j . x)` for one token, over a fused `[gate; up]` weight
    /// of `2n` rows in one part: the gated MLP activation without gate or up in memory.
    pub fn matvec_swiglu(
        &mut self,
        rec: &mut Recording,
        x: &F32Buffer,
        w: &WeightTensor,
        y: &F32Buffer,
    ) -> Result<(), GpuError> {
        const OP: &str = "matvec_swiglu";
        single_part(OP, w)?;
        if !w.rows().is_multiple_of(2) {
            return Err(GpuError::NotMultiple {
                op: OP,
                what: "rows of [gate; up]",
                value: u64::from(w.rows()),
                multiple: 2,
            });
        }
        need(OP, "x", w.cols() as usize, x.len())?;
        need(OP, "y", w.rows() as usize / 2, y.len())?;
        // Each workgroup reads rows / 2 gate rows and as many up rows.
        let (kernel, rows_per_group) =
            self.matvec_kernel(w.ty(), w.cols(), w.rows(), Epilogue::SwiGlu);
        let job = MatJob {
            w,
            first: 0,
            rows: w.rows(),
            x,
            x_row: 0,
            bias: None,
            t: 1,
            kernel,
            rows_per_group,
        };
        self.mat(rec, OP, &job, &[&y.buffer], MatParams::default())
    }

    /// For one token at position `pos` (plus the step's): `W x + bias` over a fused weight of
    /// `layout.q_rows` q rows, `layout.k_rows` k rows and v rows to the end, in one part; q and
    /// k rotated (RoPE with `freqs`), q stored in `q`, k and v written into layer `layer` of
    /// the KV cache at the position. Either q, k or v may have no rows (a v of another type
    /// runs alone with `q_rows = k_rows = 0`).
    #[allow(clippy::too_many_arguments)]
    pub fn matvec_rope_kv(
        &mut self,
        rec: &mut Recording,
        x: &F32Buffer,
        w: &WeightTensor,
        bias: Option<&F32Buffer>,
        layout: QkvLayout,
        freqs: &RopeFreqs,
        q: &F32Buffer,
        cache: &KvCache,
        layer: usize,
        pos: u32,
    ) -> Result<(), GpuError> {
        const OP: &str = "matvec_rope_kv";
        single_part(OP, w)?;
        let hd = layout.head_dim;
        let kv_width = cache.n_kv_heads() * cache.head_dim();
        let whole_heads = |what: &'static str, rows: u32| {
            if hd == 0 || !rows.is_multiple_of(hd) {
                return Err(GpuError::NotMultiple {
                    op: OP,
                    what,
                    value: u64::from(rows),
                    multiple: u64::from(hd),
                });
            }
            Ok(())
        };
        whole_heads("q rows", layout.q_rows)?;
        whole_heads("k rows", layout.k_rows)?;
        whole_heads("rows", w.rows())?;
        super::within(
            OP,
            "head_dim",
            u64::from(hd),
            2,
            u64::from(cache.head_dim()),
        )?;
        // Each thread of the epilogue stores two consecutive rotation pairs as two cache
        // words: a head holds whole pairs of pairs, and so does NEOX's rotated half.
        if hd != cache.head_dim() || !hd.is_multiple_of(4) {
            return Err(GpuError::Shape {
                op: OP,
                what: "head_dim (the cache's, a multiple of 4)".to_string(),
                expected: u64::from(cache.head_dim()),
                got: u64::from(hd),
            });
        }
        let v_rows = w.rows() - layout.q_rows.min(w.rows()) - layout.k_rows;
        for (what, rows) in [("k rows", layout.k_rows), ("v rows", v_rows)] {
            if rows != 0 && rows != kv_width {
                return Err(GpuError::Shape {
                    op: OP,
                    what: what.to_string(),
                    expected: u64::from(kv_width),
                    got: u64::from(rows),
                });
            }
        }
        super::within(OP, "n_rot", u64::from(freqs.n_rot()), 2, u64::from(hd))?;
        if layout.mode == RopeMode::Neox && !freqs.n_rot().is_multiple_of(4) {
            return Err(GpuError::NotMultiple {
                op: OP,
                what: "n_rot (NEOX)",
                value: u64::from(freqs.n_rot()),
                multiple: 4,
            });
        }
        if rec.fixed() {
            super::attention::check_span(cache, layer, pos, 1)?;
        }
        need(OP, "x", w.cols() as usize, x.len())?;
        need(OP, "q", layout.q_rows as usize, q.len())?;
        if let Some(b) = bias {
            need(
                OP,
                &format!("bias of {}", w.name()),
                w.rows() as usize,
                b.len(),
            )?;
        }
        let (kernel, rows_per_group) =
            self.matvec_kernel(w.ty(), w.cols(), w.rows(), Epilogue::RopeKv);
        let job = MatJob {
            w,
            first: 0,
            rows: w.rows(),
            x,
            x_row: 0,
            bias,
            t: 1,
            kernel,
            rows_per_group,
        };
        let (kc, vc) = cache.layer(layer)?;
        let extra = MatParams {
            q_rows: layout.q_rows,
            k_rows: layout.k_rows,
            kv_width,
            head_dim: hd,
            n_rot: freqs.n_rot(),
            neox: u32::from(layout.mode == RopeMode::Neox),
            pos,
            n_ctx: cache.n_ctx(),
            ..MatParams::default()
        };
        let turns = freqs.turns();
        self.mat(rec, OP, &job, &[&q.buffer, kc, vc, turns], extra)
    }

    /// The decode mat-vec for `n` rows of `k` elements of type `ty` and its rows per
    /// workgroup (see [`Tuning`] for how the shape is chosen).
    fn matvec_kernel(
        &self,
        ty: crate::gguf::GgmlType,
        k: u32,
        n: u32,
        epilogue: Epilogue,
    ) -> (Kernel, u32) {
        let chunks = k.div_ceil(chunk_elems(ty)).max(1);
        let (wg, lanes, rows) = self.tuning.matvec_shape(chunks, n);
        // Every group of lanes reads as many rows; the rope_kv epilogue stores two
        // consecutive rotation pairs per thread, the SwiGLU one a gate row and its up row.
        let multiple = match epilogue {
            Epilogue::RopeKv => 4,
            Epilogue::SwiGlu => 2,
            Epilogue::Plain => 1,
        };
        // The reduction's workgroup memory: rows x lanes f32 within 16 KiB.
        let rows = rows
            .next_multiple_of(multiple.max(wg / lanes))
            .min(4096 / lanes);
        let kernel = Kernel::MatVec {
            ty,
            rows,
            wg,
            lanes,
            epilogue,
        };
        (kernel, rows)
    }

    /// Dispatches `job` once per weight part it touches; `outputs` are the bindings after W,
    /// X and BIAS; `extra` carries the epilogue's fields.
    fn mat(
        &mut self,
        rec: &mut Recording,
        op: &'static str,
        job: &MatJob<'_>,
        outputs: &[&GpuBuffer],
        extra: MatParams,
    ) -> Result<(), GpuError> {
        let w = job.w;
        let token_groups = match job.kernel {
            Kernel::MatMat { tile_tokens, .. } => job.t.div_ceil(tile_tokens),
            _ => 1,
        };
        self.check_groups(op, "token tiles", token_groups)?;
        let bias_buffer = job.bias.map_or(&self.empty, |b| &b.buffer).clone();
        let end = job.first + job.rows;
        for part in &w.parts {
            let part_end = part.first_row + part.rows;
            let (lo, hi) = (job.first.max(part.first_row), end.min(part_end));
            if lo >= hi {
                continue;
            }
            let rows = hi - lo;
            let (gx, gy) = self.fold(op, rows.div_ceil(job.rows_per_group))?;
            let params = MatParams {
                k: w.cols(),
                rows,
                w_row: lo - part.first_row,
                b_row: lo,
                y_row: lo - job.first,
                n_out: job.rows,
                pb: part.rows * w.blocks_per_row() as u32,
                has_bias: u32::from(job.bias.is_some()),
                groups_x: gx,
                t: job.t,
                x_row: job.x_row,
                ..extra
            };
            // The mat-vec reads x as vec4: bind whole vec4s only.
            let x_bytes = job.x.buffer.size() & !15;
            let mut bindings = vec![
                Bind::whole(&part.buffer),
                Bind::prefix(&job.x.buffer, x_bytes),
                Bind::whole(&bias_buffer),
            ];
            bindings.extend(outputs.iter().map(|b| Bind::whole(b)));
            let key = PipelineKey {
                kernel: job.kernel,
                f16: self.f16_math && matches!(job.kernel, Kernel::MatVec { .. }),
            };
            self.push(rec, key, &bindings, &params, [gx, gy, token_groups]);
        }
        Ok(())
    }

    /// `out[t, :] = table[ids[t], :]` dequantized, for `t` tokens. Ids are trusted to be
    /// below the table's rows (the tokenizer's vocabulary); others leave their row untouched.
    pub fn embed(
        &mut self,
        rec: &mut Recording,
        table: &WeightTensor,
        ids: &U32Buffer,
        out: &F32Buffer,
        t: u32,
    ) -> Result<(), GpuError> {
        const OP: &str = "embed";
        let dim = table.cols();
        need(OP, "token ids", t as usize, ids.len())?;
        need(
            OP,
            &format!("output for {t} tokens x {dim}"),
            t as usize * dim as usize,
            out.len(),
        )?;
        if t == 0 {
            return Ok(());
        }
        let (gx, gy) = self.fold(OP, t)?;
        for part in &table.parts {
            let params = EmbedParams {
                dim,
                rows: part.rows,
                row_base: part.first_row,
                pb: part.rows * table.blocks_per_row() as u32,
                t,
                groups_x: gx,
                ..Default::default()
            };
            self.push(
                rec,
                key(Kernel::Embed { ty: table.ty() }),
                &[
                    Bind::whole(&part.buffer),
                    Bind::whole(&ids.buffer),
                    Bind::whole(&out.buffer),
                ],
                &params,
                [gx, gy, 1],
            );
        }
        Ok(())
    }
}
