//! The readers of `m1 quantize`: a safetensors shard's header, and a Hugging Face folder's
//! `config.json`, `tokenizer.json` and `tokenizer_config.json`, through the pure functions
//! the converter calls after reading the files.

use std::path::Path;

use m1_cli::quantize::{parse_shard_header, shard_header_len, vocab_from_json, HfConfig};
use m1_engine::gguf::Layout;
use serde_json::Value as Json;

/// Input: a whole shard (`u64` header length, JSON header, data).
pub fn safetensors(data: &[u8]) {
    let path = Path::new("model.safetensors");
    let size = data.len() as u64;
    let Some(first8) = data.first_chunk::<8>() else {
        return;
    };
    let Ok(n) = shard_header_len(path, *first8, size) else {
        return;
    };
    let header = &data[8..8 + n as usize];
    let Ok(tensors) = parse_shard_header(path, header, size, 0) else {
        return;
    };
    for (name, t) in &tensors {
        let bytes = t
            .shape
            .iter()
            .try_fold(t.dtype.size() as u64, |a, &d| a.checked_mul(d))
            .expect("a checked shape's size fits u64");
        let end = t.offset.checked_add(bytes).expect("tensor end overflows");
        assert!(
            t.offset >= 8 + n && end <= size,
            "{name}: {t:?} lies outside the data"
        );
        // What the converter asks of a tensor before reading its rows.
        assert_eq!(t.rows() * t.row_len(), t.n_elements(), "{name}: {t:?}");
    }
}

/// Input: `config.json`, then (after a NUL byte, which JSON text cannot hold) the
/// `tokenizer.json`, then optionally `tokenizer_config.json`: read in the converter's order,
/// the vocabulary sized and its special ids filled by the config.
pub fn hf_folder(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0);
    let (Some(config), Some(tokenizer)) = (parts.next(), parts.next()) else {
        return;
    };
    let tokenizer_config = parts.next();
    let Ok(config) = serde_json::from_slice::<Json>(config) else {
        return;
    };
    let Ok(config) = HfConfig::from_json(Path::new("config.json"), &config) else {
        return;
    };
    let _ = config.head_dim();
    let Ok(tok) = serde_json::from_slice::<Json>(tokenizer) else {
        return;
    };
    let tok_config = tokenizer_config.and_then(|t| serde_json::from_slice::<Json>(t).ok());
    let Ok(vocab) = vocab_from_json(
        Path::new("tokenizer.json"),
        &tok,
        Path::new("tokenizer_config.json"),
        tok_config.as_ref(),
        config.vocab_size,
        &config.token_ids,
        &[],
    ) else {
        return;
    };
    assert_eq!(vocab.tokens.len() as u64, config.vocab_size);
    assert_eq!(vocab.token_types.len(), vocab.tokens.len());
    for (kind, id) in &vocab.special_ids {
        assert!(u64::from(*id) < config.vocab_size, "{kind} id {id}");
    }
    // The converter writes these keys into the GGUF header: they must form one.
    Layout::new(&vocab.metadata(), Vec::new()).expect("the vocabulary's keys are unique");
}
