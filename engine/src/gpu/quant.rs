//! What the GPU adds to the type table (`gguf::GgmlType`): which WGSL file decodes a type.
//! Ids, names and block layouts are the table's; each `quant/<type>.wgsl` implements the
//! `dequant16` contract (see `kernels/quant/bytes.wgsl`), and the pipeline header gives it
//! `QK` and `BLOCK_BYTES` from [`kernel_block`].

use crate::gguf::GgmlType;

/// The WGSL file implementing `dequant16` for `ty`, or `None` where no kernel reads it.
/// Exhaustive on purpose: a type added to the table must be decided on here.
pub(crate) fn kernel_source(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::F32 => include_str!("kernels/quant/f32.wgsl"),
        GgmlType::F16 => include_str!("kernels/quant/f16.wgsl"),
        GgmlType::BF16 => include_str!("kernels/quant/bf16.wgsl"),
        GgmlType::Q4_0 => include_str!("kernels/quant/q4_0.wgsl"),
        GgmlType::Q4_1 => include_str!("kernels/quant/q4_1.wgsl"),
        GgmlType::Q5_0 => include_str!("kernels/quant/q5_0.wgsl"),
        GgmlType::Q5_1 => include_str!("kernels/quant/q5_1.wgsl"),
        GgmlType::Q8_0 => include_str!("kernels/quant/q8_0.wgsl"),
        GgmlType::Q4K => include_str!("kernels/quant/q4_k.wgsl"),
        GgmlType::Q5K => include_str!("kernels/quant/q5_k.wgsl"),
        GgmlType::Q6K => include_str!("kernels/quant/q6_k.wgsl"),
        // Q2_K and Q3_K have no kernel yet; Q8_1 and Q8_K are activation types.
        GgmlType::Q8_1 | GgmlType::Q2K | GgmlType::Q3K | GgmlType::Q8K => return None,
    })
}

/// Whether the GPU kernels read weights of type `ty`.
pub fn has_kernel(ty: GgmlType) -> bool {
    kernel_source(ty).is_some()
}

/// The types the GPU kernels read, in table order.
pub fn kernel_types() -> impl Iterator<Item = GgmlType> {
    GgmlType::ALL.iter().copied().filter(|&t| has_kernel(t))
}

/// "F32 F16 ... Q6_K": for messages.
pub(crate) fn kernel_type_names() -> String {
    kernel_types()
        .map(GgmlType::name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Elements and bytes of one block as the kernels step through a row: ggml's block for the
/// quantized types, a 16-element group for the float types, so that every type decodes in
/// 16-element parts.
pub(crate) fn kernel_block(ty: GgmlType) -> (u32, u32) {
    let elems = ty.block_size().max(16);
    let bytes = elems / ty.block_size() * ty.type_size();
    (elems as u32, bytes as u32)
}
