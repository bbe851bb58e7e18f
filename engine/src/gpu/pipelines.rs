//! Compute pipelines, built on first use and cached by a typed key whose Display is the wgpu
//! label (so a validation error names the kernel, its tensor type and its constants).
//!
//! Every fact a kernel shares with Rust is written once, here or beside its op, and
//! generated into the WGSL: a module's source is a header (`enable f16;` and `alias mt = f16`
//! on the f16 path, `mt = f32` elsewhere; the key's constants; `QK`/`BLOCK_BYTES` and the
//! field regions of a weight type's GPU layout; the family's parameter struct `P` and the step
//! struct `S` from their Rust declarations ([`uniform!`]); one `@binding` per slot of the
//! family's list), then `common.wgsl`, for weight-reading kernels `quant/bytes.wgsl` plus the
//! type's `quant/<type>.wgsl` (and, for the decode mat-vec, its `matvec/<type>.wgsl` chunk
//! file or the generic one), then the family's op file and epilogue. The same slot list builds
//! the bind-group layout and orders the buffers an op binds ([`Kernel::uses`]), so binding
//! numbers appear nowhere else.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use super::quant::{kernel_block, kernel_source, layout_constants, matvec_source};
use crate::gguf::GgmlType;

/// Declares a uniform struct once: the `#[repr(C)]` Rust struct and, as `WGSL`, the same
/// struct in WGSL. Fields are 4-byte scalars (`u32`, `i32`,
/// `f32`), so both sides lay them out alike; the size must be a multiple of 16 (uniform
/// buffer rules), padded with `_padN: u32` fields where needed.
macro_rules! uniform {
    ($(#[$meta:meta])* $vis:vis struct $name:ident {
        $($(#[$fmeta:meta])* $field:ident: $ty:ident),* $(,)?
    }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Default, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// The WGSL declaration: the same struct under the same name.
            pub const WGSL: &'static str = concat!(
                "struct ", stringify!($name), " {\n",
                $("    ", stringify!($field), ": ", stringify!($ty), ",\n",)*
                "}\n"
            );
            pub const NAME: &'static str = stringify!($name);

            /// The bytes a uniform buffer takes (ops bind their params through `Ops::push`;
            /// this is for the step uniform callers write themselves).
            #[allow(dead_code)]
            pub fn as_bytes(&self) -> &[u8] {
                bytemuck::bytes_of(self)
            }
        }

        const _: () = assert!(std::mem::size_of::<$name>() % 16 == 0);
    };
}
pub(crate) use uniform;

uniform! {
    /// What changes from one step to the next, bound to every kernel as `S`: a kernel's
    /// position is `P.pos + S.pos`, so an op recorded for a fixed position (`P.pos`, with a
    /// zero `S`) and a prepared step replayed at every position (`S.pos`) share the kernels.
    pub struct Step {
        pos: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

const COMMON: &str = include_str!("kernels/common.wgsl");
const BYTES: &str = include_str!("kernels/quant/bytes.wgsl");
const MATVEC_COMMON: &str = include_str!("kernels/matvec/common.wgsl");
const GENERIC_MATVEC: &str = include_str!("kernels/matvec/generic.wgsl");

/// How a kernel uses one storage binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    ReadWrite,
}

/// One storage binding of a family: its WGSL name and type. Its binding number is its index
/// in the family's list; the uniform `P` comes after the last slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub name: &'static str,
    pub ty: &'static str,
    pub access: Access,
}

const fn read(name: &'static str, ty: &'static str) -> Slot {
    Slot {
        name,
        ty,
        access: Access::Read,
    }
}

const fn write(name: &'static str, ty: &'static str) -> Slot {
    Slot {
        name,
        ty,
        access: Access::ReadWrite,
    }
}

/// One WGSL file of kernels: its source, its `Params` and its bindings; for the mat-vec
/// families also the epilogue file that stores each workgroup's rows.
#[derive(Debug)]
pub(crate) struct Family {
    source: &'static str,
    epilogue: &'static str,
    /// The parameter struct's (name, WGSL declaration).
    params: (&'static str, &'static str),
    slots: &'static [Slot],
}

impl Family {
    fn slot(&self, name: &str) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as u32)
    }

    fn uniform_binding(&self) -> u32 {
        self.slots.len() as u32
    }

    fn step_binding(&self) -> u32 {
        self.slots.len() as u32 + 1
    }
}

