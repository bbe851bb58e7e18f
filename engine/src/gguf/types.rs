use std::fmt;

/// The one table of ggml tensor types: variant, on-disk id (ggml.h `enum ggml_type`), the
/// name ggml prints, elements per block and bytes per block (`sizeof(block_*)` in
/// ggml-common.h). Everything else derives from it; code that must treat each type (the
/// GPU's kernel files, candle's names) matches on [`GgmlType`] without a wildcard, so a
/// row added here fails to compile until every such place handles it.
macro_rules! ggml_types {
    ($($(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $block:expr, $bytes:expr;)*) => {
        /// The ggml tensor types this engine can size.
        ///
        /// Ids not listed (IQ*, TQ*, MXFP4, integer types, ...) are rejected at parse time
        /// with [`super::GgufError::UnsupportedTensorType`]: without their block layout we
        /// cannot bound the tensor's byte range, let alone run it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum GgmlType {
            $($(#[$doc])* $variant,)*
        }

        impl GgmlType {
            pub const ALL: &'static [GgmlType] = &[$(Self::$variant,)*];

            /// The type of a GGUF tensor info's id.
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(Self::$variant),)*
                    _ => None,
                }
            }

            pub const fn id(self) -> u32 {
                match self {
                    $(Self::$variant => $id,)*
                }
            }

            /// The name ggml and llama.cpp print for the type.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// Elements per block.
            pub const fn block_size(self) -> u64 {
                match self {
                    $(Self::$variant => $block,)*
                }
            }

            /// Bytes per block.
            pub const fn type_size(self) -> u64 {
                match self {
                    $(Self::$variant => $bytes,)*
                }
            }
        }
    };
}

/// Elements per super-block of the k-quants (ggml `QK_K`).
pub const QK_K: u64 = 256;

ggml_types! {
    F32 = 0, "F32", 1, 4;
    F16 = 1, "F16", 1, 2;
    /// f16 d + 16 bytes of nibbles
    Q4_0 = 2, "Q4_0", 32, 18;
    /// f16 d, f16 m + 16 bytes of nibbles
    Q4_1 = 3, "Q4_1", 32, 20;
    // 4 and 5 were Q4_2 and Q4_3, removed long ago.
    /// f16 d + 4 bytes of high bits + 16 bytes of nibbles
    Q5_0 = 6, "Q5_0", 32, 22;
    /// f16 d, f16 m + 4 + 16
    Q5_1 = 7, "Q5_1", 32, 24;
    /// f16 d + 32 int8
    Q8_0 = 8, "Q8_0", 32, 34;
    /// f16 d, f16 s + 32 int8
    Q8_1 = 9, "Q8_1", 32, 36;
    /// scales[16] + qs[64] + f16 d + f16 dmin
    Q2K = 10, "Q2_K", QK_K, 84;
    /// hmask[32] + qs[64] + scales[12] + f16 d
    Q3K = 11, "Q3_K", QK_K, 110;
    /// f16 d, f16 dmin + scales[12] + qs[128]
    Q4K = 12, "Q4_K", QK_K, 144;
    /// f16 d, f16 dmin + scales[12] + qh[32] + qs[128]
    Q5K = 13, "Q5_K", QK_K, 176;
    /// ql[128] + qh[64] + scales[16] + f16 d
    Q6K = 14, "Q6_K", QK_K, 210;
    /// f32 d + qs[256] + i16 bsums[16]
    Q8K = 15, "Q8_K", QK_K, 292;
    BF16 = 30, "BF16", 1, 2;
}

impl GgmlType {
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
