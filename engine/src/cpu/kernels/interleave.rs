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
//! The kernels take the values unsigned (a nibble, or five bits) and subtract Q4_0's and
//! Q5_0's offset (8, 16) times the activations' block sum, exactly, in integers; Q4_1's and
//! Q5_1's mins meet the activations' scaled sums as in the block kernels. Q8_0's tile runs
//! 4 bytes of each row a vector (`avx2.rs` says how each set takes their sign).

use bytemuck::{Pod, Zeroable};

use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};
use super::QType;

/// Rows a tile interleaves.
pub const ROWS: usize = 8;

/// Block `i` of eight Q4_0 rows. Byte arrays only, as in `blocks.rs`: alignment 1.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct TileQ4_0 {
    pub d: [[u8; 2]; ROWS],
    pub qs: [u8; 128],
}

/// Block `i` of eight Q4_1 rows.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct TileQ4_1 {
    pub d: [[u8; 2]; ROWS],
    pub m: [[u8; 2]; ROWS],
    pub qs: [u8; 128],
}

/// Block `i` of eight Q5_0 rows.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct TileQ5_0 {
    pub d: [[u8; 2]; ROWS],
    pub qh: [[u8; 4]; ROWS],
    pub qs: [u8; 128],
}

/// Block `i` of eight Q5_1 rows.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct TileQ5_1 {
    pub d: [[u8; 2]; ROWS],
    pub m: [[u8; 2]; ROWS],
    pub qh: [[u8; 4]; ROWS],
    pub qs: [u8; 128],
}

/// Block `i` of eight Q8_0 rows: 32-byte run `j` holds bytes `4 j..4 j + 4` of each row.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct TileQ8_0 {
    pub d: [[u8; 2]; ROWS],
    pub qs: [u8; 256],
}

const _: () = assert!(size_of::<TileQ4_0>() == ROWS * size_of::<BlockQ4_0>());
const _: () = assert!(size_of::<TileQ8_0>() == ROWS * size_of::<BlockQ8_0>());
const _: () = assert!(size_of::<TileQ4_1>() == ROWS * size_of::<BlockQ4_1>());
const _: () = assert!(size_of::<TileQ5_0>() == ROWS * size_of::<BlockQ5_0>());
const _: () = assert!(size_of::<TileQ5_1>() == ROWS * size_of::<BlockQ5_1>());

/// Run `j` of the result: bytes `4 j..4 j + 4` of each row's `qs`, in row order.
fn pack_qs<const N: usize, const P: usize>(qs: [&[u8; N]; ROWS]) -> [u8; P] {
    std::array::from_fn(|i| {
        let (j, r, b) = (i / 32, i % 32 / 4, i % 4);
        qs[r][4 * j + b]
    })
}

fn unpack_qs<const N: usize, const P: usize>(packed: &[u8; P], r: usize) -> [u8; N] {
    std::array::from_fn(|i| packed[32 * (i / 4) + 4 * r + i % 4])
}

/// Word `v` holds the fifth bits of values `4 v..4 v + 4`, row `r`'s at bits `4 r..`.
fn pack_qh(qh: [[u8; 4]; ROWS]) -> [[u8; 4]; ROWS] {
    let qh = qh.map(u32::from_le_bytes);
    std::array::from_fn(|v| {
        (0..ROWS)
            .fold(0u32, |m, r| m | ((qh[r] >> (4 * v)) & 0xf) << (4 * r))
            .to_le_bytes()
    })
}

fn unpack_qh(packed: &[[u8; 4]; ROWS], r: usize) -> [u8; 4] {
    (0..ROWS)
        .fold(0u32, |m, v| {
            m | ((u32::from_le_bytes(packed[v]) >> (4 * r)) & 0xf) << (4 * v)
        })
        .to_le_bytes()
}

/// A block type and its tile: the tile of eight blocks, and row `r`'s block back.
trait Tiling: Pod {
    type Tile: Pod;
    fn pack(b: [&Self; ROWS]) -> Self::Tile;
    fn unpack(t: &Self::Tile, r: usize) -> Self;
}

impl Tiling for BlockQ4_0 {
    type Tile = TileQ4_0;
    fn pack(b: [&Self; ROWS]) -> TileQ4_0 {
        TileQ4_0 {
            d: b.map(|b| b.d),
            qs: pack_qs(b.map(|b| &b.qs)),
        }
    }
    fn unpack(t: &TileQ4_0, r: usize) -> Self {
        Self {
            d: t.d[r],
            qs: unpack_qs(&t.qs, r),
        }
    }
}

