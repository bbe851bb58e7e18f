//! Writes the fuzz targets' seed inputs into `fuzz/corpus/<target>/` and the vocabularies
//! of `tokenizer_text` into `fuzz/vocab/`:
//!
//!     cargo run -p m1-fuzz --example make_seeds -- [MODELS_DIR]
//!
//! Seeds come from the real test models' headers (`MODELS_DIR`, default `.cache/models`;
//! the first few MB of each file are enough), cut to well under the 1 MB input limit (the
//! vocabulary shortened, the tensor table whole), from tiny models built here with every
//! tensor type, from the converter tests' tiny Hugging Face folder, and from hand-written
//! messages. The campaign grows the corpus from these; `cargo xtask fuzz --minimize` keeps
//! what adds coverage. Deterministic: the same inputs give the same files.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
#[path = "../../cli/tests/tiny_hf/mod.rs"]
#[allow(unused_imports)]
mod tiny_hf;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    seeds::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod seeds {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use m1_app::cache_index::{Index, PartialRecord};
    use m1_app::protocol::{
        AskSettings, CacheEntry, CpuThreads, DeviceInfo, ErrorKind, Event, GpuMemory, LoadSource,
        ModelInfo, Phase, Request, RunStats, SweepSettings, WorkerMemory,
    };
    use m1_engine::backend::Sampling;
    use m1_engine::gguf::{parse, Array, GgmlType, Header, Layout, TensorSpec, Value};
    use m1_engine::gpu::{AdapterReport, Held};
    use m1_engine::reason::{
        Event as ReasonEvent, ExtractRule, Question, StopReason, Summary, SweepEvent,
    };
    use serde_json::json;

    use super::tiny_hf;

    const QWEN: &str = "qwen2.5-coder-0.5b-instruct.gguf";
    const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";
    /// Tokens kept of a real vocabulary (plus its special tokens): every byte, the first
    /// merges, and a header of ~100 KB.
    const VOCAB_TOKENS: usize = 4096;

    pub fn main() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let models = std::env::args()
            .nth(1)
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../.cache/models"));
        let corpus = root.join("corpus");
        let out = |target: &str, name: &str, bytes: &[u8]| {
            assert!(
                bytes.len() <= m1_fuzz::MAX_INPUT,
                "{target}/{name}: {} bytes",
                bytes.len()
            );
            let dir = corpus.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };

        // Real vocabularies, cut.
        let mut vocabs = Vec::new();
        for (file, name) in [(QWEN, "qwen2"), (SMOLLM, "smollm2")] {
            let path = models.join(file);
            let Ok(bytes) = std::fs::read(&path) else {
                eprintln!(
                    "skipped {}: absent (cargo xtask fetch-models)",
                    path.display()
                );
                continue;
            };
            let header = parse(&bytes, u64::MAX).expect("a real model's header");
            let cut = cut_vocab(&header.metadata_pairs(), VOCAB_TOKENS);
            // The whole tensor table with a short vocabulary: `{arch}.vocab_size` keeps
            // the embedding's shape valid.
            let arch = header
                .metadata
                .get_str("general.architecture")
                .unwrap()
                .to_string();
            let n_vocab = header
                .metadata
                .get_str_array("tokenizer.ggml.tokens")
                .unwrap()
                .len();
            let mut md = cut.clone();
            md.push((format!("{arch}.vocab_size"), Value::U32(n_vocab as u32)));
            let other: Vec<_> = header
                .metadata_pairs()
                .into_iter()
                .filter(|(k, _)| !k.starts_with("tokenizer.") && !k.ends_with(".vocab_size"))
                .collect();
            md.extend(other.iter().cloned());
            let table = header_only(&md, &header);
            out("gguf", &format!("{name}-header.gguf"), &table);
            let vocab = gguf(&cut, &[], &[]);
            std::fs::write(root.join(format!("vocab/{name}.gguf")), &vocab).unwrap();
            let short = cut_vocab(&header.metadata_pairs(), 300);
            out(
                "tokenizer",
                &format!("{name}.gguf"),
                &with_text(&gguf(&short, &[], &[])),
            );
            vocabs.push(short);
        }

