//! Prompt text for m1 and for plain ChatML chat, and the MedQA-style record parser.
//!
//! The m1 prompt must match the evaluation setup byte for byte (notes/m1-recipe.md): the
//! model was scored with Qwen's default system prompt, the question, "A. text" option lines
//! and the `\boxed{}` instruction, followed by the forced `<|im_start|>think\n`.

use std::collections::HashSet;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::ReasonError;

/// The system prompt Qwen2.5's chat template inserts when none is given; m1 was evaluated
/// with it.
pub const QWEN_SYSTEM_PROMPT: &str =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/// The suffix the m1 evaluation appended to every question.
pub const BOXED_INSTRUCTION: &str = "Return your final response within \\boxed{}.";

/// The forced start of m1's thinking, right after the assistant header.
pub const THINK_PREFIX: &str = "<|im_start|>think\n";

/// Option letters the recipe's extraction knows (`[A-N]`).
pub const OPTION_LETTERS: &str = "ABCDEFGHIJKLMN";

/// One multiple-choice (or free-form) question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub question: String,
    /// PubMedQA-style abstract; it goes before the question.
    #[serde(default)]
    pub context: Option<String>,
    /// `(letter, text)` pairs in display order; empty for a free-form question.
    #[serde(default)]
    pub options: Vec<(String, String)>,
}

impl Question {
    /// The user turn: `[context\n]question\nA. …\nB. …\nReturn your final response within \boxed{}.`
    ///
    /// The evaluation built `"{question}\n{options}\n{suffix}"`; with no options that would
    /// leave an empty line, so a free-form question goes straight to the suffix.
    pub fn user_message(&self) -> String {
        let mut text = String::new();
        if let Some(context) = self.context.as_deref().filter(|c| !c.is_empty()) {
            text.push_str(context);
            text.push('\n');
        }
        text.push_str(&self.question);
        text.push('\n');
        for (letter, option) in &self.options {
            text.push_str(letter);
            text.push_str(". ");
            text.push_str(option);
            text.push('\n');
        }
        text.push_str(BOXED_INSTRUCTION);
        text
    }
}

/// The full m1 prompt: ChatML with the default system prompt, the question, and the forced
/// thinking prefix, ready to encode (special tokens parsed) and prefill.
pub fn m1_prompt(question: &Question) -> String {
    let mut prompt = chat_prompt(QWEN_SYSTEM_PROMPT, &question.user_message());
    prompt.push_str(THINK_PREFIX);
    prompt
}

/// A one-turn ChatML prompt ending with the open assistant header, for instruct models that
/// are not m1 (no thinking phase).
pub fn chat_prompt(system: &str, user: &str) -> String {
    format!(
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
}

/// A parsed MedQA-style record: the question and, when the record has one, the gold letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledQuestion {
    pub question: Question,
    pub answer: Option<String>,
    /// The record's `id` (a string, or a number written as one), if it has one.
    pub id: Option<String>,
}

/// Parses one MedQA-style JSON record:
/// `{"question": .., "options": {"A": ..} | [..], "answer_idx": "B", "answer": ..}`.
///
/// Options keep the record's order; a list gets letters A, B, … . The gold letter comes
/// from `answer_idx`, or from matching `answer` against the option texts when only that is
/// present (some MedMCQA/MMLU exports), and must name one of the options.
pub fn parse_medqa(json: &str) -> Result<LabeledQuestion, ReasonError> {
    let raw: RawRecord =
        serde_json::from_str(json).map_err(|e| ReasonError::Record(e.to_string()))?;
    let options = raw.options.0;
    let letters = || options.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();

    let answer = match (raw.answer_idx, raw.answer) {
        (Some(idx), _) => {
            let idx = idx.trim().to_string();
            let found = options
                .iter()
                .find(|(letter, _)| letter.eq_ignore_ascii_case(&idx))
                .map(|(letter, _)| letter.clone());
            match found {
                Some(letter) => Some(letter),
                None => {
                    return Err(ReasonError::AnswerNotAnOption {
                        answer: idx,
                        letters: letters(),
                    })
                }
            }
        }
        (None, Some(serde_json::Value::String(text))) => {
            let found = options
                .iter()
                .find(|(_, option)| option.trim().eq_ignore_ascii_case(text.trim()))
                .map(|(letter, _)| letter.clone());
            match found {
                Some(letter) => Some(letter),
                None => {
                    return Err(ReasonError::AnswerNotAnOption {
                        answer: text,
                        letters: letters(),
                    })
                }
            }
        }
        // A non-string `answer` (e.g. MedMCQA's numeric `cop`) cannot be trusted as a letter.
        (None, _) => None,
    };

    let id = match raw.id {
        Some(serde_json::Value::String(id)) => Some(id),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(LabeledQuestion {
        question: Question {
            question: raw.question,
            context: raw.context,
            options,
        },
        answer,
        id,
    })
}

/// The records of a MedQA-style JSONL text: one JSON object per non-empty line, each with
/// its 1-based line number. Parsing stops at nothing: the caller decides whether a bad
/// record ends the file (the CLI's `--questions` does) and how many to take.
pub fn medqa_records(
    text: &str,
) -> impl Iterator<Item = (usize, Result<LabeledQuestion, ReasonError>)> + '_ {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (i + 1, parse_medqa(line)))
}

