//! A Hugging Face model folder: `config.json` (hyperparameters), `tokenizer_config.json`
//! (special tokens, chat template), `generation_config.json` (fallback token ids).
//!
//! Only the fields the GGUF needs are read; each one that is missing or out of range is an
//! error naming the file and the key, since a wrong hyperparameter makes a file that loads
//! and then produces garbage.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use m1_engine::model::Architecture;

use super::QuantizeError;

/// The largest `vocab_size` converted: the vocabulary is built with one entry per id before
/// the checkpoint is opened, so an absurd value in a 1 KB config.json must not size it.
/// 2^20 is 4x Gemma's 262k and 7x Qwen2.5's 152k; the GGUF header of a larger vocabulary
/// (~20 bytes a token) would pass the engine's 64 MiB header limit anyway.
pub const MAX_VOCAB: u64 = 1 << 20;

/// The hyperparameters of `config.json`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    /// The family, from the engine's table (`model::Architecture`).
    pub arch: Architecture,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_layers: u64,
    pub num_heads: u64,
    pub num_kv_heads: u64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub context_length: u64,
    pub vocab_size: u64,
    pub tie_word_embeddings: bool,
    /// `{bos,eos,pad,unk}_token_id` as config.json states them (llama.cpp's SpecialVocab
    /// reads these when tokenizer_config.json does not name the token).
    pub token_ids: Vec<(&'static str, u64)>,
}

pub(crate) fn read_json(path: &Path) -> Result<Json, QuantizeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            QuantizeError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            QuantizeError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| QuantizeError::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Reads `name` from `dir` when it exists; `Ok(None)` when it does not.
pub(crate) fn read_optional_json(dir: &Path, name: &str) -> Result<Option<Json>, QuantizeError> {
    let path = dir.join(name);
    if path.is_file() {
        read_json(&path).map(Some)
    } else {
        Ok(None)
    }
}

struct Fields<'a> {
    path: &'a Path,
    json: &'a Json,
}

impl Fields<'_> {
    fn bad(&self, key: &str, why: impl Into<String>) -> QuantizeError {
        QuantizeError::Config {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            why: why.into(),
        }
    }

    fn opt_u64(&self, key: &str) -> Result<Option<u64>, QuantizeError> {
        match self.json.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.bad(key, format!("expected a non-negative integer, got {v}"))),
        }
    }

    /// A count that must be at least 1.
    fn count(&self, key: &str) -> Result<u64, QuantizeError> {
        match self.opt_u64(key)? {
            None => Err(self.bad(key, "missing")),
            Some(0) => Err(self.bad(key, "must be at least 1")),
            Some(v) => Ok(v),
        }
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>, QuantizeError> {
        match self.json.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(key, format!("expected a number, got {v}"))),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, QuantizeError> {
        match self.json.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.bad(key, format!("expected true or false, got {v}"))),
        }
    }
}

impl HfConfig {
    pub fn read(dir: &Path) -> Result<Self, QuantizeError> {
        let path = dir.join("config.json");
        let json = read_json(&path)?;
        Self::from_json(&path, &json)
    }