        // The converter tests' tiny Hugging Face folders, and the GGUF they convert to.
        let tmp = std::env::temp_dir().join(format!("m1-fuzz-seeds-{}", std::process::id()));
        for (spec, name) in [
            (tiny_hf::QWEN_TINY, "qwen2"),
            (tiny_hf::LLAMA_TINY, "llama"),
        ] {
            let dir = tmp.join(name);
            tiny_hf::write(&dir, &spec);
            let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
            let mut folder = read("config.json");
            folder.push(0);
            folder.extend(read("tokenizer.json"));
            folder.push(0);
            folder.extend(read("tokenizer_config.json"));
            out("hf_folder", &format!("tiny-{name}"), &folder);
            let gguf_path = tmp.join(format!("{name}.gguf"));
            m1_cli::quantize::quantize(
                &m1_cli::quantize::Options {
                    input: dir.clone(),
                    output: gguf_path.clone(),
                    file_type: m1_engine::quantize::FileType::Q8_0,
                    threads: 1,
                },
                &mut |_| {},
            )
            .unwrap();
            let bytes = std::fs::read(&gguf_path).unwrap();
            let header = parse(&bytes, bytes.len() as u64).unwrap();
            let tok: Vec<_> = header
                .metadata_pairs()
                .into_iter()
                .filter(|(k, _)| k.starts_with("tokenizer."))
                .collect();
            let vocab = gguf(&tok, &[], &[]);
            out(
                "tokenizer",
                &format!("tiny-{name}.gguf"),
                &with_text(&vocab),
            );
            if name == "qwen2" {
                std::fs::write(root.join("vocab/tiny-qwen2.gguf"), &vocab).unwrap();
            }
            out(
                "gguf",
                &format!("tiny-{name}-q8_0-header.gguf"),
                &header_only(&header.metadata_pairs(), &header),
            );
        }
        let _ = std::fs::remove_dir_all(&tmp);

