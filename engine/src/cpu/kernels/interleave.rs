//! Weight rows in eights, for the kernels that compute eight rows in the lanes of one
//! vector (llama.cpp's CPU "repack" idea, done in place).
//!
//! A block kernel dots one row with a token per block and turns 8 lanes of partial sums
//! into one f32: a convert, a scale and an add per 32 weights and token, which cost more
//! than the integer products themselves. With eight rows' bytes interleaved, each i32 lane
//! of `dpbusd` (or `maddubs` + `madd`) sums four products of one row, so a block's sum for
//! eight rows ends in one vector and one convert, scale and add serve all eight.
//!
//! A tile holds block `i` of eight rows, the same bytes as the eight blocks: only their
//! order changes, in place, so memory stays the file's. Rows past the last whole eight keep
//! their blocks. In a tile, 32-byte run `j` (`qs[32 j..]`) holds bytes `4 j..4 j + 4` of
//! each row's `qs` in row order: its low nibbles are values `4 j..4 j + 4` of the eight rows,
//! its high nibbles values `16 + 4 j..`. Q5_0's fifth bits for vector `v` (values
//! `4 v..4 v + 4`) are word `qh[v]`, bit `4 r + b` for row `r`, value `4 v + b`.
//!
//! The kernels take the values unsigned (Q4_0's nibble, Q5_0's five bits) and subtract the
//! offset (8, 16) times the activations' block sum, exactly, in integers.

use bytemuck::{Pod, Zeroable};

use super::blocks::{BlockQ4_0, BlockQ5_0};
use super::QType;

/// Rows a tile interleaves.
pub const ROWS: usize = 8;

/// Block `i` of eight Q4_0 rows.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct TileQ4_0 {
    pub d: [[u8; 2]; ROWS],
    pub qs: [u8; 128],
}

/// Block `i` of eight Q5_0 rows. Byte arrays only, as in `blocks.rs`: alignment 1.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct TileQ5_0 {
    pub d: [[u8; 2]; ROWS],
    pub qh: [[u8; 4]; ROWS],
    pub qs: [u8; 128],
}

const _: () = assert!(size_of::<TileQ4_0>() == ROWS * size_of::<BlockQ4_0>());
const _: () = assert!(size_of::<TileQ5_0>() == ROWS * size_of::<BlockQ5_0>());

/// The types that have a tile.
pub fn has_tiles(ty: QType) -> bool {
    matches!(ty, QType::Q4_0 | QType::Q5_0)
}

fn pack_qs(qs: [&[u8; 16]; ROWS]) -> [u8; 128] {
    std::array::from_fn(|i| {
        let (j, r, b) = (i / 32, i % 32 / 4, i % 4);
        qs[r][4 * j + b]
    })
}

fn unpack_qs(packed: &[u8; 128], r: usize) -> [u8; 16] {
    std::array::from_fn(|i| packed[32 * (i / 4) + 4 * r + i % 4])
}

impl TileQ4_0 {
    fn pack(b: [&BlockQ4_0; ROWS]) -> Self {
        Self {
            d: b.map(|b| b.d),
            qs: pack_qs(b.map(|b| &b.qs)),
        }
    }

    fn unpack(&self, r: usize) -> BlockQ4_0 {
        BlockQ4_0 {
            d: self.d[r],
            qs: unpack_qs(&self.qs, r),
        }
    }
}

impl TileQ5_0 {
    fn pack(b: [&BlockQ5_0; ROWS]) -> Self {
        let qh = b.map(|b| u32::from_le_bytes(b.qh));
        Self {
            d: b.map(|b| b.d),
            qh: std::array::from_fn(|v| {
                (0..ROWS)
                    .fold(0u32, |m, r| m | ((qh[r] >> (4 * v)) & 0xf) << (4 * r))
                    .to_le_bytes()
            }),
            qs: pack_qs(b.map(|b| &b.qs)),
        }
    }

    fn unpack(&self, r: usize) -> BlockQ5_0 {
        let qh = (0..ROWS).fold(0u32, |m, v| {
            m | ((u32::from_le_bytes(self.qh[v]) >> (4 * r)) & 0xf) << (4 * v)
        });
        BlockQ5_0 {
            d: self.d[r],
            qh: qh.to_le_bytes(),
            qs: unpack_qs(&self.qs, r),
        }
    }
}

/// Interleaves every whole eight of the `n` rows of `row_bytes` each in `bytes`, in place.
pub fn interleave(ty: QType, bytes: &mut [u8], n: usize, row_bytes: usize) {
    fn each<B: Pod, T: Pod>(
        bytes: &mut [u8],
        n: usize,
        row_bytes: usize,
        pack: fn([&B; ROWS]) -> T,
    ) {
        let mut group = vec![0u8; ROWS * row_bytes];
        for g in bytes[..n / ROWS * ROWS * row_bytes].chunks_exact_mut(ROWS * row_bytes) {
            group.copy_from_slice(g);
            let rows: [&[B]; ROWS] = std::array::from_fn(|r| {
                bytemuck::cast_slice(&group[r * row_bytes..(r + 1) * row_bytes])
            });
            let tiles: &mut [T] = bytemuck::cast_slice_mut(g);
            for (i, t) in tiles.iter_mut().enumerate() {
                *t = pack(rows.map(|row| &row[i]));
            }
        }
    }
    match ty {
        QType::Q4_0 => each(bytes, n, row_bytes, TileQ4_0::pack),
        QType::Q5_0 => each(bytes, n, row_bytes, TileQ5_0::pack),
        _ => panic!("{ty:?} has no tiles"),
    }
}

/// Row `r`'s blocks, in GGUF order, of a matrix interleaved by [`interleave`].
pub fn row_blocks(ty: QType, bytes: &[u8], r: usize, row_bytes: usize) -> Vec<u8> {
    fn each<B: Pod, T: Pod>(group: &[u8], r: usize, unpack: fn(&T, usize) -> B) -> Vec<u8> {
        let tiles: &[T] = bytemuck::cast_slice(group);
        let blocks: Vec<B> = tiles.iter().map(|t| unpack(t, r)).collect();
        bytemuck::cast_slice(&blocks).to_vec()
    }
    let g = r / ROWS * ROWS * row_bytes;
    let group = &bytes[g..g + ROWS * row_bytes];
    match ty {
        QType::Q4_0 => each(group, r % ROWS, TileQ4_0::unpack),
        QType::Q5_0 => each(group, r % ROWS, TileQ5_0::unpack),
        _ => panic!("{ty:?} has no tiles"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Interleaving moves bytes: every row reads back as it was, the tail untouched.
    #[test]
    fn rows_read_back_as_they_were() {
        let mut state = 7u32;
        for ty in [QType::Q4_0, QType::Q5_0] {
            let (n, nb) = (19, 3);
            let row_bytes = nb * ty.block_bytes();
            let original: Vec<u8> = (0..n * row_bytes)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 24) as u8
                })
                .collect();
            let mut bytes = original.clone();
            interleave(ty, &mut bytes, n, row_bytes);
            assert_ne!(bytes, original, "{ty:?}: nothing moved");
            for r in 0..16 {
                assert_eq!(
                    row_blocks(ty, &bytes, r, row_bytes),
                    original[r * row_bytes..(r + 1) * row_bytes],
                    "{ty:?} row {r}"
                );
            }
            assert_eq!(bytes[16 * row_bytes..], original[16 * row_bytes..]);
        }
    }
}
