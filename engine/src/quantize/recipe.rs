//! Which ggml type each tensor gets: llama.cpp's choices (src/llama-quant.cpp,
//! `llama_tensor_get_type_impl` and `tensor_type_fallback`) for the types we offer.
//!
//! | tensor                          | q4_k_m                 | q5_k_m                 | q6_k | q8_0 | q4_0 | f16 |
//! |---------------------------------|------------------------|------------------------|------|------|------|-----|
//! | 1-D (norms, biases)             | f32                    | f32                    | f32  | f32  | f32  | f32 |
//! | output.weight (or tied embd)    | q6_k                   | q6_k                   | q6_k | q8_0 | q6_k | f16 |
//! | token_embd.weight (untied)      | q4_k                   | q5_k                   | q6_k | q8_0 | q4_0 | f16 |
//! | attn_v, ffn_down: `use_more_bits` layers | q6_k          | q6_k                   | q6_k | q8_0 | q4_0 | f16 |
//! | every other matrix              | q4_k                   | q5_k                   | q6_k | q8_0 | q4_0 | f16 |
//!
//! `use_more_bits(i, n)` is true for the first and last eighth of the layers and every
//! third layer between (llama.cpp's rule: these layers are the most sensitive). Output is
//! q8_0 instead of q6_k when its rows are not a multiple of 256.
//!
//! A matrix whose row length is not a multiple of its type's block falls back as in
//! llama.cpp: q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, and when even 32 does not divide
//! the row, f16. (Qwen2.5-7B's rows are 3584 = 14 x 256 and 18944 = 74 x 256, so none
//! falls back; the 0.5B's 896 does.)

use std::fmt;
use std::str::FromStr;

use crate::gguf::GgmlType;

/// The `--type` choices: llama.cpp's ftype names, lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileType {
    Q4KM,
    Q5KM,
    Q6K,
    Q8_0,
    Q4_0,
    F16,
}

impl FileType {
    pub const ALL: [FileType; 6] = [
        FileType::Q4KM,
        FileType::Q5KM,
        FileType::Q6K,
        FileType::Q8_0,
        FileType::Q4_0,
        FileType::F16,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileType::Q4KM => "q4_k_m",
            FileType::Q5KM => "q5_k_m",
            FileType::Q6K => "q6_k",
            FileType::Q8_0 => "q8_0",
            FileType::Q4_0 => "q4_0",
            FileType::F16 => "f16",
        }
    }

    /// `general.file_type`: llama.cpp's `llama_ftype` value.
    pub fn ftype(self) -> u32 {
        match self {
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q8_0 => 7,
            FileType::Q4KM => 15,
            FileType::Q5KM => 17,
            FileType::Q6K => 18,
        }
    }

    /// The type of an ordinary weight matrix.
    pub fn base(self) -> GgmlType {
        match self {
            FileType::Q4KM => GgmlType::Q4K,
            FileType::Q5KM => GgmlType::Q5K,
            FileType::Q6K => GgmlType::Q6K,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::F16 => GgmlType::F16,
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FileType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FileType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = FileType::ALL.iter().map(|t| t.name()).collect();
                format!("unknown type {s:?} (one of {})", names.join(", "))
            })
    }
}

