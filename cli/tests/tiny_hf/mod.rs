//! A tiny Hugging Face model folder, generated deterministically for the converter's tests:
//! seeded random weights (rounded to the stored dtype), safetensors shards with an index,
//! config/generation/tokenizer configs, and a real byte-level BPE tokenizer.json whose
//! merges are learned here from a fixed text (greedy pair merging with ties broken by the
//! pair's text, so the result never depends on hash order).
//!
//! scripts/llama_quantize_reference.py runs llama.cpp on the GGUFs converted from these
//! folders; change nothing here without regenerating that fixture (its sha256s catch it).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use half::{bf16, f16};
use serde_json::{json, Value};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

pub const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2.5's chat template, shortened to what ChatML needs (no tools).
pub const CHAT_TEMPLATE: &str = "{%- for message in messages %}{%- if loop.first and message.role != 'system' %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// The text the tokenizer's merges are learned from.
pub const CORPUS: &str = "\
A 45-year-old man presents with crushing substernal chest pain radiating to the left arm. \
The electrocardiogram shows ST-segment elevation in leads II, III and aVF. Which coronary \
artery is most likely occluded? The right coronary artery supplies the inferior wall of the \
heart in most patients. Treatment includes aspirin, heparin and urgent reperfusion therapy. \
Iron-deficiency anemia presents with fatigue, pallor and shortness of breath; the smear shows \
microcytic, hypochromic red cells. Vitamin C deficiency causes scurvy: bleeding gums, poor \
wound healing and perifollicular hemorrhages. The patient is a 30-year-old woman with fever, \
cough and pleuritic chest pain. What is the most likely diagnosis? Think step by step, then \
answer. def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n\
The quick brown fox jumps over the lazy dog. Once upon a time, in a small village, there \
lived a doctor who treated every patient with care. I'm sure you'll see they've done it; \
don't worry. 1234567890 3.14159 2024-11-24\n\n";

/// GPT-2's printable stand-in for each byte (`bytes_to_unicode`), in byte order.
pub fn byte_chars() -> Vec<char> {
    let mut out = vec!['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        out[b as usize] = if matches!(b, 33..=126 | 161..=172 | 174..=255) {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap();
            next += 1;
            c
        };
    }
    out
}

fn pre_tokenizer() -> Sequence {
    Sequence::new(vec![
        Split::new(
            SplitPattern::Regex(QWEN2_REGEX.to_string()),
            tokenizers::SplitDelimiterBehavior::Isolated,
            false,
        )
        .unwrap()
        .into(),
        ByteLevel::new(false, false, false).into(),
    ])
}

/// (vocab in id order, merges) learned from `CORPUS`: the 256 byte symbols, then one token
/// per merge.
pub fn learn_bpe(n_merges: usize) -> (Vec<String>, Vec<(String, String)>) {
    let mut pts = PreTokenizedString::from(CORPUS);
    pre_tokenizer().pre_tokenize(&mut pts).unwrap();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (w, _, _) in pts.get_splits(OffsetReferential::Original, OffsetType::Byte) {
        *counts.entry(w.to_string()).or_default() += 1;
    }
    let mut words: Vec<(Vec<String>, usize)> = counts
        .into_iter()
        .map(|(w, c)| (w.chars().map(String::from).collect(), c))
        .collect();
    let mut vocab: Vec<String> = byte_chars().into_iter().map(String::from).collect();
    let mut merges = Vec::new();
    for _ in 0..n_merges {
        let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (syms, c) in &words {
            for p in syms.windows(2) {
                *pairs.entry((p[0].clone(), p[1].clone())).or_default() += c;
            }
        }
        // Most frequent; among equals, the first in text order (BTreeMap iterates sorted).
        let Some((best, _)) = pairs.into_iter().fold(
            None,
            |acc: Option<((String, String), usize)>, (p, c)| match acc {
                Some((_, bc)) if bc >= c => acc,
                _ => Some((p, c)),
            },
        ) else {
            break;
        };
        let merged = format!("{}{}", best.0, best.1);
        for (syms, _) in &mut words {
            let mut i = 0;
            while i + 1 < syms.len() {
                if syms[i] == best.0 && syms[i + 1] == best.1 {
                    syms[i] = merged.clone();
                    syms.remove(i + 1);
                }
                i += 1;
            }
        }
        vocab.push(merged);
        merges.push(best);
    }
    (vocab, merges)
}

