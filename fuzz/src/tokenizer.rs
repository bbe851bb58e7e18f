//! The tokenizer built from GGUF metadata: hostile vocabularies, merges, token types and
//! special ids ([`tokenizer`]), and encode/decode of arbitrary text on real vocabularies
//! ([`tokenizer_text`]), through both `Tokenizer` and the controller's `TextCodec`.

use std::cell::RefCell;

use m1_engine::gguf::parse;
use m1_engine::reason::{Controller, Question, ReasonConfig, Step, TextCodec, Utf8Stream};
use m1_engine::tokenizer::{StreamDecoder, Tokenizer};

/// Text encoded per input: long enough for every pre-tokenizer branch and merge chain,
/// short enough to keep the executions coming (each input encodes it three or four times).
pub const MAX_TEXT: usize = 1024;

/// The campaign's input limit for [`tokenizer`] (`-max_len`): a vocabulary of a few
/// thousand tokens is as hostile as one of 100k, and building a tokenizer costs in
/// proportion to its vocabulary (the pre-tokenizer regexes are compiled once per process),
/// so 64 KB inputs keep the executions coming.
pub const TOKENIZER_MAX_INPUT: usize = 64 << 10;

/// Input: a GGUF (its metadata holds the vocabulary; tensors are not needed and the file
/// may claim any size), then the text to encode, from the header's end.
pub fn tokenizer(data: &[u8]) {
    let Ok(header) = parse(data, u64::MAX) else {
        return;
    };
    let rest = &data[header.header_len as usize..];
    let text = String::from_utf8_lossy(&rest[..rest.len().min(MAX_TEXT)]);
    let Ok(mut tok) = Tokenizer::from_metadata(&header.metadata) else {
        return;
    };
    let script = exercise(&mut tok, &text, None);
    drive(&tok, &text, &script);
}

/// The vocabularies [`tokenizer_text`] encodes with: the real test models' (their first
/// tokens and merges, every special token; fuzz/examples/make_seeds.rs cuts them) and the
/// converter tests' tiny learned BPE, as GGUF metadata.
const VOCABS: [&[u8]; 3] = [
    include_bytes!("../vocab/qwen2.gguf"),
    include_bytes!("../vocab/smollm2.gguf"),
    include_bytes!("../vocab/tiny-qwen2.gguf"),
];

/// A tokenizer and the bytes its vocabulary has no byte-level token for.
type Known = (Tokenizer, [bool; 256]);

thread_local! {
    static TOKENIZERS: RefCell<Vec<Known>> = RefCell::new(
        VOCABS
            .iter()
            .map(|bytes| {
                let header = parse(bytes, bytes.len() as u64).expect("a committed vocabulary parses");
                let tok = Tokenizer::from_metadata(&header.metadata)
                    .expect("a committed vocabulary builds");
                let missing = missing_bytes(&tok);
                (tok, missing)
            })
            .collect(),
    );
}

/// Bytes whose GPT-2 stand-in character is not a token. Real vocabularies lack some
/// (SmolLM2 has no token for 21 bytes: six control characters and bytes that UTF-8 text
/// rarely or never holds); BPE drops such a byte, as llama.cpp does.
fn missing_bytes(tok: &Tokenizer) -> [bool; 256] {
    let mut missing = [false; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let c = if matches!(b, 33..=126 | 161..=172 | 174..=255) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).expect("U+0100..U+0143")
        };
        missing[usize::from(b)] = tok.token_id(&c.to_string()).is_none();
    }
    missing
}

/// Input: one byte choosing the vocabulary, then the text. Byte-level BPE is lossless but
/// for bytes the vocabulary has no token for, so the ids must give the text back exactly,
/// less those bytes.
pub fn tokenizer_text(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(&text[..text.len().min(MAX_TEXT)]);
    TOKENIZERS.with_borrow_mut(|all| {
        let n = all.len();
        let (tok, missing) = &mut all[usize::from(pick) % n];
        exercise(tok, &text, Some(&*missing));
    });
}

/// Encodes `text` both ways and decodes it back; returns the ids seen, and the controller's
/// stop ids, for [`drive`].
fn exercise(tok: &mut Tokenizer, text: &str, lossless: Option<&[bool; 256]>) -> Vec<u32> {
    let n = tok.vocab_size();
    let mut script = Vec::new();
    for parse_special in [false, true] {
        let ids = match tok.encode(text, parse_special) {
            Ok(ids) => ids,
            Err(e) => {
                assert!(lossless.is_none(), "encoding {text:?} failed: {e}");
                continue;
            }
        };
        for &id in &ids {
            assert!(
                (id as usize) < n,
                "id {id} outside the {n}-token vocabulary"
            );
            let _ = (tok.is_control(id), tok.is_eog(id), tok.token_type(id));
        }
        let bos = usize::from(tok.add_bos() && tok.bos().is_some());
        let bytes: Vec<u8> = ids[bos..]
            .iter()
            .flat_map(|&id| Tokenizer::token_bytes(tok, id).to_vec())
            .collect();
        if let Some(missing) = lossless {
            let expected: Vec<u8> = text.bytes().filter(|&b| !missing[usize::from(b)]).collect();
            assert!(
                bytes == expected,
                "ids {ids:?} (parse_special {parse_special}) give {:?}, not the text {text:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let whole = tok.decode(&ids, false);
        let _ = tok.decode(&ids, true);
        let (mut stream, mut utf8) = (StreamDecoder::new(), Utf8Stream::new());
        let (mut a, mut b) = (String::new(), String::new());
        for &id in &ids {
            a.push_str(&stream.push(Tokenizer::token_bytes(tok, id)));
            b.push_str(&utf8.push(Tokenizer::token_bytes(tok, id)));
        }
        a.push_str(&stream.finish());
        b.push_str(&utf8.finish());
        assert_eq!(a, whole, "StreamDecoder differs from decoding the whole");
        assert_eq!(b, whole, "Utf8Stream differs from decoding the whole");
        script.extend_from_slice(&ids);
    }

    // The controller's view: specials parsed, no BOS.
    let codec = TextCodec::encode(&*tok, text);
    if let (Ok(codec), Ok(full)) = (&codec, tok.encode(text, true)) {
        let bos = usize::from(tok.add_bos() && tok.bos().is_some());
        assert_eq!(
            codec[..],
            full[bos..],
            "TextCodec::encode differs from encode"
        );
    }
    let special = tok.special_tokens();
    script.extend([special.im_end, special.im_start, u32::MAX]);
    script
}

/// Runs a short m1 answer over the tokenizer with `script` as the sampled tokens: hostile
/// token bytes reach the thinking and answer text, the stop checks and the extraction.
fn drive(tok: &Tokenizer, text: &str, script: &[u32]) {
    let question = Question {
        question: text.to_string(),
        context: None,
        options: vec![("A".into(), "yes".into()), ("B".into(), "no".into())],
    };
    let config = ReasonConfig {
        budget: 8,
        waits: 1,
        min_thinking: 4,
        max_answer_tokens: 8,
    };
    let Ok(mut controller) = Controller::reasoning_for(tok, &question, config) else {
        return;
    };
    let mut next = script.iter().cycle();
    for now in 0..64 {
        match controller.next_step(f64::from(now)) {
            Ok(Step::Sample) => {
                let id = next.next().copied().unwrap_or(0);
                controller
                    .on_token(id, f64::from(now))
                    .expect("a sampled token is accepted");
            }
            Ok(Step::Feed(_)) => {}
            Ok(Step::Done(_)) => break,
            Err(e) => panic!("the controller failed mid-run: {e}"),
        }
        controller.drain_events().for_each(drop);
    }
}
