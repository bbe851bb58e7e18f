use std::fmt;

/// The ggml tensor types this engine can size, with their on-disk ids (ggml.h `enum ggml_type`).
///
/// Ids not listed here (IQ*, TQ*, MXFP4, integer types, ...) are rejected at parse time with
/// [`super::GgufError::UnsupportedTensorType`]: without their block layout we cannot bound
/// the tensor's byte range, let alone run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    BF16,
}

/// Elements per super-block of the k-quants (ggml `QK_K`).
pub const QK_K: u64 = 256;

impl GgmlType {
    pub const ALL: [GgmlType; 15] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Q8K,
        GgmlType::BF16,
    ];

    /// The id stored in a GGUF tensor info (ggml.h; 4-5 were Q4_2/Q4_3, removed long ago).
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            15 => Self::Q8K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q8_1 => 9,
            Self::Q2K => 10,
            Self::Q3K => 11,
            Self::Q4K => 12,
            Self::Q5K => 13,
            Self::Q6K => 14,
            Self::Q8K => 15,
            Self::BF16 => 30,
        }
    }

    /// F32, F16 or BF16: one value per element, no blocks.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }

    /// The values of a float tensor's little-endian bytes widened to f32; `None` for block
    /// types, which need dequantizing.
    pub fn widen_to_f32(self, bytes: &[u8]) -> Option<Vec<f32>> {
        let words = |n: usize| bytes.chunks_exact(n);
        Some(match self {
            Self::F32 => words(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Self::F16 => words(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Self::BF16 => words(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => return None,
        })
    }

    /// The name ggml and llama.cpp print for the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q8_1 => "Q8_1",
            Self::Q2K => "Q2_K",
            Self::Q3K => "Q3_K",
            Self::Q4K => "Q4_K",
            Self::Q5K => "Q5_K",
            Self::Q6K => "Q6_K",
            Self::Q8K => "Q8_K",
            Self::BF16 => "BF16",
        }
    }

    /// Elements per block.
    pub const fn block_size(self) -> u64 {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 | Self::Q8_1 => 32,
            Self::Q2K | Self::Q3K | Self::Q4K | Self::Q5K | Self::Q6K | Self::Q8K => QK_K,
        }
    }

    /// Bytes per block: the `sizeof(block_*)` of ggml-common.h.
    pub const fn type_size(self) -> u64 {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            // f16 d + 16 bytes of nibbles
            Self::Q4_0 => 18,
            // f16 d, f16 m + 16 bytes of nibbles
            Self::Q4_1 => 20,
            // f16 d + 4 bytes of high bits + 16 bytes of nibbles
            Self::Q5_0 => 22,
            // f16 d, f16 m + 4 + 16
            Self::Q5_1 => 24,
            // f16 d + 32 int8
            Self::Q8_0 => 34,
            // f16 d, f16 s + 32 int8
            Self::Q8_1 => 36,
            // scales[16] + qs[64] + f16 d + f16 dmin
            Self::Q2K => 84,
            // hmask[32] + qs[64] + scales[12] + f16 d
            Self::Q3K => 110,
            // f16 d, f16 dmin + scales[12] + qs[128]
            Self::Q4K => 144,
            // f16 d, f16 dmin + scales[12] + qh[32] + qs[128]
            Self::Q5K => 176,
            // ql[128] + qh[64] + scales[16] + f16 d
            Self::Q6K => 210,
            // f32 d + qs[256] + i16 bsums[16]
            Self::Q8K => 292,
        }
    }

    /// Whether our WGSL kernels implement this type. The k-quants without a kernel (Q2_K,
    /// Q3_K) and the activation-only types (Q8_1, Q8_K) are CPU-only.
    pub fn gpu_supported(self) -> bool {
        matches!(
            self,
            Self::F32
                | Self::F16
                | Self::BF16
                | Self::Q4_0
                | Self::Q4_1
                | Self::Q5_0
                | Self::Q5_1
                | Self::Q8_0
                | Self::Q4K
                | Self::Q5K
                | Self::Q6K
        )
    }

    /// candle's name for the same block layout (its CPU quantizers and kernels).
    pub fn to_candle(self) -> candle_core::quantized::GgmlDType {
        use candle_core::quantized::GgmlDType as C;
        match self {
            Self::F32 => C::F32,
            Self::F16 => C::F16,
            Self::BF16 => C::BF16,
            Self::Q4_0 => C::Q4_0,
            Self::Q4_1 => C::Q4_1,
            Self::Q5_0 => C::Q5_0,
            Self::Q5_1 => C::Q5_1,
            Self::Q8_0 => C::Q8_0,
            Self::Q8_1 => C::Q8_1,
            Self::Q2K => C::Q2K,
            Self::Q3K => C::Q3K,
            Self::Q4K => C::Q4K,
            Self::Q5K => C::Q5K,
            Self::Q6K => C::Q6K,
            Self::Q8K => C::Q8K,
        }
    }

    /// Bytes of `n_elements` elements, or None when `n_elements` is not a whole number of
    /// blocks or the size overflows u64.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        if !n_elements.is_multiple_of(self.block_size()) {
            return None;
        }
        (n_elements / self.block_size()).checked_mul(self.type_size())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