/// splitmix64: a fixed generator, so weights never change with a dependency's version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arch {
    Qwen2,
    Llama,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dtype {
    BF16,
    F16,
    F32,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::BF16 => "BF16",
            Dtype::F16 => "F16",
            Dtype::F32 => "F32",
        }
    }

    /// The value as stored (so the test's reference is exactly what the file holds).
    fn round(self, v: f32) -> f32 {
        match self {
            Dtype::BF16 => bf16::from_f32(v).to_f32(),
            Dtype::F16 => f16::from_f32(v).to_f32(),
            Dtype::F32 => v,
        }
    }

    fn bytes(self, v: &[f32]) -> Vec<u8> {
        match self {
            Dtype::BF16 => v
                .iter()
                .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
                .collect(),
            Dtype::F16 => v
                .iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect(),
            Dtype::F32 => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub arch: Arch,
    pub hidden: u64,
    pub intermediate: u64,
    pub layers: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub merges: usize,
    pub seed: u64,
    pub dtype: Dtype,
    /// Shards to split the weights over (1: a single model.safetensors, no index).
    pub shards: usize,
    pub tied: bool,
    /// Merge pairs written as [a, b] lists (transformers >= 4.45) instead of "a b".
    pub pair_merges: bool,
}

/// The Qwen2-shaped model of the parity tests: rows of 256 so every k-quant applies, four
/// layers so q4_k_m's use_more_bits picks layers 2 and 3.
pub const QWEN_TINY: Spec = Spec {
    arch: Arch::Qwen2,
    hidden: 256,
    intermediate: 512,
    layers: 4,
    heads: 4,
    kv_heads: 2,
    merges: 400,
    seed: 3,
    dtype: Dtype::BF16,
    shards: 2,
    tied: false,
    pair_merges: false,
};

/// A Llama-shaped model whose rows (128, 192) fit no 256-block: every k-quant falls back.
/// (An even number of 32-blocks per row: candle's Q5_1 dot product debug-asserts that.)
pub const LLAMA_TINY: Spec = Spec {
    arch: Arch::Llama,
    hidden: 128,
    intermediate: 192,
    layers: 2,
    heads: 4,
    kv_heads: 1,
    merges: 300,
    seed: 2,
    dtype: Dtype::F16,
    shards: 1,
    tied: true,
    pair_merges: true,
};

/// Weight scales (times 1/sqrt(fan_in)): attention logits and each layer's contribution.
const QK_GAIN: f32 = 0.5;
const LAYER_GAIN: f32 = 0.5;

/// The generated folder's contents the tests compare against.
pub struct Tiny {
    /// HF name -> (shape, values as stored).
    pub weights: BTreeMap<String, (Vec<u64>, Vec<f32>)>,
    pub vocab_size: u64,
    /// Ids of <|endoftext|>, <|im_start|>, <|im_end|>, <tool_call>.
    pub specials: [u32; 4],
}

/// Writes the model folder into `dir` (created; existing files overwritten).
pub fn write(dir: &Path, spec: &Spec) -> Tiny {
    std::fs::create_dir_all(dir).unwrap();
    let (vocab, merges) = learn_bpe(spec.merges);
    let n_real = vocab.len() as u32;
    let specials = [n_real, n_real + 1, n_real + 2, n_real + 3];
    // Rounded up like Qwen's 152064 rows for 151665 tokens: the tail ids are unused.
    let vocab_size = (u64::from(n_real) + 4).next_multiple_of(64);

    let mut model_vocab = serde_json::Map::new();
    for (i, t) in vocab.iter().enumerate() {
        model_vocab.insert(t.clone(), json!(i));
    }
    let merges_json: Vec<Value> = merges
        .iter()
        .map(|(a, b)| {
            if spec.pair_merges {
                json!([a, b])
            } else {
                json!(format!("{a} {b}"))
            }
        })
        .collect();
    let added = |id: u32, text: &str, special: bool| {
        json!({"id": id, "content": text, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": special})
    };
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
                            "trim_offsets": false, "use_regex": false});
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            added(specials[0], "<|endoftext|>", true),
            added(specials[1], "<|im_start|>", true),
            added(specials[2], "<|im_end|>", true),
            added(specials[3], "<tool_call>", false),
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": false},
            byte_level.clone()
        ]},
        "post_processor": byte_level.clone(),
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": model_vocab, "merges": merges_json}
    });
    write_json(&dir.join("tokenizer.json"), &tokenizer);
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "add_prefix_space": false,
            "bos_token": null,
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": false,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "model_max_length": 2048,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": false,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": null
        }),
    );
    let (arch_name, model_type) = match spec.arch {
        Arch::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        Arch::Llama => ("LlamaForCausalLM", "llama"),
    };
    write_json(
        &dir.join("config.json"),
        &json!({
            "architectures": [arch_name],
            "model_type": model_type,
            "bos_token_id": specials[0],
            "eos_token_id": specials[0],
            "hidden_act": "silu",
            "hidden_size": spec.hidden,
            "intermediate_size": spec.intermediate,
            "max_position_embeddings": 2048,
            "num_attention_heads": spec.heads,
            "num_hidden_layers": spec.layers,
            "num_key_value_heads": spec.kv_heads,
            "rms_norm_eps": 1e-6,
            "rope_scaling": null,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": spec.tied,
            "torch_dtype": match spec.dtype { Dtype::BF16 => "bfloat16", Dtype::F16 => "float16", Dtype::F32 => "float32" },
            "vocab_size": vocab_size
        }),
    );
    write_json(
        &dir.join("generation_config.json"),
        &json!({"bos_token_id": specials[0], "eos_token_id": [specials[2], specials[0]],
                "do_sample": false}),
    );

    // Weights: uniform, scaled so each layer's contribution is of the order of its input
    // and the logits spread widely (decisive greedy picks; see tests/quantize.rs).
    let (h, ff, v) = (spec.hidden, spec.intermediate, vocab_size);
    let kv = spec.kv_heads * (h / spec.heads);
    let mut rng = Rng::new(spec.seed);
    let mut weights = BTreeMap::new();
    let mut add = |name: String, shape: Vec<u64>, scale: f32, offset: f32, rng: &mut Rng| {
        let n: u64 = shape.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|_| spec.dtype.round(offset + scale * rng.uniform()))
            .collect();
        weights.insert(name, (shape, vals));
    };
    let inv = |fan_in: u64| 1.0 / (fan_in as f32).sqrt();
    add(
        "model.embed_tokens.weight".into(),
        vec![v, h],
        1.0,
        0.0,
        &mut rng,
    );
    let (qk, lin, down) = (QK_GAIN * inv(h), LAYER_GAIN * inv(h), LAYER_GAIN * inv(ff));
    for i in 0..spec.layers {
        // (name, shape, scale, offset): norms around 1, projections around 0.
        let mut tensors = vec![
            ("input_layernorm.weight", vec![h], 0.1, 1.0),
            ("self_attn.q_proj.weight", vec![h, h], qk, 0.0),
            ("self_attn.k_proj.weight", vec![kv, h], qk, 0.0),
            ("self_attn.v_proj.weight", vec![kv, h], lin, 0.0),
        ];
        if spec.arch == Arch::Qwen2 {
            tensors.extend([
                ("self_attn.q_proj.bias", vec![h], 0.1, 0.0),
                ("self_attn.k_proj.bias", vec![kv], 0.1, 0.0),
                ("self_attn.v_proj.bias", vec![kv], 0.1, 0.0),
            ]);
        }
        tensors.extend([
            ("self_attn.o_proj.weight", vec![h, h], lin, 0.0),
            ("post_attention_layernorm.weight", vec![h], 0.1, 1.0),
            ("mlp.gate_proj.weight", vec![ff, h], lin, 0.0),
            ("mlp.up_proj.weight", vec![ff, h], lin, 0.0),
            ("mlp.down_proj.weight", vec![h, ff], down, 0.0),
        ]);
        for (name, shape, scale, offset) in tensors {
            add(
                format!("model.layers.{i}.{name}"),
                shape,
                scale,
                offset,
                &mut rng,
            );
        }
    }
    add("model.norm.weight".into(), vec![h], 0.1, 1.0, &mut rng);
    if !spec.tied {
        add(
            "lm_head.weight".into(),
            vec![v, h],
            4.0 * inv(h) * 4.0,
            0.0,
            &mut rng,
        );
    }

    // Shards: tensors in name order, split into `shards` runs.
    let names: Vec<&String> = weights.keys().collect();
    let per = names.len().div_ceil(spec.shards.max(1));
    let mut weight_map = serde_json::Map::new();
    for (s, group) in names.chunks(per).enumerate() {
        let file = if spec.shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", s + 1, spec.shards)
        };
        let tensors: Vec<(&str, &Vec<u64>, &Vec<f32>)> = group
            .iter()
            .map(|n| (n.as_str(), &weights[*n].0, &weights[*n].1))
            .collect();
        write_safetensors(&dir.join(&file), spec.dtype, &tensors);
        for (n, _, _) in &tensors {
            weight_map.insert(n.to_string(), json!(file));
        }
    }
    let index = dir.join("model.safetensors.index.json");
    if spec.shards > 1 {
        write_json(&index, &json!({"metadata": {}, "weight_map": weight_map}));
    } else {
        let _ = std::fs::remove_file(index);
    }
    Tiny {
        weights,
        vocab_size,
        specials,
    }
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// A safetensors file: `u64 n | JSON header (space-padded to 8 bytes) | data`.
pub fn write_safetensors(path: &Path, dtype: Dtype, tensors: &[(&str, &Vec<u64>, &Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, vals) in tensors {
        let bytes = dtype.bytes(vals);
        header.insert(
            name.to_string(),
            json!({"dtype": dtype.name(), "shape": shape,
                   "data_offsets": [data.len(), data.len() + bytes.len()]}),
        );
        data.extend_from_slice(&bytes);
    }
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut h = serde_json::to_vec(&Value::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}