mod families {
    use super::{read, write, Family, Slot};
    use crate::gpu::ops::{AttnParams, EmbedParams, EwParams, MatParams, NormParams};
    use crate::gpu::ops::{RopeParams, SampleParams};

    const MAT_SLOTS: &[Slot] = &[
        read("W", "array<vec4<u32>>"),
        read("X", "array<vec4<f32>>"),
        read("BIAS", "array<f32>"),
        write("Y", "array<f32>"),
    ];

    pub static MATVEC: Family = Family {
        source: include_str!("kernels/matvec.wgsl"),
        epilogue: include_str!("kernels/epilogue/plain.wgsl"),
        params: (MatParams::NAME, MatParams::WGSL),
        slots: MAT_SLOTS,
    };
    pub static MATVEC_SWIGLU: Family = Family {
        source: include_str!("kernels/matvec.wgsl"),
        epilogue: include_str!("kernels/epilogue/swiglu.wgsl"),
        params: (MatParams::NAME, MatParams::WGSL),
        slots: MAT_SLOTS,
    };
    pub static MATVEC_ROPE_KV: Family = Family {
        source: include_str!("kernels/matvec.wgsl"),
        epilogue: include_str!("kernels/epilogue/rope_kv.wgsl"),
        params: (MatParams::NAME, MatParams::WGSL),
        slots: &[
            read("W", "array<vec4<u32>>"),
            read("X", "array<vec4<f32>>"),
            read("BIAS", "array<f32>"),
            write("Q", "array<f32>"),
            // The KV cache: f16 pairs, one u32 word each (common.wgsl's k_word/v_word).
            write("K_DST", "array<u32>"),
            write("V_DST", "array<u32>"),
            // (high, low) 32 bits of each rotated pair's turns per position.
            read("TURNS", "array<vec2<u32>>"),
        ],
    };
    pub static MATMAT: Family = Family {
        source: include_str!("kernels/matmat.wgsl"),
        epilogue: "",
        params: (MatParams::NAME, MatParams::WGSL),
        slots: MAT_SLOTS,
    };
    pub static EMBED: Family = Family {
        source: include_str!("kernels/embed.wgsl"),
        epilogue: "",
        params: (EmbedParams::NAME, EmbedParams::WGSL),
        slots: &[
            read("W", "array<vec4<u32>>"),
            read("IDS", "array<u32>"),
            write("Y", "array<f32>"),
        ],
    };
    pub static NORM: Family = Family {
        source: include_str!("kernels/norm.wgsl"),
        epilogue: "",
        params: (NormParams::NAME, NormParams::WGSL),
        slots: &[
            // Read-write for add_rms_norm, which adds the residual R into X first.
            write("X", "array<f32>"),
            read("R", "array<f32>"),
            read("WT", "array<f32>"),
            write("Y", "array<f32>"),
        ],
    };
    pub static ELEMENTWISE: Family = Family {
        source: include_str!("kernels/elementwise.wgsl"),
        epilogue: "",
        params: (EwParams::NAME, EwParams::WGSL),
        slots: &[write("A", "array<f32>"), read("B", "array<f32>")],
    };
    pub static ROPE: Family = Family {
        source: include_str!("kernels/rope.wgsl"),
        epilogue: "",
        params: (RopeParams::NAME, RopeParams::WGSL),
        slots: &[write("X", "array<f32>"), read("TURNS", "array<vec2<u32>>")],
    };
    pub static ATTENTION: Family = Family {
        source: include_str!("kernels/attention.wgsl"),
        epilogue: "",
        params: (AttnParams::NAME, AttnParams::WGSL),
        slots: &[
            read("Q", "array<f32>"),
            read("KC", "array<u32>"),
            read("VC", "array<u32>"),
            write("PART", "array<f32>"),
            read("PART_IN", "array<f32>"),
            write("OUT", "array<f32>"),
            read("K_NEW", "array<f32>"),
            read("V_NEW", "array<f32>"),
            write("K_DST", "array<u32>"),
            write("V_DST", "array<u32>"),
        ],
    };
    pub static SAMPLE: Family = Family {
        source: include_str!("kernels/sample.wgsl"),
        epilogue: "",
        params: (SampleParams::NAME, SampleParams::WGSL),
        slots: &[
            read("LOGITS", "array<f32>"),
            write("PMAX", "array<f32>"),
            write("PIDX", "array<u32>"),
            read("PMAX_IN", "array<f32>"),
            read("PIDX_IN", "array<u32>"),
            write("OUT", "array<u32>"),
        ],
    };
}