    pub fn from_json(path: &Path, json: &Json) -> Result<Self, QuantizeError> {
        let f = Fields { path, json };
        let architectures: Vec<&str> = json
            .get("architectures")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let model_type = json.get("model_type").and_then(Json::as_str);
        let class = architectures.first().copied();
        let arch = Architecture::from_hf(class, model_type).ok_or_else(|| {
            QuantizeError::UnknownArchitecture {
                path: path.to_path_buf(),
                found: class.or(model_type).unwrap_or("(none given)").to_string(),
            }
        })?;
        let hidden_size = f.count("hidden_size")?;
        let num_heads = f.count("num_attention_heads")?;
        // Absent means multi-head attention (transformers' default).
        let num_kv_heads = f.opt_u64("num_key_value_heads")?.unwrap_or(num_heads);
        if num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
            return Err(f.bad(
                "num_key_value_heads",
                format!("{num_kv_heads} must divide num_attention_heads {num_heads}"),
            ));
        }
        if !hidden_size.is_multiple_of(num_heads) {
            return Err(f.bad(
                "hidden_size",
                format!("{hidden_size} is not a multiple of num_attention_heads {num_heads}"),
            ));
        }
        if let Some(hd) = f.opt_u64("head_dim")? {
            // llama.cpp then needs attention.key_length/value_length, which our engine
            // does not read; no qwen2/llama checkpoint we target sets it otherwise.
            if hd != hidden_size / num_heads {
                return Err(f.bad(
                    "head_dim",
                    format!(
                        "{hd} differs from hidden_size / num_attention_heads = {}; not supported",
                        hidden_size / num_heads
                    ),
                ));
            }
        }
        if let Some(s) = json.get("rope_scaling").filter(|v| !v.is_null()) {
            return Err(f.bad(
                "rope_scaling",
                format!("{s} is not supported (only unscaled RoPE)"),
            ));
        }
        let rms_norm_eps = f
            .opt_f64("rms_norm_eps")?
            .ok_or_else(|| f.bad("rms_norm_eps", "missing"))?;
        if !(rms_norm_eps > 0.0 && rms_norm_eps < 1.0) {
            return Err(f.bad("rms_norm_eps", format!("{rms_norm_eps} is not in (0, 1)")));
        }
        let rope_theta = f.opt_f64("rope_theta")?.unwrap_or(10_000.0);
        if !(rope_theta > 0.0 && rope_theta.is_finite()) {
            return Err(f.bad("rope_theta", format!("{rope_theta} is not positive")));
        }
        let mut token_ids = Vec::new();
        for typ in ["bos", "eos", "pad", "unk"] {
            // A list (several eos ids) names the primary one first.
            let key = format!("{typ}_token_id");
            let id = match json.get(&key) {
                Some(Json::Array(a)) => a.first().and_then(Json::as_u64),
                Some(v) => v.as_u64(),
                None => None,
            };
            if let Some(id) = id {
                token_ids.push((typ, id));
            }
        }
        let vocab_size = f.count("vocab_size")?;
        if vocab_size > MAX_VOCAB {
            return Err(f.bad(
                "vocab_size",
                format!("{vocab_size} exceeds the converter's limit of {MAX_VOCAB}"),
            ));
        }
        Ok(Self {
            arch,
            hidden_size,
            intermediate_size: f.count("intermediate_size")?,
            num_layers: f.count("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            rms_norm_eps,
            rope_theta,
            context_length: f.count("max_position_embeddings")?,
            vocab_size,
            tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            token_ids,
        })
    }

    pub fn head_dim(&self) -> u64 {
        self.hidden_size / self.num_heads
    }
}

/// `generation_config.json`'s `bos_token_id` / `eos_token_id` (the primary one of a list):
/// the last fallback for special ids, after tokenizer_config.json and config.json.
pub fn generation_token_ids(dir: &Path) -> Result<Vec<(&'static str, u64)>, QuantizeError> {
    let Some(json) = read_optional_json(dir, "generation_config.json")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for typ in ["bos", "eos", "pad"] {
        let id = match json.get(format!("{typ}_token_id")) {
            Some(Json::Array(a)) => a.first().and_then(Json::as_u64),
            Some(v) => v.as_u64(),
            None => None,
        };
        if let Some(id) = id {
            out.push((typ, id));
        }
    }
    Ok(out)
}

/// The folder's name, for `general.name` (llama.cpp's converter derives it from the folder
/// too when the model card says nothing).
pub fn model_name(dir: &Path) -> String {
    let dir: PathBuf = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vocab_size: u64) -> Json {
        serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 512, "vocab_size": vocab_size,
        })
    }

    /// Fuzz finding (fuzz/regressions/hf_folder/huge-vocab-size): vocab_size 4e9 made the
    /// converter allocate 96 GB for the vocabulary before opening a shard.
    #[test]
    fn an_absurd_vocab_size_is_refused_by_name() {
        let path = Path::new("config.json");
        assert!(HfConfig::from_json(path, &config(MAX_VOCAB)).is_ok());
        let err = HfConfig::from_json(path, &config(4_000_000_000)).unwrap_err();
        assert!(
            matches!(&err, QuantizeError::Config { key, .. } if key == "vocab_size"),
            "{err}"
        );
        assert!(
            err.to_string().contains("exceeds the converter's limit"),
            "{err}"
        );
    }
}