#[derive(Deserialize)]
struct RawRecord {
    #[serde(default)]
    id: Option<serde_json::Value>,
    question: String,
    #[serde(default)]
    context: Option<String>,
    options: RawOptions,
    #[serde(default)]
    answer_idx: Option<String>,
    #[serde(default)]
    answer: Option<serde_json::Value>,
}

/// Options as an ordered list of `(letter, text)`.
///
/// Hand-written because `serde_json::Map` sorts keys unless `preserve_order` is on, and a
/// record's own order is the order the model must see.
struct RawOptions(Vec<(String, String)>);

impl<'de> Deserialize<'de> for RawOptions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OptionsVisitor)
    }
}

struct OptionsVisitor;

impl<'de> Visitor<'de> for OptionsVisitor {
    type Value = RawOptions;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("options as a map {\"A\": text} or a list of texts")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawOptions, M::Error> {
        let mut options = Vec::new();
        // A set, not a scan of the options so far: a 1 MB record holds 100k options, and
        // the scan made that 5e9 comparisons (27 s).
        let mut seen = HashSet::new();
        while let Some((letter, text)) = map.next_entry::<String, String>()? {
            let letter = letter.trim().to_string();
            if letter.is_empty() {
                return Err(de::Error::custom("option with an empty letter"));
            }
            if !seen.insert(letter.clone()) {
                return Err(de::Error::custom(format!("option {letter} appears twice")));
            }
            options.push((letter, text));
        }
        Ok(RawOptions(options))
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<RawOptions, S::Error> {
        let mut options = Vec::new();
        let mut letters = ('A'..='Z').map(String::from);
        while let Some(text) = seq.next_element::<String>()? {
            // Beyond Z there is no letter the model could name.
            let letter = letters
                .next()
                .ok_or_else(|| de::Error::custom("more than 26 options"))?;
            options.push((letter, text));
        }
        Ok(RawOptions(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mcq() -> Question {
        Question {
            question: "Which drug?".into(),
            context: None,
            options: vec![
                ("A".into(), "Aspirin".into()),
                ("B".into(), "Heparin".into()),
            ],
        }
    }

    #[test]
    fn m1_prompt_is_exact() {
        assert_eq!(
            m1_prompt(&mcq()),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nWhich drug?\nA. Aspirin\nB. Heparin\nReturn your final response within \\boxed{}.<|im_end|>\n\
             <|im_start|>assistant\n<|im_start|>think\n"
        );
    }

    #[test]
    fn context_goes_before_the_question() {
        let q = Question {
            question: "Does X cause Y?".into(),
            context: Some("We studied X.".into()),
            options: vec![
                ("A".into(), "yes".into()),
                ("B".into(), "no".into()),
                ("C".into(), "maybe".into()),
            ],
        };
        assert_eq!(
            q.user_message(),
            "We studied X.\nDoes X cause Y?\nA. yes\nB. no\nC. maybe\nReturn your final response within \\boxed{}."
        );
    }

    #[test]
    fn free_form_question_has_no_empty_line() {
        let q = Question {
            question: "What causes gout?".into(),
            context: Some(String::new()),
            options: vec![],
        };
        assert_eq!(
            q.user_message(),
            "What causes gout?\nReturn your final response within \\boxed{}."
        );
    }

    #[test]
    fn chat_prompt_is_exact() {
        assert_eq!(
            chat_prompt("Be brief.", "Hi"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn medqa_map_keeps_record_order() {
        let rec = r#"{"question":"Q?","options":{"B":"two","A":"one","C":"three"},"answer_idx":"A","answer":"one"}"#;
        let parsed = parse_medqa(rec).unwrap();
        assert_eq!(parsed.question.question, "Q?");
        assert_eq!(
            parsed.question.options,
            vec![
                ("B".to_string(), "two".to_string()),
                ("A".to_string(), "one".to_string()),
                ("C".to_string(), "three".to_string()),
            ]
        );
        assert_eq!(parsed.answer.as_deref(), Some("A"));
    }

    #[test]
    fn medqa_list_gets_letters() {
        let rec = r#"{"question":"Q?","options":["one","two"],"answer_idx":"b"}"#;
        let parsed = parse_medqa(rec).unwrap();
        assert_eq!(
            parsed.question.options,
            vec![
                ("A".to_string(), "one".to_string()),
                ("B".to_string(), "two".to_string()),
            ]
        );
        assert_eq!(parsed.answer.as_deref(), Some("B"));
        assert_eq!(parsed.question.context, None);
    }

    #[test]
    fn medqa_answer_text_only() {
        let rec = r#"{"question":"Q?","context":"Ctx.","options":["yes","no"],"answer":"No"}"#;
        let parsed = parse_medqa(rec).unwrap();
        assert_eq!(parsed.answer.as_deref(), Some("B"));
        assert_eq!(parsed.question.context.as_deref(), Some("Ctx."));
    }

    #[test]
    fn medqa_without_answer() {
        let parsed = parse_medqa(r#"{"question":"Q?","options":["x"]}"#).unwrap();
        assert_eq!(parsed.answer, None);
        assert_eq!(parsed.id, None);
        let parsed = parse_medqa(r#"{"id":"pubmedqa-1","question":"Q?","options":["x"]}"#);
        assert_eq!(parsed.unwrap().id.as_deref(), Some("pubmedqa-1"));
        let parsed = parse_medqa(r#"{"id":17,"question":"Q?","options":["x"]}"#);
        assert_eq!(parsed.unwrap().id.as_deref(), Some("17"));
    }

    #[test]
    fn medqa_rejects_unknown_answer_letter() {
        let err =
            parse_medqa(r#"{"question":"Q?","options":["x","y"],"answer_idx":"E"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "answer \"E\" is not one of the options [\"A\", \"B\"]"
        );
    }

    #[test]
    fn medqa_rejects_bad_json() {
        assert!(matches!(
            parse_medqa(r#"{"question":"Q?"}"#),
            Err(ReasonError::Record(_))
        ));
        assert!(matches!(
            parse_medqa(r#"{"question":"Q?","options":{"A":"x","A":"y"}}"#),
            Err(ReasonError::Record(_))
        ));
        assert!(matches!(
            parse_medqa(r#"{"question":"Q?","options":"A. x"}"#),
            Err(ReasonError::Record(_))
        ));
    }

    #[test]
    fn question_round_trips_through_json() {
        let q = mcq();
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(
            json,
            r#"{"question":"Which drug?","context":null,"options":[["A","Aspirin"],["B","Heparin"]]}"#
        );
        assert_eq!(serde_json::from_str::<Question>(&json).unwrap(), q);
    }

    /// Found reviewing the questions reader for its fuzz target: the duplicate-letter check
    /// scanned the options so far, so a 1 MB record of 100k distinct letters took 27 s
    /// (quadratic); now a set makes it linear.
    #[test]
    fn a_record_with_100k_options_parses_in_linear_time() {
        let options: Vec<String> = (0..100_000).map(|i| format!("\"{i:x}\":\"\"")).collect();
        let record = format!(r#"{{"question":"Q?","options":{{{}}}}}"#, options.join(","));
        let start = std::time::Instant::now();
        let parsed = parse_medqa(&record).unwrap();
        assert_eq!(parsed.question.options.len(), 100_000);
        // Linear: ~0.1 s even unoptimized; the quadratic scan took 27 s optimized.
        assert!(start.elapsed().as_secs_f64() < 5.0, "{:?}", start.elapsed());
    }
}
