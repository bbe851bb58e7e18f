//! Tokenizer built from GGUF metadata vs llama.cpp's token ids (fixture recorded by
//! scripts/llama_reference.py).

// Reads model files from disk: native only (wasm32 has no filesystem, and FileSource).
#![cfg(not(target_arch = "wasm32"))]

use futures::executor::block_on;
use m1_engine::gguf::{read_header, FileSource};
use m1_engine::tokenizer::{StreamDecoder, Tokenizer};
use serde_json::Value;

mod common;
use common::{fixture, ids, test_model, QWEN, SMOLLM};

fn load(name: &str) -> Option<(Tokenizer, Value)> {
    let path = test_model(name)?;
    let fx = fixture()?;
    let mut src = FileSource::open(&path).unwrap();
    let header = block_on(read_header(&mut src)).unwrap();
    let t = std::time::Instant::now();
    let tok = Tokenizer::from_metadata(&header.metadata).unwrap();
    eprintln!("{name}: tokenizer built in {:?}", t.elapsed());
    Some((tok, fx["models"][name].clone()))
}

/// Every prompt and tricky text of the fixture tokenizes to llama.cpp's ids.
fn check_against_llama_cpp(name: &str) {
    let Some((mut tok, model)) = load(name) else {
        return;
    };
    let mut failures = Vec::new();
    let mut n = 0;
    for section in ["prompts", "tricky"] {
        for (key, case) in model[section].as_object().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want = ids(&case["ids"]);
            let got = tok.encode(text, true).unwrap();
            n += 1;
            if got != want {
                failures.push(format!(
                    "{section}/{key} {text:?}\n  ours:      {got:?}\n  llama.cpp: {want:?}"
                ));
            }
            // Decoding the ids gives the text back (byte-level BPE is lossless).
            let back: Vec<u8> = got
                .iter()
                .flat_map(|&id| tok.token_bytes(id).to_vec())
                .collect();
            assert_eq!(
                String::from_utf8_lossy(&back),
                text,
                "{section}/{key} round trip"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {n} texts differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{name}: {n} texts match llama.cpp");
}

#[test]
fn qwen2_ids_match_llama_cpp() {
    check_against_llama_cpp(QWEN);
}

#[test]
fn smollm2_ids_match_llama_cpp() {
    check_against_llama_cpp(SMOLLM);
}

#[test]
fn qwen2_special_tokens_and_metadata() {
    let Some((mut tok, model)) = load(QWEN) else {
        return;
    };
    assert_eq!(tok.pre_tokenizer(), "qwen2");
    assert!(!tok.add_bos());
    assert_eq!(tok.token_id("<|im_start|>"), Some(151_644));
    assert_eq!(tok.token_id("<|im_end|>"), Some(151_645));
    assert_eq!(tok.token_id("<|endoftext|>"), Some(151_643));
    assert_eq!(tok.encode("<|im_start|>", true).unwrap(), [151_644]);
    assert_eq!(tok.eos(), Some(151_645));
    assert_eq!(model["eos"].as_u64(), Some(151_645));
    assert!(tok.is_eog(151_645) && tok.is_eog(151_643) && !tok.is_eog(151_644));
    assert!(tok.is_control(151_644));
    assert_eq!(tok.token_bytes(151_644), b"<|im_start|>");
    assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
    // Untrusted text: the control token is spelled out, not injected.
    let plain = tok.encode("<|im_start|>", false).unwrap();
    assert!(plain.len() > 1 && !plain.contains(&151_644), "{plain:?}");
    // ...but user-defined tokens are still matched, as llama.cpp does.
    assert_eq!(tok.encode("<tool_call>", false).unwrap(), [151_657]);
    assert_eq!(tok.decode(&plain, false), "<|im_start|>");
}

#[test]
fn smollm2_special_tokens() {
    let Some((mut tok, model)) = load(SMOLLM) else {
        return;
    };
    assert_eq!(tok.pre_tokenizer(), "smollm");
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(model["bos"].as_u64(), Some(1));
    assert!(!tok.add_bos());
    assert_eq!(tok.encode("<|im_start|>user", true).unwrap()[0], 1);
    assert!(tok.is_eog(2));
}

#[test]
fn stream_decoder_never_splits_a_character() {
    let text = "é 你好 👋🏽!";
    let bytes = text.as_bytes();
    // Byte by byte, the worst case for a byte-level vocabulary.
    let mut d = StreamDecoder::new();
    let mut out = String::new();
    for b in bytes {
        out.push_str(&d.push(std::slice::from_ref(b)));
    }
    out.push_str(&d.finish());
    assert_eq!(out, text);
    // Invalid bytes become U+FFFD and decoding goes on.
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
    assert_eq!(d.push(&[0xE4, 0xBD]), "");
    assert_eq!(d.push(&[0xA0]), "你");
    assert_eq!(d.push(&[0xE4]), "");
    assert_eq!(d.finish(), "\u{FFFD}");
}

#[test]
fn streamed_generation_decodes_like_the_whole() {
    let Some((tok, model)) = load(QWEN) else {
        return;
    };
    for (key, case) in model["prompts"].as_object().unwrap() {
        let greedy = ids(&case["greedy"]);
        let mut d = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &greedy {
            let piece = d.push(tok.token_bytes(id));
            streamed.push_str(&piece);
        }
        streamed.push_str(&d.finish());
        assert_eq!(streamed, tok.decode(&greedy, false), "{key}");
    }
}
