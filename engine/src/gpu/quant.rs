//! What the GPU adds to the type table (`gguf::GgmlType`): which WGSL file decodes a type,
//! and how its blocks are laid out in GPU memory.
//!
//! Ids, names and block sizes are the table's. Each `quant/<type>.wgsl` implements the
//! `dequant16` contract (see `kernels/quant/bytes.wgsl`); the types with a dedicated decode
//! mat-vec also implement the chunk contract of `kernels/matvec.wgsl`. The pipeline header
//! gives them `QK`/`BLOCK_BYTES` ([`kernel_block`]) and their field offsets ([`layout`]).
//!
//! Layouts: a kernel reads whole aligned 16-byte lines, so a type whose blocks are not a
//! multiple of 16 bytes (Q6_K's 210, Q8_0's 34, Q4_0's 18, ...) is repacked as it streams in:
//! each field of every block of a weight part goes into its own region of the part, in block
//! order ([`Layout::Fields`]). The bytes are the file's, moved; a part grows only by the padding
//! that rounds it to 16 bytes. Q4_K and Q5_K blocks (144 and 176 bytes) and the float types
//! stay as they are in the file ([`Layout::Blocks`]).

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

/// The chunk file of `ty`'s dedicated decode mat-vec (`kernels/matvec.wgsl`), or `None`
/// where the generic one over `dequant16` serves (the float types).
pub(crate) fn matvec_source(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::Q4_0 => include_str!("kernels/matvec/q4_0.wgsl"),
        GgmlType::Q4_1 => include_str!("kernels/matvec/q4_1.wgsl"),
        GgmlType::Q5_0 => include_str!("kernels/matvec/q5_0.wgsl"),
        GgmlType::Q5_1 => include_str!("kernels/matvec/q5_1.wgsl"),
        GgmlType::Q8_0 => include_str!("kernels/matvec/q8_0.wgsl"),
        GgmlType::Q4K => include_str!("kernels/matvec/q4_k.wgsl"),
        GgmlType::Q5K => include_str!("kernels/matvec/q5_k.wgsl"),
        GgmlType::Q6K => include_str!("kernels/matvec/q6_k.wgsl"),
        _ => return None,
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

/// One field of a ggml block: its WGSL name, byte offset in the block and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub name: &'static str,
    pub at: u32,
    pub len: u32,
}

const fn field(name: &'static str, at: u32, len: u32) -> Field {
    Field { name, at, len }
}

/// How a type's blocks sit in a GPU weight part (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The file's blocks, back to back: block `g` of a part at byte `g * BLOCK_BYTES`.
    Blocks,
    /// Field `f` of block `g` of a part of `pb` blocks at byte
    /// `pb * (sum of the lengths before f) + g * len_f`. Regions are listed in memory order:
    /// the 16-byte quant fields first, so every region starts 4-byte aligned and every quant
    /// line 16-byte aligned.
    Fields(&'static [Field]),
}

/// The GPU layout of `ty`.
pub(crate) fn layout(ty: GgmlType) -> Layout {
    const Q4_0: &[Field] = &[field("QS", 2, 16), field("D", 0, 2)];
    const Q4_1: &[Field] = &[field("QS", 4, 16), field("DM", 0, 4)];
    const Q5_0: &[Field] = &[field("QS", 6, 16), field("QH", 2, 4), field("D", 0, 2)];
    const Q5_1: &[Field] = &[field("QS", 8, 16), field("QH", 4, 4), field("DM", 0, 4)];
    const Q8_0: &[Field] = &[field("QS", 2, 32), field("D", 0, 2)];
    const Q6_K: &[Field] = &[
        field("QL", 0, 128),
        field("QH", 128, 64),
        field("SC", 192, 16),
        field("D", 208, 2),
    ];
    match ty {
        GgmlType::Q4_0 => Layout::Fields(Q4_0),
        GgmlType::Q4_1 => Layout::Fields(Q4_1),
        GgmlType::Q5_0 => Layout::Fields(Q5_0),
        GgmlType::Q5_1 => Layout::Fields(Q5_1),
        GgmlType::Q8_0 => Layout::Fields(Q8_0),
        GgmlType::Q6K => Layout::Fields(Q6_K),
        _ => Layout::Blocks,
    }
}

/// The WGSL constants of `ty`'s layout: for each field `NAME_AT` (its region starts at byte
/// `pb * NAME_AT` of a part of `pb` blocks) and `NAME_LEN`.
pub(crate) fn layout_constants(ty: GgmlType) -> String {
    let mut s = String::new();
    if let Layout::Fields(fields) = layout(ty) {
        let mut at = 0;
        for f in fields {
            s.push_str(&format!(
                "const {n}_AT: u32 = {at}u;\nconst {n}_LEN: u32 = {len}u;\n",
                n = f.name,
                len = f.len
            ));
            at += f.len;
        }
    }
    s
}

