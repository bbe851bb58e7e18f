//! Hugging Face tensor names -> GGUF tensor names, from the model's tensor table
//! (`model::LAYER_NAMES` and the tensors outside the blocks; llama.cpp's gguf-py
//! `tensor_mapping.py` rows for these families).

use crate::model::{LAYER_NAMES, OUTPUT, OUTPUT_NORM, TOKEN_EMBD};

/// What a checkpoint tensor becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// Written under this GGUF name.
    Gguf(String),
    /// Not part of the GGUF: recomputed by the loader (`rotary_emb.inv_freq`) or a
    /// duplicate (`lm_head.weight` of a model with tied embeddings).
    Skip,
}

/// The GGUF name of `hf`, `None` when the name is not a tensor of the model's table.
pub fn map_name(hf: &str, tied_embeddings: bool) -> Option<Mapped> {
    let g = |s: &str| Some(Mapped::Gguf(s.to_string()));
    if hf == OUTPUT.0 && tied_embeddings {
        return Some(Mapped::Skip);
    }
    if let Some(&(_, gguf)) = [TOKEN_EMBD, OUTPUT_NORM, OUTPUT]
        .iter()
        .find(|(h, _)| *h == hf)
    {
        return g(gguf);
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: u64 = layer.parse().ok()?;
    if part == "self_attn.rotary_emb.inv_freq" {
        return Some(Mapped::Skip);
    }
    let &(_, gguf) = LAYER_NAMES.iter().find(|(h, _)| *h == part)?;
    g(&format!("blk.{layer}.{gguf}"))
}

/// The layer index of a `blk.N.*` GGUF name.
pub fn layer_of(gguf: &str) -> Option<u64> {
    gguf.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// The order llama.cpp's converter writes tensors in: token embedding, then each block in
/// layer order, then the final norm and output (gguf-py sorts nothing; HF checkpoints list
/// them in this order). A stable order also makes the output byte-reproducible.
pub fn write_order(gguf: &str) -> (u64, u64, String) {
    if gguf == TOKEN_EMBD.1 {
        (0, 0, String::new())
    } else if gguf == OUTPUT_NORM.1 {
        (2, 0, String::new())
    } else if gguf == OUTPUT.1 {
        (2, 1, String::new())
    } else {
        (1, layer_of(gguf).unwrap_or(u64::MAX), gguf.to_string())
    }
}

/// llama.cpp applies rotary embeddings to adjacent pairs for llama (`LLAMA_ROPE_TYPE_NORM`)
/// while HF Llama checkpoints rotate the two halves of each head, so the converter permutes
/// q/k rows (convert_hf_to_gguf.py `LlamaModel.permute`): within each head of `head_dim`
/// rows, output row `2a + b` is input row `b * head_dim/2 + a`. Qwen2 uses the halves
/// layout in llama.cpp too (NEOX) and needs no permutation.
pub fn rope_permutation(rows: u64, n_head: u64) -> Vec<u64> {
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    (0..rows)
        .map(|r| {
            let (h, j) = (r / head_dim, r % head_dim);
            let (a, b) = (j / 2, j % 2);
            h * head_dim + b * half + a
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map() {
        let m = |s| map_name(s, false);
        assert_eq!(
            m("model.layers.17.self_attn.k_proj.bias"),
            Some(Mapped::Gguf("blk.17.attn_k.bias".into()))
        );
        assert_eq!(
            m("model.layers.0.mlp.down_proj.weight"),
            Some(Mapped::Gguf("blk.0.ffn_down.weight".into()))
        );
        assert_eq!(
            m("lm_head.weight"),
            Some(Mapped::Gguf("output.weight".into()))
        );
        assert_eq!(map_name("lm_head.weight", true), Some(Mapped::Skip));
        assert_eq!(m("model.layers.x.mlp.down_proj.weight"), None);
        assert_eq!(m("model.layers.0.mlp.experts.weight"), None);
        assert_eq!(m("vision_tower.weight"), None);
        assert_eq!(layer_of("blk.12.attn_v.weight"), Some(12));
    }

    #[test]
    fn permutation_matches_numpy_reshape_swapaxes() {
        // w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(w.shape) for 2 heads of 4:
        // head rows [0 1 2 3] -> [0 2 1 3].
        assert_eq!(rope_permutation(8, 2), vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }
}