/// How a decode mat-vec stores the rows it computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `y = W x (+ bias)`.
    Plain,
    /// Over a `[gate; up]` weight: `y = silu(W_gate x) * (W_up x)`.
    SwiGlu,
    /// Over a `[q; k; v]` weight: bias, RoPE on q and k, q stored, k and v written into the
    /// KV cache at the step's position.
    RopeKv,
}

/// One kernel with the constants that shape it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Decode mat-vec: `wg` threads in groups of `lanes` sharing rows, `rows` weight rows per
    /// workgroup, and how the rows are stored.
    MatVec {
        ty: GgmlType,
        rows: u32,
        wg: u32,
        lanes: u32,
        epilogue: Epilogue,
    },
    /// Prefill tiled mat-mat: `tile_rows` x `tile_tokens` outputs per workgroup of `wg` threads.
    MatMat {
        ty: GgmlType,
        tile_rows: u32,
        tile_tokens: u32,
        wg: u32,
    },
    Embed {
        ty: GgmlType,
    },
    RmsNorm,
    /// `x += r`, then `y = rms_norm(x) * weight`: the residual add before each norm.
    AddRmsNorm,
    Add,
    SwiGlu,
    Rope,
    KvWrite,
    /// `ahd` head dims held (64, 128 or 256), `ag` query heads per workgroup.
    AttnPartial {
        ahd: u32,
        ag: u32,
    },
    AttnCombine,
    ArgmaxPartial,
    ArgmaxFinal,
    TopPFinal,
}

impl Kernel {
    fn family(self) -> &'static Family {
        match self {
            Self::MatVec { epilogue, .. } => match epilogue {
                Epilogue::Plain => &families::MATVEC,
                Epilogue::SwiGlu => &families::MATVEC_SWIGLU,
                Epilogue::RopeKv => &families::MATVEC_ROPE_KV,
            },
            Self::MatMat { .. } => &families::MATMAT,
            Self::Embed { .. } => &families::EMBED,
            Self::RmsNorm | Self::AddRmsNorm => &families::NORM,
            Self::Add | Self::SwiGlu => &families::ELEMENTWISE,
            Self::Rope => &families::ROPE,
            Self::KvWrite | Self::AttnPartial { .. } | Self::AttnCombine => &families::ATTENTION,
            Self::ArgmaxPartial | Self::ArgmaxFinal | Self::TopPFinal => &families::SAMPLE,
        }
    }

    fn entry_point(self) -> &'static str {
        match self {
            Self::MatVec { .. } | Self::MatMat { .. } | Self::Embed { .. } => "main",
            Self::RmsNorm => "rms_norm",
            Self::AddRmsNorm => "add_rms_norm",
            Self::Add => "add",
            Self::SwiGlu => "swiglu",
            Self::Rope => "rope",
            Self::KvWrite => "kv_write",
            Self::AttnPartial { .. } => "attn_partial",
            Self::AttnCombine => "attn_combine",
            Self::ArgmaxPartial => "argmax_partial",
            Self::ArgmaxFinal => "argmax_final",
            Self::TopPFinal => "top_p_final",
        }
    }

    /// The family slots this entry point reads or writes, in the order an op passes their
    /// buffers. Layouts are explicit (not derived from the shader) so the uniform can take a
    /// dynamic offset and bind groups survive across steps.
    pub(crate) fn uses(self) -> &'static [&'static str] {
        match self {
            Self::MatVec {
                epilogue: Epilogue::RopeKv,
                ..
            } => &["W", "X", "BIAS", "Q", "K_DST", "V_DST", "TURNS"],
            Self::MatVec { .. } | Self::MatMat { .. } => &["W", "X", "BIAS", "Y"],
            Self::Embed { .. } => &["W", "IDS", "Y"],
            Self::RmsNorm => &["X", "WT", "Y"],
            Self::AddRmsNorm => &["X", "R", "WT", "Y"],
            Self::Add | Self::SwiGlu => &["A", "B"],
            Self::Rope => &["X", "TURNS"],
            Self::KvWrite => &["K_NEW", "V_NEW", "K_DST", "V_DST"],
            Self::AttnPartial { .. } => &["Q", "KC", "VC", "PART"],
            Self::AttnCombine => &["PART_IN", "OUT"],
            Self::ArgmaxPartial => &["LOGITS", "PMAX", "PIDX"],
            Self::ArgmaxFinal => &["PMAX_IN", "PIDX_IN", "OUT"],
            Self::TopPFinal => &["LOGITS", "PMAX_IN", "PIDX_IN", "OUT"],
        }
    }

    fn weight_type(self) -> Option<GgmlType> {
        match self {
            Self::MatVec { ty, .. } | Self::MatMat { ty, .. } | Self::Embed { ty } => Some(ty),
            _ => None,
        }
    }

    fn constants(self) -> Vec<(&'static str, u32)> {
        match self {
            Self::MatVec {
                rows, wg, lanes, ..
            } => vec![("WG", wg), ("LANES", lanes), ("ROWS", rows)],
            Self::MatMat {
                tile_rows,
                tile_tokens,
                wg,
                ..
            } => {
                vec![("WG", wg), ("TN", tile_rows), ("TM", tile_tokens)]
            }
            Self::AttnPartial { ahd, ag } => vec![("AHD", ahd), ("AG", ag)],
            // attention.wgsl sizes attn_partial's workgroup arrays for every entry point.
            Self::KvWrite | Self::AttnCombine => vec![("AHD", 64), ("AG", 1)],
            _ => Vec::new(),
        }
    }
}

