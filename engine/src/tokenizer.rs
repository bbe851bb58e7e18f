//! A `tokenizers::Tokenizer` built from GGUF metadata alone (no tokenizer.json), matching
//! llama.cpp's token ids for the same text.
//!
//! llama.cpp's BPE path (src/llama-vocab.cpp) is: split the text on special tokens, split
//! each remaining fragment with one or more regexes chosen by `tokenizer.ggml.pre`, map
//! bytes to GPT-2's printable characters, then merge by rank. We build the same pipeline
//! from HF pieces: added tokens for the specials, a `Sequence` of `Split`s with llama.cpp's
//! regexes, a `ByteLevel` step without its own regex, and a BPE model over the GGUF vocab
//! and merges. No normalizer: llama.cpp applies none (Qwen's tokenizer.json NFC is dropped
//! by the converter), so neither do we.

use std::collections::HashMap;
use std::sync::OnceLock;

use thiserror::Error;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, PreTokenizedString, SplitDelimiterBehavior, TokenizerImpl};

use crate::gguf::{Array, GgufError, Metadata};

#[derive(Debug, Clone, PartialEq, Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Metadata(#[from] GgufError),

    #[error("unsupported tokenizer model {0:?} (supported: gpt2 byte-level BPE)")]
    UnsupportedModel(String),

    #[error(
        "unsupported pre-tokenizer {0:?} (supported: {names} and their aliases)",
        names = pre_tokenizer_names()
    )]
    UnsupportedPreTokenizer(String),

    #[error(
        "tokenizer.ggml.token_type has {types} entries but tokenizer.ggml.tokens has {tokens}"
    )]
    TokenTypeCount { tokens: usize, types: usize },

    #[error("vocabulary of {0} tokens does not fit u32 ids")]
    VocabTooLarge(usize),

    #[error("{key} = {id} is outside the {vocab_size}-token vocabulary")]
    TokenIdOutOfRange {
        key: &'static str,
        id: u64,
        vocab_size: usize,
    },

    #[error("building the tokenizer failed: {0}")]
    Build(String),

    #[error("encoding failed: {0}")]
    Encode(String),
}

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_i64(v: i64) -> Self {
        match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// How text is split into pieces before the BPE merges: one llama.cpp pre-tokenizer type.
/// [`PRE_TOKENIZERS`] is the one list of them, read by the tokenizer (which picks one by
/// `tokenizer.ggml.pre`) and by the converter (which writes that key after recognising a
/// Hugging Face `tokenizer.json` by its split).
#[derive(Debug)]
pub struct PreTokenizer {
    /// The name written in `tokenizer.ggml.pre`.
    pub name: &'static str,
    /// Other names llama-vocab.cpp maps to the same type.
    pub aliases: &'static [&'static str],
    /// llama.cpp's regexes (llm_tokenizer_bpe's constructor), applied in order: each
    /// refines the pieces the previous one produced.
    pub regexes: &'static [&'static str],
    /// llama3-style vocabularies look a whole piece up before merging.
    pub ignore_merges: bool,
    /// How a Hugging Face `tokenizer.json` writes this split, where the converter takes it.
    pub hf: Option<HfSplit<'static>>,
}

/// A `tokenizer.json` pre-tokenizer, in the two shapes the converter recognises. The
/// regex, not llama.cpp's hash of a sample encoding, identifies the type: it is what
/// decides how text splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfSplit<'a> {
    /// One `Split` with this regex, then a `ByteLevel` without a regex of its own.
    Regex(&'a str),
    /// A lone `ByteLevel` that applies GPT-2's regex itself.
    ByteLevel,
}