impl Tiling for BlockQ4_1 {
    type Tile = TileQ4_1;
    fn pack(b: [&Self; ROWS]) -> TileQ4_1 {
        TileQ4_1 {
            d: b.map(|b| b.d),
            m: b.map(|b| b.m),
            qs: pack_qs(b.map(|b| &b.qs)),
        }
    }
    fn unpack(t: &TileQ4_1, r: usize) -> Self {
        Self {
            d: t.d[r],
            m: t.m[r],
            qs: unpack_qs(&t.qs, r),
        }
    }
}

impl Tiling for BlockQ5_0 {
    type Tile = TileQ5_0;
    fn pack(b: [&Self; ROWS]) -> TileQ5_0 {
        TileQ5_0 {
            d: b.map(|b| b.d),
            qh: pack_qh(b.map(|b| b.qh)),
            qs: pack_qs(b.map(|b| &b.qs)),
        }
    }
    fn unpack(t: &TileQ5_0, r: usize) -> Self {
        Self {
            d: t.d[r],
            qh: unpack_qh(&t.qh, r),
            qs: unpack_qs(&t.qs, r),
        }
    }
}

impl Tiling for BlockQ5_1 {
    type Tile = TileQ5_1;
    fn pack(b: [&Self; ROWS]) -> TileQ5_1 {
        TileQ5_1 {
            d: b.map(|b| b.d),
            m: b.map(|b| b.m),
            qh: pack_qh(b.map(|b| b.qh)),
            qs: pack_qs(b.map(|b| &b.qs)),
        }
    }
    fn unpack(t: &TileQ5_1, r: usize) -> Self {
        Self {
            d: t.d[r],
            m: t.m[r],
            qh: unpack_qh(&t.qh, r),
            qs: unpack_qs(&t.qs, r),
        }
    }
}

impl Tiling for BlockQ8_0 {
    type Tile = TileQ8_0;
    fn pack(b: [&Self; ROWS]) -> TileQ8_0 {
        TileQ8_0 {
            d: b.map(|b| b.d),
            qs: pack_qs(b.map(|b| &b.qs)),
        }
    }
    fn unpack(t: &TileQ8_0, r: usize) -> Self {
        Self {
            d: t.d[r],
            qs: unpack_qs(&t.qs, r),
        }
    }
}

/// Interleaves every whole eight of the `n` rows of `row_bytes` each in `bytes`, in place.
pub fn interleave(ty: QType, bytes: &mut [u8], n: usize, row_bytes: usize) {
    fn each<B: Tiling>(bytes: &mut [u8], n: usize, row_bytes: usize) {
        let mut group = vec![0u8; ROWS * row_bytes];
        for g in bytes[..n / ROWS * ROWS * row_bytes].chunks_exact_mut(ROWS * row_bytes) {
            group.copy_from_slice(g);
            let rows: [&[B]; ROWS] = std::array::from_fn(|r| {
                bytemuck::cast_slice(&group[r * row_bytes..(r + 1) * row_bytes])
            });
            let tiles: &mut [B::Tile] = bytemuck::cast_slice_mut(g);
            for (i, t) in tiles.iter_mut().enumerate() {
                *t = B::pack(rows.map(|row| &row[i]));
            }
        }
    }
    match ty {
        QType::Q4_0 => each::<BlockQ4_0>(bytes, n, row_bytes),
        QType::Q4_1 => each::<BlockQ4_1>(bytes, n, row_bytes),
        QType::Q5_0 => each::<BlockQ5_0>(bytes, n, row_bytes),
        QType::Q5_1 => each::<BlockQ5_1>(bytes, n, row_bytes),
        QType::Q8_0 => each::<BlockQ8_0>(bytes, n, row_bytes),
        _ => panic!("{ty:?} has no tiles"),
    }
}

/// Row `r`'s blocks, in GGUF order, of a matrix interleaved by [`interleave`].
pub fn row_blocks(ty: QType, bytes: &[u8], r: usize, row_bytes: usize) -> Vec<u8> {
    fn each<B: Tiling>(group: &[u8], r: usize) -> Vec<u8> {
        let tiles: &[B::Tile] = bytemuck::cast_slice(group);
        let blocks: Vec<B> = tiles.iter().map(|t| B::unpack(t, r)).collect();
        bytemuck::cast_slice(&blocks).to_vec()
    }
    let g = r / ROWS * ROWS * row_bytes;
    let group = &bytes[g..g + ROWS * row_bytes];
    match ty {
        QType::Q4_0 => each::<BlockQ4_0>(group, r % ROWS),
        QType::Q4_1 => each::<BlockQ4_1>(group, r % ROWS),
        QType::Q5_0 => each::<BlockQ5_0>(group, r % ROWS),
        QType::Q5_1 => each::<BlockQ5_1>(group, r % ROWS),
        QType::Q8_0 => each::<BlockQ8_0>(group, r % ROWS),
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
        for ty in [
            QType::Q4_0,
            QType::Q4_1,
            QType::Q5_0,
            QType::Q5_1,
            QType::Q8_0,
        ] {
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