/// A pipeline's identity: the kernel and whether the module is compiled for shader-f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub kernel: Kernel,
    /// `enable f16;` and an f16 KV cache type.
    pub f16: bool,
}

impl fmt::Display for PipelineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.kernel;
        f.write_str(match k {
            Kernel::MatVec {
                epilogue: Epilogue::SwiGlu,
                ..
            } => "matvec_swiglu",
            Kernel::MatVec {
                epilogue: Epilogue::RopeKv,
                ..
            } => "matvec_rope_kv",
            Kernel::MatVec { .. } => "matvec",
            Kernel::MatMat { .. } => "matmat",
            Kernel::Embed { .. } => "embed",
            _ => k.entry_point(),
        })?;
        if let Some(ty) = k.weight_type() {
            write!(f, ".{}", ty.name().to_lowercase())?;
        }
        for (name, value) in k.constants() {
            write!(f, ".{}{value}", name.to_lowercase())?;
        }
        f.write_str(if self.f16 { ".f16" } else { ".f32" })
    }
}

impl PipelineKey {
    /// The full WGSL source of this pipeline's module. A weight kernel's type must have a
    /// kernel (`quant::has_kernel`); `WeightTensor` refuses any other, so this never sees one.
    pub fn source(&self) -> String {
        let k = self.kernel;
        let family = k.family();
        let mut s = String::new();
        if self.f16 {
            s.push_str("enable f16;\nalias mt = f16;\nconst F16: bool = true;\n");
        } else {
            s.push_str("alias mt = f32;\nconst F16: bool = false;\n");
        }
        for (name, value) in k.constants() {
            let _ = writeln!(s, "const {name}: u32 = {value}u;");
        }
        let quant = k.weight_type().map(|ty| {
            let (qk, bytes) = kernel_block(ty);
            let _ = writeln!(
                s,
                "const QK: u32 = {qk}u;\nconst BLOCK_BYTES: u32 = {bytes}u;"
            );
            s.push_str(&layout_constants(ty));
            kernel_source(ty).unwrap_or("")
        });
        s.push_str(family.params.1);
        s.push_str(Step::WGSL);
        for (i, slot) in family.slots.iter().enumerate() {
            let access = match slot.access {
                Access::Read => "read",
                Access::ReadWrite => "read_write",
            };
            let _ = writeln!(
                s,
                "@group(0) @binding({i}) var<storage, {access}> {}: {};",
                slot.name, slot.ty
            );
        }
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<uniform> P: {};\n@group(0) @binding({}) var<uniform> S: {};",
            family.uniform_binding(),
            family.params.0,
            family.step_binding(),
            Step::NAME,
        );
        s.push_str(COMMON);
        if let Some(quant) = quant {
            s.push_str(BYTES);
            s.push_str(quant);
        }
        if let Kernel::MatVec { ty, .. } = k {
            match matvec_source(ty) {
                Some(chunks) => {
                    s.push_str(MATVEC_COMMON);
                    s.push_str(chunks);
                }
                None => s.push_str(GENERIC_MATVEC),
            }
        }
        s.push_str(family.source);
        s.push_str(family.epilogue);
        s
    }
}