/// GPU bytes of a part of `blocks` blocks of `ty` (kernel blocks, see [`kernel_block`]):
/// the file's bytes rounded up to whole 16-byte lines.
pub(crate) fn part_bytes(ty: GgmlType, blocks: u64) -> u64 {
    let (_, bytes) = kernel_block(ty);
    (blocks * u64::from(bytes)).max(16).next_multiple_of(16)
}

/// Writes blocks `first..first + n` of a part of `pb` blocks, given in the file's order in
/// `src` (`n` whole blocks), as the byte ranges of the part they occupy: `(offset, bytes)`
/// per region, in region order. A caller writes each range at its offset.
pub(crate) fn repack(ty: GgmlType, pb: u64, first: u64, src: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let (_, block) = kernel_block(ty);
    let block = block as usize;
    match layout(ty) {
        Layout::Blocks => vec![(first * block as u64, src.to_vec())],
        Layout::Fields(fields) => {
            let n = src.len() / block;
            let mut at = 0u64;
            fields
                .iter()
                .map(|f| {
                    let (o, len) = (f.at as usize, f.len as usize);
                    let mut out = Vec::with_capacity(n * len);
                    for b in src.chunks_exact(block) {
                        out.extend_from_slice(&b[o..o + len]);
                    }
                    let offset = pb * at + first * u64::from(f.len);
                    at += u64::from(f.len);
                    (offset, out)
                })
                .collect()
        }
    }
}

/// The inverse of [`repack`] over a whole part: the file's bytes of its `pb` blocks from the
/// part's GPU bytes (tests read weights back through it).
pub(crate) fn unpack(ty: GgmlType, pb: u64, gpu: &[u8]) -> Vec<u8> {
    let (_, block) = kernel_block(ty);
    let (pb, block) = (pb as usize, block as usize);
    match layout(ty) {
        Layout::Blocks => gpu[..pb * block].to_vec(),
        Layout::Fields(fields) => {
            let mut out = vec![0u8; pb * block];
            let mut at = 0usize;
            for f in fields {
                let (o, len) = (f.at as usize, f.len as usize);
                let region = &gpu[pb * at..pb * (at + len)];
                for (b, src) in out.chunks_exact_mut(block).zip(region.chunks_exact(len)) {
                    b[o..o + len].copy_from_slice(src);
                }
                at += len;
            }
            out
        }
    }
}

/// Whether a write starting at block `first` of a part (after earlier writes ended there)
/// can go straight to the queue: every region's offset is a whole word.
pub(crate) fn word_aligned(ty: GgmlType, first: u64) -> bool {
    match layout(ty) {
        Layout::Blocks => (first * u64::from(kernel_block(ty).1)).is_multiple_of(4),
        Layout::Fields(fields) => fields
            .iter()
            .all(|f| (first * u64::from(f.len)).is_multiple_of(4)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_holds_each_byte_of_a_block_once() {
        for ty in kernel_types() {
            if let Layout::Fields(fields) = layout(ty) {
                let mut seen = vec![false; ty.type_size() as usize];
                for f in fields {
                    for b in f.at..f.at + f.len {
                        assert!(!seen[b as usize], "{ty}: byte {b} twice");
                        seen[b as usize] = true;
                    }
                }
                assert!(seen.iter().all(|&s| s), "{ty}: a byte is missing");
                // 16-byte quant lines: every region before the last 4-byte one is whole lines.
                let mut at = 0;
                for f in fields {
                    if f.len >= 16 {
                        assert_eq!(at % 16, 0, "{ty}: region {} starts mid-line", f.name);
                    }
                    at += f.len;
                }
            } else {
                let (_, bytes) = kernel_block(ty);
                assert_eq!(
                    bytes % 16,
                    0,
                    "{ty}: blocks of {bytes} bytes stay as they are"
                );
            }
        }
    }

    #[test]
    fn repack_then_unpack_is_the_identity() {
        for ty in kernel_types() {
            let (_, block) = kernel_block(ty);
            for pb in [1u64, 7, 10] {
                let src: Vec<u8> = (0..pb as usize * block as usize)
                    .map(|i| (i * 31 + 7) as u8)
                    .collect();
                let mut gpu = vec![0u8; part_bytes(ty, pb) as usize];
                // In two writes, as a writer streaming rows would.
                let split = (pb / 2) as usize * block as usize;
                for (first, bytes) in [(0, &src[..split]), (pb / 2, &src[split..])] {
                    for (offset, data) in repack(ty, pb, first, bytes) {
                        gpu[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
                    }
                }
                assert_eq!(unpack(ty, pb, &gpu), src, "{ty} pb={pb}");
            }
        }
    }
}