        for (name, bytes) in tiny_models(vocabs.first()) {
            out("gguf", &name, &bytes);
        }
        for (name, bytes) in edge_ggufs() {
            out("gguf", &name, &bytes);
        }
        for (name, bytes) in tokenizer_variants(vocabs.first()) {
            out("tokenizer", &name, &bytes);
        }
        for (i, text) in TEXTS.iter().enumerate() {
            for pick in 0..3u8 {
                let mut input = vec![pick];
                input.extend_from_slice(text);
                out("tokenizer_text", &format!("text-{i}-vocab-{pick}"), &input);
            }
        }
        for (name, bytes) in safetensors_seeds() {
            out("safetensors", &name, &bytes);
        }
        for (name, bytes) in hf_variants() {
            out("hf_folder", &name, &bytes);
        }
        for (name, text) in question_seeds() {
            out("questions", &name, text.as_bytes());
        }
        for (name, text) in protocol_seeds() {
            out("protocol", &name, text.as_bytes());
        }
        for (name, text) in index_seeds() {
            out("cache_index", &name, text.as_bytes());
        }
        eprintln!("seeds written under {}", corpus.display());
    }

    trait Pairs {
        fn metadata_pairs(&self) -> Vec<(String, Value)>;
    }

    impl Pairs for Header {
        fn metadata_pairs(&self) -> Vec<(String, Value)> {
            self.metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        }
    }

    /// A GGUF of `md` and `tensors` with `data` (zeros where short).
    fn gguf(md: &[(String, Value)], tensors: &[TensorSpec], data: &[u8]) -> Vec<u8> {
        let layout = Layout::new(md, tensors.to_vec()).unwrap();
        let mut out = Vec::new();
        let mut w = layout.start(&mut out).unwrap();
        let mut at = 0;
        for i in 0..tensors.len() {
            let n = layout.tensor_size(i) as usize;
            let mut bytes = vec![0u8; n];
            for (j, b) in bytes.iter_mut().enumerate() {
                *b = data.get(at + j).copied().unwrap_or(0);
            }
            at += n;
            w.write(i, &bytes).unwrap();
        }
        w.finish().unwrap();
        out
    }

    /// The header (metadata `md` and `h`'s tensor table) without the tensor data.
    fn header_only(md: &[(String, Value)], h: &Header) -> Vec<u8> {
        let specs: Vec<TensorSpec> = h
            .tensors
            .iter()
            .map(|t| TensorSpec {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ggml_type: t.ggml_type,
            })
            .collect();
        let layout = Layout::new(md, specs).unwrap();
        let mut out = Vec::new();
        layout.start(&mut out).unwrap();
        out
    }

    /// A text after the vocabulary: what the `tokenizer` target encodes.
    fn with_text(vocab: &[u8]) -> Vec<u8> {
        let mut v = vocab.to_vec();
        v.extend_from_slice(TEXTS[0]);
        v
    }

    const TEXTS: &[&[u8]] = &[
        "Which vitamin deficiency causes scurvy?\nA. Vitamin C\nB. Iron 123 4567 3.14\n\n  <|im_start|>think\n<|im_end|><tool_call>é中文😀\r\n\ttabs  ".as_bytes(),
        b"def f(x):\n    return x ** 2  # don't; I'm sure they've done it, we'll see\n",
        "Ünïcödé ﬁ ǅ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{202e}rtl\u{202c} \u{200b}zero-width\u{0}nul \u{7f} <|endoftext|><|endoftext|>".as_bytes(),
        b"\xff\xfe invalid \xc3 utf-8 \xe2\x82 cut \xf0\x9f\x98",
        b"                                                                        \n\n\n\n\n\n1111111111111111111111",
        b"",
    ];

    /// The tokenizer keys of `md`, the vocabulary cut to its first `keep` tokens plus its
    /// special (non-normal) tokens and every byte, the merges to those it can still use.
    fn cut_vocab(md: &[(String, Value)], keep: usize) -> Vec<(String, Value)> {
        let get = |k: &str| md.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let Some(Value::Array(Array::String(tokens))) = get("tokenizer.ggml.tokens") else {
            panic!("no tokens")
        };
        let types: Vec<i32> = match get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a.to_i64_vec().unwrap().iter().map(|&t| t as i32).collect(),
            _ => vec![1; tokens.len()],
        };
        let bytes: HashSet<String> = tiny_hf::byte_chars()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mut kept: Vec<usize> = (0..tokens.len())
            .filter(|&i| i < keep || types[i] != 1 || bytes.contains(&tokens[i]))
            .collect();
        kept.dedup();
        let new_id = |old: u64| kept.iter().position(|&i| i as u64 == old).map(|p| p as u32);
        let kept_text: HashSet<&str> = kept.iter().map(|&i| tokens[i].as_str()).collect();
        let mut out = Vec::new();
        for (k, v) in md.iter().filter(|(k, _)| k.starts_with("tokenizer.")) {
            let v = match k.as_str() {
                "tokenizer.ggml.tokens" => Value::Array(Array::String(
                    kept.iter().map(|&i| tokens[i].clone()).collect(),
                )),
                "tokenizer.ggml.token_type" => {
                    Value::Array(Array::I32(kept.iter().map(|&i| types[i]).collect()))
                }
                "tokenizer.ggml.merges" => {
                    let Value::Array(Array::String(m)) = v else {
                        panic!()
                    };
                    Value::Array(Array::String(
                        m.iter()
                            .filter(|m| {
                                let Some((a, b)) = m.split_once(' ') else {
                                    return false;
                                };
                                kept_text.contains(a)
                                    && kept_text.contains(b)
                                    && kept_text.contains(format!("{a}{b}").as_str())
                            })
                            .cloned()
                            .collect(),
                    ))
                }
                key if key.ends_with("_token_id") => match v.as_u64().and_then(new_id) {
                    Some(id) => Value::U32(id),
                    None => continue,
                },
                _ => v.clone(),
            };
            out.push((k.clone(), v));
        }
        out
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    fn kv(k: &str, v: Value) -> (String, Value) {
        (k.to_string(), v)
    }

    /// Complete small models of both architectures, every tensor type among them.
    fn tiny_models(vocab: Option<&Vec<(String, Value)>>) -> Vec<(String, Vec<u8>)> {
        use GgmlType::*;
        let mut out = Vec::new();
        // (name, arch, n_embd, n_ff, n_head, n_kv, n_vocab, matrix types, tied)
        let cases = [
            ("qwen2-f32", "qwen2", 32, 64, 2, 1, 32, [F32; 7], false),
            (
                "llama-block32",
                "llama",
                32,
                64,
                2,
                2,
                32,
                [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, F16],
                true,
            ),
            (
                "qwen2-halfs",
                "qwen2",
                32,
                32,
                4,
                2,
                16,
                [BF16, F16, BF16, F16, BF16, F16, F32],
                false,
            ),
            (
                "qwen2-kquants",
                "qwen2",
                256,
                256,
                4,
                1,
                8,
                [Q4K, Q5K, Q6K, Q2K, Q3K, Q8K, Q4K],
                false,
            ),
        ];
        for (name, arch, e, ff, h, kv_h, v, types, tied) in cases {
            let hd = e / h;
            let q = h * hd;
            let kvd = kv_h * hd;
            let mut md = vec![
                kv("general.architecture", s(arch)),
                kv("general.name", s(&format!("m1-fuzz-{name}"))),
                kv(&format!("{arch}.block_count"), Value::U32(1)),
                kv(&format!("{arch}.context_length"), Value::U32(128)),
                kv(&format!("{arch}.embedding_length"), Value::U32(e as u32)),
                kv(
                    &format!("{arch}.feed_forward_length"),
                    Value::U32(ff as u32),
                ),
                kv(
                    &format!("{arch}.attention.head_count"),
                    Value::U32(h as u32),
                ),
                kv(
                    &format!("{arch}.attention.head_count_kv"),
                    Value::U32(kv_h as u32),
                ),
                kv(&format!("{arch}.rope.freq_base"), Value::F32(1e6)),
                kv(
                    &format!("{arch}.attention.layer_norm_rms_epsilon"),
                    Value::F32(1e-6),
                ),
                kv(&format!("{arch}.vocab_size"), Value::U32(v as u32)),
                kv("general.alignment", Value::U32(32)),
            ];
            if name == "qwen2-f32" {
                // The optional keys, so the fuzzer meets them: explicit head width and
                // rotary dimensions, rope scaling, and a vocabulary.
                md.push(kv(
                    &format!("{arch}.attention.key_length"),
                    Value::U32(hd as u32),
                ));
                md.push(kv(
                    &format!("{arch}.rope.dimension_count"),
                    Value::U32(hd as u32),
                ));
                md.push(kv(&format!("{arch}.rope.scaling.type"), s("none")));
                md.extend(vocab.into_iter().flatten().cloned());
            }
            let t = |name: &str, dims: &[u64], ty: GgmlType| TensorSpec {
                name: name.to_string(),
                dims: dims.to_vec(),
                ggml_type: ty,
            };
            let (e, ff, q, kvd, v) = (e as u64, ff as u64, q as u64, kvd as u64, v as u64);
            let mut tensors = vec![
                t("token_embd.weight", &[e, v], types[6]),
                t("blk.0.attn_norm.weight", &[e], F32),
                t("blk.0.attn_q.weight", &[e, q], types[0]),
                t("blk.0.attn_k.weight", &[e, kvd], types[1]),
                t("blk.0.attn_v.weight", &[e, kvd], types[2]),
                t("blk.0.attn_output.weight", &[q, e], types[3]),
                t("blk.0.ffn_norm.weight", &[e], F32),
                t("blk.0.ffn_gate.weight", &[e, ff], types[4]),
                t("blk.0.ffn_up.weight", &[e, ff], types[5]),
                t("blk.0.ffn_down.weight", &[ff, e], types[0]),
                t("output_norm.weight", &[e], F32),
            ];
            if arch == "qwen2" {
                tensors.push(t("blk.0.attn_q.bias", &[q], F32));
                tensors.push(t("blk.0.attn_k.bias", &[kvd], F32));
                tensors.push(t("blk.0.attn_v.bias", &[kvd], F32));
            }
            if !tied {
                tensors.push(t("output.weight", &[e, v], types[6]));
            }
            let mut rng = tiny_hf::Rng::new(7);
            let data: Vec<u8> = (0..1 << 20).map(|_| rng.next_u64() as u8).collect();
            out.push((format!("tiny-{name}.gguf"), gguf(&md, &tensors, &data)));
        }
        out
    }

    fn raw_header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut h = b"GGUF".to_vec();
        h.extend(version.to_le_bytes());
        h.extend(n_tensors.to_le_bytes());
        h.extend(n_kv.to_le_bytes());
        h
    }

    /// Headers at the edges of the format: every value type, nested arrays, version 2,
    /// alignment, and the giant counts and lengths the reader must refuse without
    /// allocating.
    fn edge_ggufs() -> Vec<(String, Vec<u8>)> {
        let all_types = vec![
            kv("u8", Value::U8(1)),
            kv("i8", Value::I8(-1)),
            kv("u16", Value::U16(2)),
            kv("i16", Value::I16(-2)),
            kv("u32", Value::U32(3)),
            kv("i32", Value::I32(-3)),
            kv("f32", Value::F32(0.5)),
            kv("bool", Value::Bool(true)),
            kv("string", s("text")),
            kv("u64", Value::U64(4)),
            kv("i64", Value::I64(-4)),
            kv("f64", Value::F64(0.25)),
            kv("a.u8", Value::Array(Array::U8(vec![1, 2]))),
            kv("a.i8", Value::Array(Array::I8(vec![-1]))),
            kv("a.u16", Value::Array(Array::U16(vec![1]))),
            kv("a.i16", Value::Array(Array::I16(vec![-1]))),
            kv("a.u32", Value::Array(Array::U32(vec![1]))),
            kv("a.i32", Value::Array(Array::I32(vec![-1]))),
            kv("a.f32", Value::Array(Array::F32(vec![1.5]))),
            kv("a.bool", Value::Array(Array::Bool(vec![true, false]))),
            kv(
                "a.string",
                Value::Array(Array::String(vec!["x".into(), "".into()])),
            ),
            kv("a.u64", Value::Array(Array::U64(vec![1]))),
            kv("a.i64", Value::Array(Array::I64(vec![-1]))),
            kv("a.f64", Value::Array(Array::F64(vec![1.5]))),
            kv(
                "a.nested",
                Value::Array(Array::Array(vec![Array::Array(vec![Array::U8(vec![1])])])),
            ),
        ];
        let one = TensorSpec {
            name: "t".into(),
            dims: vec![32, 2],
            ggml_type: GgmlType::Q8_0,
        };
        let mut out = vec![
            ("empty-v3.gguf".to_string(), raw_header(3, 0, 0)),
            ("empty-v2.gguf".to_string(), raw_header(2, 0, 0)),
            (
                "all-value-types.gguf".to_string(),
                gguf(&all_types, std::slice::from_ref(&one), &[]),
            ),
            (
                "aligned-4096.gguf".to_string(),
                gguf(&[kv("general.alignment", Value::U32(4096))], &[one], &[]),
            ),
        ];
        // 2^40 tensors, 2^40 keys, a 4 GB key, a 2^60-element array.
        out.push(("claims-2p40-tensors.gguf".into(), raw_header(3, 1 << 40, 0)));
        out.push(("claims-2p40-keys.gguf".into(), raw_header(3, 0, 1 << 40)));
        let mut big_key = raw_header(3, 0, 1);
        big_key.extend((4u64 << 30).to_le_bytes());
        big_key.extend(b"key");
        out.push(("claims-4gb-key.gguf".into(), big_key));
        let mut big_array = raw_header(3, 0, 1);
        big_array.extend(1u64.to_le_bytes());
        big_array.extend(b"a");
        big_array.extend(9u32.to_le_bytes());
        big_array.extend(8u32.to_le_bytes());
        big_array.extend((1u64 << 60).to_le_bytes());
        out.push(("claims-2p60-strings.gguf".into(), big_array));
        out
    }

    /// Hostile takes on one vocabulary: each pre-tokenizer, ids at and past the end, no
    /// token types, every token special, empty tokens, merges that do not split.
    fn tokenizer_variants(vocab: Option<&Vec<(String, Value)>>) -> Vec<(String, Vec<u8>)> {
        let base: Vec<(String, Value)> = match vocab {
            Some(v) => v.clone(),
            None => vec![
                kv("tokenizer.ggml.model", s("gpt2")),
                kv(
                    "tokenizer.ggml.tokens",
                    Value::Array(Array::String(vec!["a".into(), "b".into(), "ab".into()])),
                ),
                kv(
                    "tokenizer.ggml.merges",
                    Value::Array(Array::String(vec!["a b".into()])),
                ),
            ],
        };
        let n = match &base
            .iter()
            .find(|(k, _)| k == "tokenizer.ggml.tokens")
            .unwrap()
            .1
        {
            Value::Array(a) => a.len(),
            _ => unreachable!(),
        };
        let with = |changes: &[(String, Option<Value>)]| {
            let mut md = base.clone();
            for (k, v) in changes {
                md.retain(|(key, _)| key != k);
                if let Some(v) = v {
                    md.push((k.clone(), v.clone()));
                }
            }
            with_text(&gguf(&md, &[], &[]))
        };
        let set = |k: &str, v: Value| (k.to_string(), Some(v));
        let drop = |k: &str| (k.to_string(), None);
        let mut out = Vec::new();
        for pre in ["qwen2", "llama-bpe", "smollm", "gpt-2", "default", ""] {
            out.push((
                format!("pre-{pre}.gguf"),
                with(&[set("tokenizer.ggml.pre", s(pre))]),
            ));
        }
        out.push((
            "no-pre-no-types.gguf".into(),
            with(&[
                drop("tokenizer.ggml.pre"),
                drop("tokenizer.ggml.token_type"),
            ]),
        ));
        out.push((
            "no-merges.gguf".into(),
            with(&[drop("tokenizer.ggml.merges")]),
        ));
        out.push((
            "ids-at-end.gguf".into(),
            with(&[
                set("tokenizer.ggml.bos_token_id", Value::U32(n as u32 - 1)),
                set("tokenizer.ggml.eos_token_id", Value::U64(n as u64 - 1)),
                set("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            ]),
        ));
        out.push((
            "bos-past-end.gguf".into(),
            with(&[set("tokenizer.ggml.bos_token_id", Value::U32(n as u32))]),
        ));
        out.push((
            "all-control.gguf".into(),
            with(&[set(
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(vec![3; n])),
            )]),
        ));
        out.push((
            "all-user-defined.gguf".into(),
            with(&[set(
                "tokenizer.ggml.token_type",
                Value::Array(Array::U8(vec![4; n])),
            )]),
        ));
        let mut odd = vec![
            String::new(),
            " ".into(),
            "<0x41>".into(),
            "<|im_start|>".into(),
            "<|im_end|>".into(),
            "Ġ".into(),
            "ĠĠ".into(),
        ];
        odd.extend(tiny_hf::byte_chars().iter().map(|c| c.to_string()));
        let odd_types: Vec<i32> = (0..odd.len())
            .map(|i| [0, 1, 6, 3, 3, 5, 2][i.min(6)])
            .collect();
        out.push((
            "odd-tokens.gguf".into(),
            with_text(&gguf(
                &[
                    kv("tokenizer.ggml.model", s("gpt2")),
                    kv("tokenizer.ggml.pre", s("qwen2")),
                    kv("tokenizer.ggml.tokens", Value::Array(Array::String(odd))),
                    kv(
                        "tokenizer.ggml.token_type",
                        Value::Array(Array::I32(odd_types)),
                    ),
                    kv(
                        "tokenizer.ggml.merges",
                        Value::Array(Array::String(vec![
                            "Ġ Ġ".into(),
                            " ".into(),
                            "".into(),
                            "a".into(),
                            "Ġ Ġ Ġ".into(),
                        ])),
                    ),
                    kv("tokenizer.ggml.eos_token_id", Value::I32(4)),
                    kv("tokenizer.chat_template", s("{{ x }}")),
                ],
                &[],
                &[],
            )),
        ));
        out
    }

    fn safetensors_file(header: &serde_json::Value, data_len: usize) -> Vec<u8> {
        let text = serde_json::to_vec(header).unwrap();
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend(text);
        let mut rng = tiny_hf::Rng::new(1);
        out.extend((0..data_len).map(|_| rng.next_u64() as u8));
        out
    }

    fn safetensors_seeds() -> Vec<(String, Vec<u8>)> {
        let t = |dtype: &str, shape: &[u64], begin: u64, end: u64| json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, end]});
        vec![
            (
                "tiny-bf16".into(),
                safetensors_file(
                    &json!({
                        "__metadata__": {"format": "pt"},
                        "model.embed_tokens.weight": t("BF16", &[8, 4], 0, 64),
                        "model.layers.0.self_attn.q_proj.weight": t("BF16", &[4, 4], 64, 96),
                        "model.layers.0.self_attn.q_proj.bias": t("BF16", &[4], 96, 104),
                        "model.norm.weight": t("BF16", &[4], 104, 112),
                    }),
                    112,
                ),
            ),
            (
                "f16-f32-scalar-empty".into(),
                safetensors_file(
                    &json!({
                        "a": t("F16", &[3, 2], 0, 12),
                        "b": t("F32", &[2, 2, 2], 12, 44),
                        "scalar": t("F32", &[], 44, 48),
                        "empty": t("F32", &[0, 5], 48, 48),
                    }),
                    48,
                ),
            ),
            (
                "unsupported-dtype".into(),
                safetensors_file(&json!({"i": t("I64", &[1], 0, 8)}), 8),
            ),
            (
                "overflowing-shape".into(),
                safetensors_file(&json!({"x": t("F32", &[1 << 62, 1 << 62], 0, 0)}), 0),
            ),
        ]
    }

    fn hf_variants() -> Vec<(String, Vec<u8>)> {
        let config = json!({
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "max_position_embeddings": 512, "vocab_size": 16,
            "tie_word_embeddings": true, "bos_token_id": 13, "eos_token_id": [14, 15],
        });
        let tokenizer = json!({
            "added_tokens": [
                {"id": 13, "content": "<|endoftext|>", "special": true},
                {"id": 14, "content": "<|im_end|>", "special": false},
                {"id": 15, "content": "<tool_call>", "special": false},
            ],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|endoftext|>"}}, {"Sequence": {"id": "A"}}]},
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġa": 4},
                      "merges": ["a b", ["Ġ", "a"]]},
        });
        let tok_config = json!({
            "bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|im_end|>",
            "add_bos_token": false,
            "chat_template": [{"name": "default", "template": "{{ x }}"}, {"name": "tool_use", "template": "{{ y }}"}],
        });
        let join = |parts: &[&serde_json::Value]| {
            let mut out = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(0);
                }
                out.extend(serde_json::to_vec(p).unwrap());
            }
            out
        };
        let mut llama = config.clone();
        llama["architectures"] = json!(["LlamaForCausalLM"]);
        vec![
            (
                "handmade-qwen2".into(),
                join(&[&config, &tokenizer, &tok_config]),
            ),
            (
                "handmade-no-tokenizer-config".into(),
                join(&[&config, &tokenizer]),
            ),
            (
                "llama-no-tokenizer-config".into(),
                join(&[&llama, &tokenizer]),
            ),
        ]
    }

    fn question_seeds() -> Vec<(String, String)> {
        let pubmedqa = std::fs::read_to_string("/work/shared/data/pubmedqa-test.jsonl")
            .ok()
            .map(|t| t.lines().take(3).collect::<Vec<_>>().join("\n"));
        let mut out = vec![
            (
                "medqa".to_string(),
                [
                    r#"{"question":"Which drug?","options":{"A":"Aspirin","B":"Heparin","C":"Warfarin"},"answer_idx":"B","answer":"Heparin"}"#,
                    "",
                    r#"{"question":"Q?","options":["x","y"],"answer":"y"}"#,
                    r#"{"question":"Q?","context":"abstract","options":{"A":"yes","B":"no"},"answer":7}"#,
                    r#"{"question":"free form"  ,  "options":[]}"#,
                ]
                .join("\n"),
            ),
            ("bad-answer".into(), r#"{"question":"Q?","options":["x","y"],"answer_idx":"E"}"#.into()),
            ("dup-letter".into(), r#"{"question":"Q?","options":{"A":"x","A":"y"}}"#.into()),
            ("27-options".into(), format!(r#"{{"question":"Q?","options":[{}]}}"#, vec!["\"o\""; 27].join(","))),
        ];
        if let Some(p) = pubmedqa {
            out.push(("pubmedqa".into(), p));
        }
        out
    }

    fn protocol_seeds() -> Vec<(String, String)> {
        let question = Question {
            question: "Which vitamin?".into(),
            context: Some("ctx".into()),
            options: vec![("A".into(), "C".into()), ("B".into(), "D".into())],
        };
        let sampling = Sampling {
            temperature: 0.7,
            top_p: 0.9,
            seed: 42,
        };
        let adapter = AdapterReport {
            name: "SwiftShader".into(),
            backend: "BrowserWebGpu".into(),
            device_type: "Cpu".into(),
            driver: "".into(),
            shader_f16: false,
            max_buffer_size: 1 << 30,
            max_storage_buffer_binding_size: 1 << 27,
            max_storage_buffers_per_shader_stage: 8,
            max_compute_workgroup_storage_size: 32768,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroups_per_dimension: 65535,
            timestamps: false,
        };
        let summary = Summary {
            stop: StopReason::Budget,
            think_stop: Some(StopReason::Natural),
            prompt_tokens: 10,
            think_tokens: 5,
            waits: 1,
            budget_used: 6,
            answer_tokens: 3,
            sampled_tokens: 9,
            thinking: "hmm".into(),
            answer_prefix: "The answer is ".into(),
            answer: "\\boxed{A}".into(),
            choice: Some("A".into()),
            choice_rule: Some(ExtractRule::Exact),
            time_to_first_token_ms: Some(12.5),
            prefill_tokens_per_s: None,
            decode_tokens_per_s: Some(5.25),
            total_ms: 100.0,
        };
        let requests = vec![
            Request::Init {
                force_cpu: true,
                force_gpu: false,
                threads: Some(2),
            },
            Request::Load {
                source: LoadSource::Url {
                    url: "https://example.org/m.gguf".into(),
                    name: "m".into(),
                    size: Some(98_362_432),
                    sha256: Some("b1".into()),
                },
                context: 4096,
            },
            Request::Load {
                source: LoadSource::Cached {
                    file: "m.gguf".into(),
                },
                context: 1,
            },
            Request::Load {
                source: LoadSource::Picked {
                    name: "p.gguf".into(),
                },
                context: 0,
            },
            Request::CancelLoad {},
            Request::Ask {
                question,
                settings: AskSettings {
                    budget: 128,
                    waits: 2,
                    min_thinking: 32,
                    max_answer_tokens: 64,
                    sampling,
                },
            },
            Request::Sweep {
                question: Question {
                    question: "Is it?".into(),
                    context: Some("An abstract.".into()),
                    options: vec![("A".into(), "yes".into()), ("B".into(), "no".into())],
                },
                settings: SweepSettings {
                    budgets: vec![0, 128, 4096],
                    waits: 1,
                    min_thinking: 64,
                    max_answer_tokens: 64,
                    sampling: Sampling::default(),
                },
            },
            Request::Stop {},
            Request::ListCache {},
            Request::DeleteCached {
                file: "m.gguf".into(),
            },
        ];
        let events = vec![
            Event::Started {},
            Event::RunStats {
                stats: RunStats {
                    decode_tokens_per_s: Some(41.5),
                    host_ms_per_token: Some(0.25),
                    dispatches_per_token: Some(245.0),
                    gpu_ms_per_token: None,
                    worker_memory: Some(1 << 27),
                    gpu_held: Some(Held {
                        buffers: 278,
                        bytes: 110_545_556,
                    }),
                },
            },
            Event::Ready {
                device: DeviceInfo::WebGpu {
                    adapter: adapter.clone(),
                },
            },
            Event::Ready {
                device: DeviceInfo::Cpu {
                    reason: "no gpu".into(),
                    adapter: Some(adapter),
                    threads: CpuThreads {
                        threads: 1,
                        note: Some("one thread: not isolated".into()),
                    },
                },
            },
            Event::Progress {
                phase: Phase::Download,
                done: 1,
                total: 2,
            },
            Event::Progress {
                phase: Phase::Verify,
                done: 2,
                total: 2,
            },
            Event::Loaded {
                model: ModelInfo {
                    name: "m".into(),
                    architecture: "qwen2".into(),
                    is_m1: true,
                    file_bytes: 5,
                    n_layers: 24,
                    context: 4096,
                    device: "CPU (WebAssembly)".into(),
                    load_ms: 1.5,
                    cached_as: Some("m.gguf".into()),
                    worker_memory: WorkerMemory {
                        before_load: 1,
                        after_load: 2,
                    },
                    gpu_memory: Some(GpuMemory {
                        weights: 3,
                        state: 4,
                    }),
                },
            },
            Event::Reason {
                event: ReasonEvent::Prompt {
                    tokens: vec![1, 2, 3],
                },
            },
            Event::Reason {
                event: ReasonEvent::Think {
                    id: 5,
                    text: "é".into(),
                },
            },
            Event::Reason {
                event: ReasonEvent::Wait {
                    index: 0,
                    text: "Wait".into(),
                },
            },
            Event::Reason {
                event: ReasonEvent::AnswerPrefix {
                    thinking_tail: "t".into(),
                    text: "a".into(),
                    budget_exhausted: true,
                },
            },
            Event::Reason {
                event: ReasonEvent::Answer {
                    id: 7,
                    text: "A".into(),
                },
            },
            Event::Reason {
                event: ReasonEvent::Done(summary),
            },
            Event::Cache {
                entries: vec![CacheEntry {
                    file: "m.gguf".into(),
                    size: 9,
                    sha256: None,
                    incomplete: Some(3),
                }],
                usage: Some(1),
                quota: None,
                notes: vec![
                    "gone.gguf was listed in the model cache but its file is missing.".into(),
                ],
            },
            Event::Sweep {
                event: SweepEvent::Cut {
                    budgets: vec![8, 16],
                    position: 93,
                    think_tokens: 8,
                    budget_used: 8,
                    thinking_tail: "a".into(),
                    text: "<|im_start|>answer\nFinal Answer:".into(),
                    budget_exhausted: false,
                },
            },
            Event::Sweep {
                event: SweepEvent::Answer {
                    budget: 8,
                    id: 425,
                    text: " B".into(),
                },
            },
            Event::Error {
                kind: ErrorKind::Network,
                message: "offline".into(),
            },
        ];
        let mut out = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            out.push((format!("request-{i}"), r.to_json()));
        }
        for (i, e) in events.iter().enumerate() {
            out.push((format!("event-{i}"), e.to_json()));
        }
        out
    }

    fn index_seeds() -> Vec<(String, String)> {
        let mut index = Index::default();
        index.keep_entry(&CacheEntry {
            file: "smollm2.gguf".into(),
            size: 98_362_432,
            sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into()),
            incomplete: None,
        });
        let mut partial = PartialRecord {
            file: "qwen.gguf".into(),
            url: "http://127.0.0.1:8080/models/qwen.gguf".into(),
            size: 491_400_064,
            covered: Vec::new(),
        };
        partial.cover(0, 8 << 20);
        partial.cover(16 << 20, 24 << 20);
        index.keep_partial(&partial);
        let full = index.to_json().unwrap();
        vec![
            ("entry-and-partial".into(), full.clone()),
            ("empty".into(), "{\"entries\":[]}".into()),
            ("truncated".into(), full[..full.len() / 2].to_string()),
            (
                "ranges-past-the-file".into(),
                r#"{"entries":[],"partials":[{"file":"a","url":"u","size":10,"covered":[[0,5],[8,20]]}]}"#.into(),
            ),
        ]
    }
}
