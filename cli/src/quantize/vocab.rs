//! `tokenizer.json` + `tokenizer_config.json` -> the GGUF `tokenizer.*` keys, the way
//! llama.cpp's convert_hf_to_gguf.py (`get_vocab_base`, `_set_vocab_gpt2`) and gguf-py's
//! `SpecialVocab` do for byte-level BPE models:
//!
//! - `tokens` has `vocab_size` (config.json) entries: ids the tokenizer leaves unused become
//!   `[PAD{id}]` with type UNUSED, since the embedding matrix has a row for each;
//! - added tokens are CONTROL when marked special or shaped like `<|...|>`, USER_DEFINED
//!   otherwise (Qwen's `<tool_call>`); every other token is NORMAL;
//! - merges are "a b" strings (the newer pair form is joined, a space inside a part
//!   written as U+0120 as gguf-py does);
//! - special ids come from tokenizer_config.json's token texts (looked up among the added
//!   tokens), then config.json's `*_token_id`, then (ours) generation_config.json's;
//! - add_bos/add_eos from the post-processor, else tokenizer_config.json's flags.
//!
//! The pre-tokenizer name is recognised from the tokenizer's split by the engine's table
//! ([`PRE_TOKENIZERS`](m1_engine::tokenizer::PRE_TOKENIZERS)); an unknown one is refused
//! rather than guessed.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value as Json;

use m1_engine::gguf::{Array, Value};
use m1_engine::tokenizer::{HfSplit, PreTokenizer, PRE_TOKENIZERS};

use super::hf::{read_json, read_optional_json, MAX_VOCAB};
use super::QuantizeError;

/// llama.cpp `llama_token_type` values written in `tokenizer.ggml.token_type`.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// The GGUF tokenizer keys, in the order convert_hf_to_gguf.py writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufVocab {
    pub pre: &'static str,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    /// (`tokenizer.ggml.<kind>_token_id` suffix, id)
    pub special_ids: Vec<(&'static str, u32)>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    /// (`tokenizer.chat_template` key, template)
    pub chat_templates: Vec<(String, String)>,
}

impl GgufVocab {
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let mut md = vec![
            (
                "tokenizer.ggml.model".to_string(),
                Value::String("gpt2".into()),
            ),
            (
                "tokenizer.ggml.pre".to_string(),
                Value::String(self.pre.into()),
            ),
            (
                "tokenizer.ggml.tokens".to_string(),
                Value::Array(Array::String(self.tokens.clone())),
            ),
            (
                "tokenizer.ggml.token_type".to_string(),
                Value::Array(Array::I32(self.token_types.clone())),
            ),
            (
                "tokenizer.ggml.merges".to_string(),
                Value::Array(Array::String(self.merges.clone())),
            ),
        ];
        for (kind, id) in &self.special_ids {
            md.push((format!("tokenizer.ggml.{kind}_token_id"), Value::U32(*id)));
        }
        if let Some(b) = self.add_bos {
            md.push(("tokenizer.ggml.add_bos_token".to_string(), Value::Bool(b)));
        }
        if let Some(b) = self.add_eos {
            md.push(("tokenizer.ggml.add_eos_token".to_string(), Value::Bool(b)));
        }
        for (key, t) in &self.chat_templates {
            md.push((key.clone(), Value::String(t.clone())));
        }
        md
    }
}