/// A compiled pipeline, its bind group layout and the binding numbers of its buffers.
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub label: String,
    /// Binding numbers of [`Kernel::uses`], in order.
    pub bindings: Vec<u32>,
    pub uniform_binding: u32,
    pub step_binding: u32,
}

#[derive(Debug, Default)]
pub(crate) struct PipelineCache {
    map: HashMap<PipelineKey, Pipeline>,
}

impl PipelineCache {
    pub fn get(&mut self, device: &wgpu::Device, key: PipelineKey) -> Pipeline {
        self.map
            .entry(key)
            .or_insert_with(|| Self::build(device, key))
            .clone()
    }

    fn build(device: &wgpu::Device, key: PipelineKey) -> Pipeline {
        let label = key.to_string();
        let family = key.kernel.family();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(key.source().into()),
        });
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut bindings = Vec::new();
        let mut entries = Vec::new();
        for name in key.kernel.uses() {
            // Every name in `uses` is a slot of its family (a unit test walks them all).
            let index = family.slot(name).unwrap_or(u32::MAX);
            let read_only = family
                .slots
                .get(index as usize)
                .is_some_and(|s| s.access == Access::Read);
            bindings.push(index);
            entries.push(storage(index, read_only));
        }
        let uniform_binding = family.uniform_binding();
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: uniform_binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            count: None,
        });
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: family.step_binding(),
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(&label),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(key.kernel.entry_point()),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        Pipeline {
            pipeline,
            layout,
            label,
            bindings,
            uniform_binding,
            step_binding: family.step_binding(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Kernel; 16] = [
        Kernel::MatVec {
            ty: GgmlType::Q4K,
            rows: 4,
            wg: 64,
            lanes: 64,
            epilogue: Epilogue::Plain,
        },
        Kernel::MatVec {
            ty: GgmlType::Q4K,
            rows: 4,
            wg: 64,
            lanes: 64,
            epilogue: Epilogue::SwiGlu,
        },
        Kernel::MatVec {
            ty: GgmlType::Q6K,
            rows: 32,
            wg: 32,
            lanes: 1,
            epilogue: Epilogue::RopeKv,
        },
        Kernel::MatMat {
            ty: GgmlType::Q8_0,
            tile_rows: 64,
            tile_tokens: 32,
            wg: 128,
        },
        Kernel::Embed { ty: GgmlType::F16 },
        Kernel::RmsNorm,
        Kernel::AddRmsNorm,
        Kernel::Add,
        Kernel::SwiGlu,
        Kernel::Rope,
        Kernel::KvWrite,
        Kernel::AttnPartial { ahd: 128, ag: 7 },
        Kernel::AttnCombine,
        Kernel::ArgmaxPartial,
        Kernel::ArgmaxFinal,
        Kernel::TopPFinal,
    ];

    #[test]
    fn every_used_binding_is_a_slot_of_its_family() {
        for k in ALL {
            for name in k.uses() {
                assert!(k.family().slot(name).is_some(), "{k:?} uses {name}");
            }
        }
    }

    #[test]
    fn the_header_declares_params_bindings_and_block_constants() {
        let key = PipelineKey {
            kernel: ALL[0],
            f16: false,
        };
        let src = key.source();
        assert!(src.contains("const QK: u32 = 256u;\nconst BLOCK_BYTES: u32 = 144u;"));
        assert!(src.contains("struct MatParams {\n    k: u32,"));
        assert!(src.contains("@group(0) @binding(0) var<storage, read> W: array<vec4<u32>>;"));
        assert!(src.contains("@group(0) @binding(3) var<storage, read_write> Y: array<f32>;"));
        assert!(src.contains("@group(0) @binding(4) var<uniform> P: MatParams;"));
        assert!(src.contains("@group(0) @binding(5) var<uniform> S: Step;"));
        assert_eq!(key.to_string(), "matvec.q4_k.wg64.lanes64.rows4.f32");
    }
}
