//! The JSON readers: the questions JSONL of `m1 ask --questions`, the worker protocol's
//! messages, and the OPFS cache's `index.json`.

use m1_app::cache_index::Index;
use m1_app::protocol::{Event, Request};
use m1_engine::reason::{chat_prompt, m1_prompt, medqa_records, QWEN_SYSTEM_PROMPT};

/// Input: a JSONL file of MedQA-style records.
pub fn questions(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for (line, record) in medqa_records(&text) {
        assert!(line >= 1);
        let Ok(record) = record else { continue };
        let q = &record.question;
        if let Some(answer) = &record.answer {
            assert!(
                q.options.iter().any(|(letter, _)| letter == answer),
                "gold letter {answer:?} is not an option of {:?}",
                q.options
            );
        }
        let _ = m1_prompt(q);
        let _ = chat_prompt(QWEN_SYSTEM_PROMPT, &q.user_message());
    }
}

/// Input: one message as the worker or the UI receives it. What decodes must encode and
/// decode to itself, so both ends see the same message.
pub fn protocol(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = serde_json::from_str::<Request>(text) {
        if let Request::Ask { settings, .. } = &request {
            let _ = settings.sampling.validate();
        }
        round_trip(&request, &request.to_json());
    }
    if let Ok(event) = serde_json::from_str::<Event>(text) {
        round_trip(&event, &event.to_json());
    }
}

/// `json` (the encoding of `value`) decodes to `value`; a float that JSON cannot carry
/// (decoded from a number past f32's range, it became infinite and encodes as null) is the
/// one accepted exception.
fn round_trip<T>(value: &T, json: &str)
where
    T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match serde_json::from_str::<T>(json) {
        Ok(back) => assert_eq!(&back, value, "{json}"),
        Err(e) => assert!(
            e.to_string().starts_with("invalid type: null, expected f"),
            "{json} does not decode: {e}"
        ),
    }
}

/// Input: the text of `models/index.json` as a crashed tab or another tab left it.
pub fn cache_index(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut index = Index::parse(&text);
    let json = index.to_json().expect("an index encodes");
    assert_eq!(
        Index::parse(&json),
        index,
        "the index survives a write and a read"
    );
    for p in &index.partials {
        let entry = p.to_entry();
        assert_eq!(entry.file, p.file);
        let _ = p.fits(p.size);
        let gaps = p.gaps();
        for w in gaps.windows(2) {
            assert!(w[0].1 <= w[1].0, "gaps overlap: {gaps:?}");
        }
        // Walk the file as the resuming loader does: every run makes progress.
        let mut pos = 0;
        let mut runs = 0;
        while pos < p.size && runs < 1000 {
            let (_, end) = p.run_at(pos, p.size);
            assert!(
                end > pos,
                "run_at({pos}) does not advance in {:?}",
                p.covered
            );
            pos = end;
            runs += 1;
        }
    }
    let names: Vec<String> = index.partials.iter().map(|p| p.file.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        let mut p = index.partials[i].clone();
        p.cover(0, p.size.min(1 << 20));
        index.keep_partial(&p);
        index.forget(name);
        assert!(index.partials.iter().all(|q| &q.file != name));
    }
}