/// convert_hf_to_gguf.py's `does_token_look_special` (the shapes that apply to BPE vocabularies).
fn looks_special(t: &str) -> bool {
    (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || matches!(t, "<pad>" | "<mask>")
        || (t.starts_with("<unused") && t.ends_with('>'))
}

fn bad(path: &Path, why: impl Into<String>) -> QuantizeError {
    QuantizeError::Tokenizer {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// The llama.cpp pre-tokenizer name for a tokenizer.json `pre_tokenizer`.
fn pre_tokenizer_name(path: &Path, pre: &Json) -> Result<&'static str, QuantizeError> {
    let ty = pre.get("type").and_then(Json::as_str).unwrap_or("");
    let steps: Vec<&Json> = match ty {
        "Sequence" => pre
            .get("pretokenizers")
            .and_then(Json::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => vec![pre],
    };
    let mut regexes = Vec::new();
    let mut byte_level_regex = false;
    for s in &steps {
        match s.get("type").and_then(Json::as_str) {
            Some("Split") => {
                if let Some(r) = s.pointer("/pattern/Regex").and_then(Json::as_str) {
                    regexes.push(r);
                }
            }
            Some("ByteLevel") => {
                byte_level_regex = s.get("use_regex").and_then(Json::as_bool).unwrap_or(true)
            }
            _ => {}
        }
    }
    let split = match (regexes.as_slice(), byte_level_regex) {
        ([r], false) => Some(HfSplit::Regex(r)),
        ([], true) if steps.len() == 1 => Some(HfSplit::ByteLevel),
        _ => None,
    };
    match split.and_then(PreTokenizer::by_hf) {
        Some(p) => Ok(p.name),
        None => {
            let known: Vec<String> = PRE_TOKENIZERS
                .iter()
                .filter_map(|p| match p.hf? {
                    HfSplit::Regex(_) => Some(format!("{}'s Split regex then ByteLevel", p.name)),
                    HfSplit::ByteLevel => Some(format!("{}'s ByteLevel alone", p.name)),
                })
                .collect();
            Err(bad(
                path,
                format!(
                    "unrecognised pre-tokenizer {pre}: supported are {}",
                    known.join(", ")
                ),
            ))
        }
    }
}

/// (typ as tokenizer_config/config.json name it, GGUF key part)
const SPECIAL_KINDS: [(&str, &str); 4] = [
    ("bos", "bos"),
    ("eos", "eos"),
    ("unk", "unknown"),
    ("pad", "padding"),
];

/// Reads the tokenizer of the model folder `dir`. `vocab_size` is config.json's (the rows of
/// the embedding matrix); `config_ids` and `generation_ids` are the special-id fallbacks.
pub fn read_vocab(
    dir: &Path,
    vocab_size: u64,
    config_ids: &[(&'static str, u64)],
    generation_ids: &[(&'static str, u64)],
) -> Result<GgufVocab, QuantizeError> {
    let path = dir.join("tokenizer.json");
    let tok = read_json(&path)?;
    let config_path = dir.join("tokenizer_config.json");
    let config = read_optional_json(dir, "tokenizer_config.json")?;
    let mut vocab = vocab_from_json(
        &path,
        &tok,
        &config_path,
        config.as_ref(),
        vocab_size,
        config_ids,
        generation_ids,
    )?;
    if vocab.chat_templates.is_empty() {
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let t = std::fs::read_to_string(&jinja).map_err(|e| QuantizeError::Io {
                path: jinja.clone(),
                source: e,
            })?;
            vocab
                .chat_templates
                .push(("tokenizer.chat_template".to_string(), t));
        } else if let Some(j) = read_optional_json(dir, "chat_template.json")? {
            if let Some(t) = j.get("chat_template").and_then(Json::as_str) {
                vocab
                    .chat_templates
                    .push(("tokenizer.chat_template".to_string(), t.to_string()));
            }
        }
    }
    Ok(vocab)
}

/// The GGUF vocabulary from a parsed `tokenizer.json` (`tok`, read from `path`) and
/// `tokenizer_config.json` (`config`, when the folder has one), without touching the disk:
/// [`read_vocab`] adds the chat template files a folder may carry instead. The fuzz target
/// calls this.
pub fn vocab_from_json(
    path: &Path,
    tok: &Json,
    config_path: &Path,
    config: Option<&Json>,
    vocab_size: u64,
    config_ids: &[(&'static str, u64)],
    generation_ids: &[(&'static str, u64)],
) -> Result<GgufVocab, QuantizeError> {
    let model = tok
        .get("model")
        .ok_or_else(|| bad(path, "no \"model\" section"))?;
    let model_type = model.get("type").and_then(Json::as_str).unwrap_or("BPE");
    if model_type != "BPE" {
        return Err(bad(
            path,
            format!("tokenizer model {model_type:?} is not supported (byte-level BPE only)"),
        ));
    }
    let pre = pre_tokenizer_name(path, tok.get("pre_tokenizer").unwrap_or(&Json::Null))?;

    // One entry per id is allocated below: refuse what config.json could not have passed.
    if vocab_size > MAX_VOCAB {
        return Err(bad(
            path,
            format!("vocab_size {vocab_size} exceeds the converter's limit of {MAX_VOCAB}"),
        ));
    }
    let n = vocab_size as usize;
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut types = vec![UNUSED; n];
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| bad(path, "model.vocab is not a map of token -> id"))?;
    let mut place = |text: &str, id: u64, ty: i32| -> Result<(), QuantizeError> {
        let i = usize::try_from(id).ok().filter(|&i| i < n).ok_or_else(|| {
            bad(
                path,
                format!(
                    "token {text:?} has id {id}, outside config.json's vocab_size {vocab_size}"
                ),
            )
        })?;
        tokens[i] = Some(text.to_string());
        types[i] = ty;
        Ok(())
    };
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(path, format!("token {text:?}: id {id} is not an integer")))?;
        place(text, id, NORMAL)?;
    }
    let added: &[Json] = tok
        .get("added_tokens")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut added_ids: HashMap<&str, u64> = HashMap::new();
    for a in added {
        let (Some(text), Some(id)) = (
            a.get("content").and_then(Json::as_str),
            a.get("id").and_then(Json::as_u64),
        ) else {
            return Err(bad(path, format!("added token {a} lacks content or id")));
        };
        let special = a.get("special").and_then(Json::as_bool).unwrap_or(false);
        let ty = if special || looks_special(text) {
            CONTROL
        } else {
            USER_DEFINED
        };
        place(text, id, ty)?;
        // The first match wins, as in SpecialVocab.
        added_ids.entry(text).or_insert(id);
    }
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| format!("[PAD{i}]")))
        .collect();

    let merges = match model.get("merges") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(m)) => m
            .iter()
            .map(|m| match m {
                Json::String(s) => Ok(s.clone()),
                Json::Array(pair) if pair.len() == 2 => {
                    let part = |p: &Json| {
                        p.as_str()
                            .map(|s| s.replace(' ', "\u{0120}"))
                            .ok_or_else(|| bad(path, format!("merge {m} is not two strings")))
                    };
                    Ok(format!("{} {}", part(&pair[0])?, part(&pair[1])?))
                }
                _ => Err(bad(
                    path,
                    format!("merge {m} is neither \"a b\" nor [a, b]"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(path, format!("model.merges is {other}, not a list"))),
    };
    if merges.is_empty() {
        return Err(bad(
            path,
            "no merges: a BPE tokenizer without merges cannot encode",
        ));
    }

    // add_bos / add_eos: the post-processor decides first (SpecialVocab's rule).
    let (mut add_bos, mut add_eos) = (None, None);
    if let Some(pp) = tok.get("post_processor").filter(|p| !p.is_null()) {
        let list: Vec<&Json> = match pp.get("processors").and_then(Json::as_array) {
            Some(a) => a.iter().collect(),
            None => vec![pp],
        };
        for p in list {
            match p.get("type").and_then(Json::as_str) {
                Some("ByteLevel") => {
                    add_bos.get_or_insert(false);
                    add_eos.get_or_insert(false);
                }
                Some("TemplateProcessing") => {
                    let single = p.get("single").and_then(Json::as_array);
                    if let Some(s) = single.filter(|s| s.len() > 1) {
                        add_bos = Some(s[0].get("SpecialToken").is_some());
                        add_eos = Some(s[s.len() - 1].get("SpecialToken").is_some());
                    }
                }
                _ => {}
            }
        }
    }

    let mut special_ids: Vec<(&'static str, u32)> = Vec::new();
    let mut set = |kind: &'static str, id: u64| {
        if special_ids.iter().all(|(k, _)| *k != kind) && id < vocab_size {
            special_ids.push((kind, id as u32));
        }
    };
    let mut chat_templates = Vec::new();
    if let Some(cfg) = config {
        for (typ, kind) in SPECIAL_KINDS {
            let content = match cfg.get(format!("{typ}_token")) {
                Some(Json::String(s)) => Some(s.as_str()),
                Some(Json::Object(o)) => o.get("content").and_then(Json::as_str),
                _ => None,
            };
            if let Some(id) = content.and_then(|c| added_ids.get(c)) {
                set(kind, *id);
            }
        }
        if add_bos.is_none() {
            add_bos = cfg.get("add_bos_token").and_then(Json::as_bool);
        }
        if add_eos.is_none() {
            add_eos = cfg.get("add_eos_token").and_then(Json::as_bool);
        }
        match cfg.get("chat_template") {
            None | Some(Json::Null) => {}
            Some(Json::String(t)) => {
                chat_templates.push(("tokenizer.chat_template".to_string(), t.clone()))
            }
            // Named templates: "default" is the template, others get their name as suffix
            // (gguf-py's add_chat_template).
            Some(Json::Array(list)) => {
                for item in list {
                    let (Some(name), Some(t)) = (
                        item.get("name").and_then(Json::as_str),
                        item.get("template").and_then(Json::as_str),
                    ) else {
                        return Err(bad(
                            config_path,
                            format!("chat_template entry {item} lacks name or template"),
                        ));
                    };
                    let key = if name == "default" {
                        "tokenizer.chat_template".to_string()
                    } else {
                        format!("tokenizer.chat_template.{name}")
                    };
                    chat_templates.push((key, t.to_string()));
                }
            }
            Some(other) => {
                return Err(bad(
                    config_path,
                    format!("chat_template is {other}, not a string or a list"),
                ))
            }
        }
    }
    for (typ, kind) in SPECIAL_KINDS {
        for (t, id) in config_ids.iter().chain(generation_ids) {
            if *t == typ {
                set(kind, *id);
            }
        }
    }
    // Keys in a fixed order (bos, eos, unknown, padding), whatever source set them.
    special_ids.sort_by_key(|(k, _)| SPECIAL_KINDS.iter().position(|(_, kk)| kk == k));

    Ok(GgufVocab {
        pre,
        tokens,
        token_types: types,
        merges,
        special_ids,
        add_bos,
        add_eos,
        chat_templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz finding (fuzz/regressions/hf_folder/huge-vocab-size): the vocabulary was sized
    /// by the caller's vocab_size before any check.
    #[test]
    fn an_absurd_vocab_size_is_refused_before_allocating() {
        let tok = serde_json::json!({
            "pre_tokenizer": {"type": "ByteLevel", "use_regex": true},
            "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]},
        });
        let p = Path::new("tokenizer.json");
        let err = vocab_from_json(p, &tok, p, None, 1 << 40, &[], &[]).unwrap_err();
        assert!(
            err.to_string().contains("exceeds the converter's limit"),
            "{err}"
        );
    }

    #[test]
    fn pre_tokenizers_are_recognised_by_regex() {
        let p = Path::new("tokenizer.json");
        let seq = |re: &str| {
            serde_json::json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
            ]})
        };
        for name in ["qwen2", "llama-bpe"] {
            let Some(HfSplit::Regex(re)) = PreTokenizer::by_name(name).unwrap().hf else {
                panic!("{name} has a Hugging Face split regex");
            };
            assert_eq!(pre_tokenizer_name(p, &seq(re)).unwrap(), name);
        }
        let gpt2 =
            serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true});
        assert_eq!(pre_tokenizer_name(p, &gpt2).unwrap(), "gpt-2");
        let err = pre_tokenizer_name(p, &seq(r"\w+")).unwrap_err().to_string();
        assert!(err.contains("unrecognised pre-tokenizer"), "{err}");
    }
}
