//! RMSNorm, the residual add and SwiGLU.

use super::{key, need, Bind, Ops, Recording};
use crate::gpu::buffers::F32Buffer;
use crate::gpu::pipelines::{uniform, Kernel};
use crate::gpu::GpuError;

uniform! {
    /// norm.wgsl's `Params`.
    pub(crate) struct NormParams {
        dim: u32,
        t: u32,
        eps: f32,
        groups_x: u32,
    }
}

uniform! {
    /// elementwise.wgsl's `Params`.
    pub(crate) struct EwParams {
        n: u32,
        groups_x: u32,
        _pad0: u32,
        _pad1: u32,
    }
}

const EWG: u32 = 256;

impl Ops {
    /// `out[t, :] = x[t, :] / rms(x[t, :]) * weight` for `t` rows of `weight.len()` floats.
    pub fn rms_norm(
        &mut self,
        rec: &mut Recording,
        x: &F32Buffer,
        weight: &F32Buffer,
        out: &F32Buffer,
        t: u32,
        eps: f32,
    ) -> Result<(), GpuError> {
        self.norm(rec, Kernel::RmsNorm, x, None, weight, out, t, eps)
    }

    #[allow(clippy::too_many_arguments)]
    fn norm(
        &mut self,
        rec: &mut Recording,
        kernel: Kernel,
        x: &F32Buffer,
        r: Option<&F32Buffer>,
        weight: &F32Buffer,
        out: &F32Buffer,
        t: u32,
        eps: f32,
    ) -> Result<(), GpuError> {
        const OP: &str = "rms_norm";
        let dim = weight.len();
        need(
            OP,
            &format!("x for {t} tokens x {dim}"),
            t as usize * dim,
            x.len(),
        )?;
        need(
            OP,
            &format!("out for {t} tokens x {dim}"),
            t as usize * dim,
            out.len(),
        )?;
        if t == 0 {
            return Ok(());
        }
        let (gx, gy) = self.fold(OP, t)?;
        let params = NormParams {
            dim: dim as u32,
            t,
            eps,
            groups_x: gx,
        };
        let mut bindings = vec![Bind::whole(&x.buffer)];
        bindings.extend(r.map(|r| Bind::whole(&r.buffer)));
        bindings.push(Bind::whole(&weight.buffer));
        bindings.push(Bind::whole(&out.buffer));
        self.push(rec, key(kernel), &bindings, &params, [gx, gy, 1]);
        Ok(())
    }

    /// `x[t, :] += r[t, :]`, then `out[t, :] = x[t, :] / rms(x[t, :]) * weight`: the residual
    /// add fused into the norm that follows it.
    #[allow(clippy::too_many_arguments)]
    pub fn add_rms_norm(
        &mut self,
        rec: &mut Recording,
        x: &F32Buffer,
        r: &F32Buffer,
        weight: &F32Buffer,
        out: &F32Buffer,
        t: u32,
        eps: f32,
    ) -> Result<(), GpuError> {
        const OP: &str = "add_rms_norm";
        let dim = weight.len();
        need(
            OP,
            &format!("r for {t} tokens x {dim}"),
            t as usize * dim,
            r.len(),
        )?;
        self.norm(rec, Kernel::AddRmsNorm, x, Some(r), weight, out, t, eps)
    }

    /// `acc[..n] += b[..n]` (the residual stream).
    pub fn add(
        &mut self,
        rec: &mut Recording,
        acc: &F32Buffer,
        b: &F32Buffer,
        n: usize,
    ) -> Result<(), GpuError> {
        self.elementwise(rec, Kernel::Add, "add", acc, b, n)
    }

    /// `gate[..n] = silu(gate[..n]) * up[..n]` (the MLP's gated activation).
    pub fn swiglu(
        &mut self,
        rec: &mut Recording,
        gate: &F32Buffer,
        up: &F32Buffer,
        n: usize,
    ) -> Result<(), GpuError> {
        self.elementwise(rec, Kernel::SwiGlu, "swiglu", gate, up, n)
    }

    fn elementwise(
        &mut self,
        rec: &mut Recording,
        kernel: Kernel,
        op: &'static str,
        a: &F32Buffer,
        b: &F32Buffer,
        n: usize,
    ) -> Result<(), GpuError> {
        need(op, "first operand", n, a.len())?;
        need(op, "second operand", n, b.len())?;
        if n == 0 {
            return Ok(());
        }
        let n32 = n as u32;
        let (gx, gy) = self.fold(op, n32.div_ceil(EWG))?;
        let params = EwParams {
            n: n32,
            groups_x: gx,
            ..Default::default()
        };
        self.push(
            rec,
            key(kernel),
            &[Bind::whole(&a.buffer), Bind::whole(&b.buffer)],
            &params,
            [gx, gy, 1],
        );
        Ok(())
    }
}