/// llama.cpp's `use_more_bits`.
pub fn use_more_bits(i_layer: u64, n_layers: u64) -> bool {
    let (i, n) = (i_layer as i64, n_layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The ggml type of the GGUF tensor `name` with ggml dims `dims` (row length first), in a
/// model of `n_layers` layers whose LM head is `token_embd` when `tied`.
pub fn tensor_type(ft: FileType, name: &str, dims: &[u64], n_layers: u64, tied: bool) -> GgmlType {
    if dims.len() < 2 {
        return GgmlType::F32;
    }
    let base = ft.base();
    if ft == FileType::F16 {
        return GgmlType::F16;
    }
    let row = dims[0];
    let is_output = name == "output.weight" || (tied && name == "token_embd.weight");
    let layer = super::names::layer_of(name);
    let wanted = if is_output {
        if !row.is_multiple_of(crate::gguf::QK_K) {
            GgmlType::Q8_0
        } else if base != GgmlType::Q8_0 {
            GgmlType::Q6K
        } else {
            base
        }
    } else if matches!(ft, FileType::Q4KM | FileType::Q5KM)
        && (name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight"))
        && layer.is_some_and(|i| use_more_bits(i, n_layers))
    {
        // llama.cpp counts attn_v tensors in file order rather than reading the layer
        // from the name; for one attn_v per layer that is the same index.
        GgmlType::Q6K
    } else {
        base
    };
    fallback(wanted, row)
}

/// llama.cpp's `tensor_type_fallback` for rows that are not a whole number of blocks.
pub fn fallback(t: GgmlType, row: u64) -> GgmlType {
    if row.is_multiple_of(t.block_size()) {
        return t;
    }
    let smaller = match t {
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        GgmlType::Q6K => GgmlType::Q8_0,
        other => other,
    };
    if row.is_multiple_of(smaller.block_size()) {
        smaller
    } else {
        GgmlType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_layers_of_a_28_layer_model() {
        // Qwen2.5-7B: layers 0-2, 24-27 and every third from 5.
        let more: Vec<u64> = (0..28).filter(|&i| use_more_bits(i, 28)).collect();
        assert_eq!(
            more,
            vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]
        );
    }

    #[test]
    fn q4_k_m_recipe() {
        let t = |name: &str, dims: &[u64]| tensor_type(FileType::Q4KM, name, dims, 28, false);
        assert_eq!(t("output.weight", &[3584, 152064]), GgmlType::Q6K);
        assert_eq!(t("token_embd.weight", &[3584, 152064]), GgmlType::Q4K);
        assert_eq!(t("blk.0.attn_v.weight", &[3584, 512]), GgmlType::Q6K);
        assert_eq!(t("blk.3.attn_v.weight", &[3584, 512]), GgmlType::Q4K);
        assert_eq!(t("blk.5.ffn_down.weight", &[18944, 3584]), GgmlType::Q6K);
        assert_eq!(t("blk.5.ffn_up.weight", &[3584, 18944]), GgmlType::Q4K);
        assert_eq!(t("blk.5.attn_q.bias", &[3584]), GgmlType::F32);
        // Tied embeddings of Qwen2.5-0.5B (896 = 3.5 x 256): output rule, then q8_0.
        assert_eq!(
            tensor_type(
                FileType::Q4KM,
                "token_embd.weight",
                &[896, 151936],
                24,
                true
            ),
            GgmlType::Q8_0
        );
        assert_eq!(
            tensor_type(FileType::Q4KM, "blk.4.attn_q.weight", &[896, 896], 24, true),
            GgmlType::Q5_0
        );
        assert_eq!(
            tensor_type(FileType::Q5KM, "blk.4.attn_q.weight", &[896, 896], 24, true),
            GgmlType::Q5_1
        );
        assert_eq!(fallback(GgmlType::Q6K, 96), GgmlType::Q8_0);
        assert_eq!(fallback(GgmlType::Q4K, 48), GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q4_0, 48), GgmlType::F16);
    }

    #[test]
    fn other_types() {
        let t = |ft, name: &str| tensor_type(ft, name, &[512, 512], 4, false);
        assert_eq!(t(FileType::Q8_0, "output.weight"), GgmlType::Q8_0);
        assert_eq!(t(FileType::Q4_0, "output.weight"), GgmlType::Q6K);
        assert_eq!(t(FileType::Q4_0, "blk.3.ffn_down.weight"), GgmlType::Q4_0);
        assert_eq!(t(FileType::F16, "output.weight"), GgmlType::F16);
        assert_eq!(t(FileType::Q6K, "blk.3.ffn_down.weight"), GgmlType::Q6K);
        assert_eq!("Q4_K_M".parse::<FileType>(), Ok(FileType::Q4KM));
        assert!("q3_k".parse::<FileType>().is_err());
    }
}