pub const PRE_TOKENIZERS: &[PreTokenizer] = &[
    PreTokenizer {
        name: "qwen2",
        aliases: &["deepseek-r1-qwen", "megrez", "stablelm2"],
        regexes: &[
            r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ],
        ignore_merges: false,
        // As Qwen's tokenizer.json writes it.
        hf: Some(HfSplit::Regex(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        )),
    },
    PreTokenizer {
        name: "llama-bpe",
        aliases: &["llama3", "llama-v3", "falcon3", "pixtral"],
        // Llama 3's: digits in runs of up to three.
        regexes: &[
            r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ],
        ignore_merges: true,
        hf: Some(HfSplit::Regex(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        )),
    },
    PreTokenizer {
        name: "smollm",
        aliases: &["starcoder", "refact", "codeshell", "exaone", "minerva-7b"],
        regexes: &[
            r"\p{N}",
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
        ],
        ignore_merges: false,
        hf: None,
    },
    PreTokenizer {
        name: "gpt-2",
        aliases: &["phi-2", "olmo", "mpt", "jina-es", "jina-de"],
        regexes: &[r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"],
        ignore_merges: false,
        hf: Some(HfSplit::ByteLevel),
    },
    PreTokenizer {
        name: "default",
        // A file without the key.
        aliases: &[""],
        regexes: &[
            r"[\p{P}\$\+<=>\^~\|]+",
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
            r"\p{N}+",
            r"[0-9][0-9][0-9]",
        ],
        ignore_merges: false,
        hf: None,
    },
];

impl PreTokenizer {
    /// The type a `tokenizer.ggml.pre` name or alias stands for, as llama-vocab.cpp maps them.
    pub fn by_name(name: &str) -> Result<&'static Self, TokenizerError> {
        PRE_TOKENIZERS
            .iter()
            .find(|p| p.name == name || p.aliases.contains(&name))
            .ok_or_else(|| TokenizerError::UnsupportedPreTokenizer(name.to_string()))
    }

    /// The type a Hugging Face `tokenizer.json` split stands for, if the converter takes it.
    pub fn by_hf(split: HfSplit<'_>) -> Option<&'static Self> {
        PRE_TOKENIZERS.iter().find(|p| p.hf == Some(split))
    }

    /// This type's regexes, compiled once per process: compiling them takes ~4 ms, more
    /// than the rest of building a tokenizer (the fuzzer builds thousands a second), and
    /// `Split`'s `Clone` compiles again, so tokenizers share them by reference.
    fn splits(&'static self) -> Result<&'static [Split], TokenizerError> {
        static COMPILED: [OnceLock<Vec<Split>>; PRE_TOKENIZERS.len()] =
            [const { OnceLock::new() }; PRE_TOKENIZERS.len()];
        let index = PRE_TOKENIZERS
            .iter()
            .position(|p| std::ptr::eq(p, self))
            .expect("a PreTokenizer comes from PRE_TOKENIZERS");
        if let Some(splits) = COMPILED[index].get() {
            return Ok(splits);
        }
        let splits = self
            .regexes
            .iter()
            .map(|re| {
                Split::new(
                    SplitPattern::Regex((*re).to_string()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| TokenizerError::Build(format!("regex {re:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(COMPILED[index].get_or_init(|| splits))
    }
}

/// The pre-tokenizer a tokenizer runs: its type's regexes in order (shared, see
/// [`PreTokenizer::splits`]), then `ByteLevel`, which only maps bytes to characters since
/// the regexes already split.
pub(crate) struct PreTokenize {
    splits: &'static [Split],
    byte_level: ByteLevel,
}

impl tokenizers::PreTokenizer for PreTokenize {
    fn pre_tokenize(&self, pieces: &mut PreTokenizedString) -> tokenizers::Result<()> {
        for split in self.splits {
            split.pre_tokenize(pieces)?;
        }
        self.byte_level.pre_tokenize(pieces)
    }
}

/// The Hugging Face tokenizer with our pre-tokenizer in place of its wrapper enum.
pub(crate) type HfTokenizer = TokenizerImpl<
    ModelWrapper,
    NormalizerWrapper,
    PreTokenize,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// "qwen2, llama-bpe, smollm, gpt-2, default": the names [`PRE_TOKENIZERS`] knows.
fn pre_tokenizer_names() -> String {
    let names: Vec<&str> = PRE_TOKENIZERS.iter().map(|p| p.name).collect();
    names.join(", ")
}

/// GPT-2's byte <-> printable-character table (`bytes_to_unicode`): printable Latin-1 bytes
/// map to themselves, the other 68 bytes to U+0100.. in order.
fn byte_level_decoder() -> HashMap<char, u8> {
    let mut map = HashMap::with_capacity(256);
    let mut next = 256u32;
    for b in 0u8..=255 {
        let printable = matches!(b, 33..=126 | 161..=172 | 174..=255);
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
            next += 1;
            c
        };
        map.insert(c, b);
    }
    map
}

/// Control token texts that end a turn even when the file's eos id names another token
/// (llama-vocab.cpp adds these to its end-of-generation set by text).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
];

pub struct Tokenizer {
    inner: HfTokenizer,
    vocab_size: usize,
    types: Vec<TokenType>,
    /// Raw bytes of every token, concatenated; `offsets[i]..offsets[i + 1]` is token i.
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    eog: Vec<u32>,
    chat_template: Option<String>,
    pre: String,
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF header's `tokenizer.*` metadata.
    pub fn from_metadata(md: &Metadata) -> Result<Self, TokenizerError> {
        let model = md.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizerError::UnsupportedModel(model.to_string()));
        }
        let pre = md
            .opt_str("tokenizer.ggml.pre")?
            .unwrap_or("default")
            .to_string();
        let pre_type = PreTokenizer::by_name(&pre)?;

        let tokens = md.get_str_array("tokenizer.ggml.tokens")?;
        let n = tokens.len();
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::VocabTooLarge(n));
        }
        let types: Vec<TokenType> = match md.get("tokenizer.ggml.token_type") {
            None => vec![TokenType::Normal; n],
            Some(_) => {
                let arr: &Array = md.get_array("tokenizer.ggml.token_type")?;
                let raw = arr.to_i64_vec().ok_or_else(|| GgufError::WrongValueType {
                    key: "tokenizer.ggml.token_type".to_string(),
                    expected: "array<i32>",
                    found: arr.type_name().to_string(),
                })?;
                if raw.len() != n {
                    return Err(TokenizerError::TokenTypeCount {
                        tokens: n,
                        types: raw.len(),
                    });
                }
                raw.into_iter().map(TokenType::from_i64).collect()
            }
        };

        // Later duplicates win, as in llama.cpp's `token_to_id[text] = id` loop.
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();

        // llama.cpp splits each merge at the first space after position 0; merges whose parts
        // or result are not tokens could never produce a token id, and HF's BPE builder
        // rejects them, so they are dropped (ranks keep their relative order).
        let mut merges = Vec::new();
        if md.get("tokenizer.ggml.merges").is_some() {
            for m in md.get_str_array("tokenizer.ggml.merges")? {
                // Byte-based like llama.cpp's `find(' ', 1)`; a space byte is always a
                // character boundary, so the slices below are valid.
                let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                    continue;
                };
                let (a, b) = (&m[..pos], &m[pos + 1..]);
                if vocab.contains_key(a)
                    && vocab.contains_key(b)
                    && vocab.contains_key(&format!("{a}{b}"))
                {
                    merges.push((a.to_string(), b.to_string()));
                }
            }
        }

        // No word cache: tokenizers 0.23 keeps it in a thread-local map keyed by a per-BPE
        // id that nothing removes, so every tokenizer built and dropped (a model reload, a
        // fuzz input) left up to 10,000 words behind on each thread that encoded with it.
        // Merging a word again costs microseconds; a prompt has a few hundred.
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(pre_type.ignore_merges)
            .cache_capacity(0)
            .build()
            .map_err(|e| TokenizerError::Build(e.to_string()))?;

        let mut inner = HfTokenizer::new(bpe.into());
        inner.with_pre_tokenizer(Some(PreTokenize {
            splits: pre_type.splits()?,
            byte_level: ByteLevel::new(false, false, false),
        }));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        // Control and unknown tokens are special (skipped when not parsing specials);
        // user-defined ones (e.g. Qwen's <tool_call>) are always matched, as in llama.cpp.
        let mut special = Vec::new();
        let mut user = Vec::new();
        for (t, ty) in tokens.iter().zip(&types) {
            match ty {
                TokenType::Control | TokenType::Unknown => {
                    special.push(AddedToken::from(t.clone(), true))
                }
                TokenType::UserDefined => user.push(AddedToken::from(t.clone(), false)),
                _ => {}
            }
        }
        inner
            .add_special_tokens(special)
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
        inner
            .add_tokens(user)
            .map_err(|e| TokenizerError::Build(e.to_string()))?;

        let (bytes, offsets) = token_bytes(tokens, &types);

        let id = |key: &'static str| -> Result<Option<u32>, TokenizerError> {
            match md.opt_u64(key)? {
                None => Ok(None),
                // Compared as u64: on wasm32 `v as usize` would drop the high bits and let
                // 2^32 + 1 through as id 1.
                Some(v) if v < n as u64 => Ok(Some(v as u32)),
                Some(v) => Err(TokenizerError::TokenIdOutOfRange {
                    key,
                    id: v,
                    vocab_size: n,
                }),
            }
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let eot = id("tokenizer.ggml.eot_token_id")?;
        let eom = id("tokenizer.ggml.eom_token_id")?;
        // llama3-style pre-tokenizers turn BOS on; the file's flag overrides either way
        // (llama-vocab.cpp reads tokenizer.ggml.add_bos_token after choosing the pre type).
        let add_bos = md
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(pre_type.ignore_merges);

        let mut eog: Vec<u32> = [eos, eot, eom].into_iter().flatten().collect();
        for (i, (t, ty)) in tokens.iter().zip(&types).enumerate() {
            if matches!(ty, TokenType::Control | TokenType::UserDefined)
                && EOG_TEXTS.contains(&t.as_str())
            {
                eog.push(i as u32);
            }
        }
        eog.sort_unstable();
        eog.dedup();

        Ok(Self {
            inner,
            vocab_size: n,
            types,
            bytes,
            offsets,
            bos,
            eos,
            add_bos,
            eog,
            chat_template: md.opt_str("tokenizer.chat_template")?.map(str::to_string),
            pre,
        })
    }

    /// Token ids for `text`, with BOS prepended when the model asks for it. With
    /// `parse_special`, control tokens written in the text (`<|im_start|>`) become their
    /// ids; without, they are tokenized as plain text (use this for untrusted user text).
    /// User-defined tokens are matched either way, as in llama.cpp.
    pub fn encode(&mut self, text: &str, parse_special: bool) -> Result<Vec<u32>, TokenizerError> {
        self.inner.set_encode_special_tokens(!parse_special);
        let enc = self.inner.encode_fast(text, false);
        self.inner.set_encode_special_tokens(false);
        let enc = enc.map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// The bytes a token stands for, as llama.cpp's `token_to_piece(.., special = true)`:
    /// byte-level tokens decoded to raw bytes (possibly a partial UTF-8 sequence), control
    /// and user-defined tokens as their text, unused tokens as nothing. Out-of-range ids
    /// give an empty slice.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.bytes.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Concatenated bytes of `ids`, decoded lossily. `skip_control` drops control tokens.
    pub fn decode(&self, ids: &[u32], skip_control: bool) -> String {
        let mut out = Vec::new();
        for &id in ids {
            if skip_control && self.is_control(id) {
                continue;
            }
            out.extend_from_slice(self.token_bytes(id));
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    pub fn is_control(&self, id: u32) -> bool {
        matches!(
            self.token_type(id),
            Some(TokenType::Control | TokenType::Unknown)
        )
    }

    /// End-of-generation: eos/eot/eom ids plus end-of-turn control tokens by text.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// The id of a token by its exact text (specials included).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id(text)
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// `tokenizer.chat_template`, the Jinja template the model was trained with.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// `tokenizer.ggml.pre`, the pre-tokenizer name the regexes were chosen by.
    pub fn pre_tokenizer(&self) -> &str {
        &self.pre
    }

    /// The underlying HF tokenizer.
    pub(crate) fn inner(&self) -> &HfTokenizer {
        &self.inner
    }
}

/// Per-token raw bytes, following llama.cpp's `token_to_piece` for BPE vocabularies.
fn token_bytes(tokens: &[String], types: &[TokenType]) -> (Vec<u8>, Vec<u32>) {
    let decoder = byte_level_decoder();
    let mut bytes = Vec::with_capacity(tokens.iter().map(String::len).sum());
    let mut offsets = Vec::with_capacity(tokens.len() + 1);
    offsets.push(0u32);
    for (t, ty) in tokens.iter().zip(types) {
        match ty {
            TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
                bytes.extend_from_slice(t.as_bytes())
            }
            TokenType::Normal => {
                for c in t.chars() {
                    match decoder.get(&c) {
                        Some(&b) => bytes.push(b),
                        // Not a byte-level character: keep its UTF-8 rather than invent bytes.
                        None => {
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
            }
            // SPM-style byte tokens "<0xAB>" (llama-vocab.cpp token_to_byte).
            TokenType::Byte => {
                if let Some(b) = t
                    .strip_prefix("<0x")
                    .and_then(|h| h.strip_suffix('>'))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    bytes.push(b);
                }
            }
            TokenType::Unused | TokenType::Undefined => {}
        }
        // The header caps at 64 MiB, so the concatenation fits u32.
        offsets.push(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    }
    (bytes, offsets)
}

/// Turns a stream of token bytes into text without ever splitting a UTF-8 character: bytes
/// of an incomplete sequence wait for the next token.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a token's bytes and returns the text that is now complete. Invalid bytes
    /// become U+FFFD.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // An incomplete sequence at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Flushes whatever is left (an incomplete sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn pre_tokenizer_names_are_unique_and_resolve_to_their_entry() {
        let mut seen = HashSet::new();
        for p in PRE_TOKENIZERS {
            for name in std::iter::once(&p.name).chain(p.aliases) {
                assert!(seen.insert(*name), "{name:?} is listed twice");
                assert_eq!(PreTokenizer::by_name(name).map(|q| q.name), Ok(p.name));
            }
            if let Some(split) = p.hf {
                assert_eq!(PreTokenizer::by_hf(split).map(|q| q.name), Some(p.name));
            }
        }
        let err = PreTokenizer::by_name("tekken").unwrap_err().to_string();
        assert!(
            err.contains("\"tekken\" (supported: qwen2, llama-bpe, smollm, gpt-2, default and"),
            "{err}"
        );
    }
}
