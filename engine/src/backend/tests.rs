//! The driver loop over a scripted backend and a byte-level codec.

use std::cell::Cell;
use std::rc::Rc;

use super::*;
use crate::reason::{
    CodecError, Controller, Event, Question, ReasonConfig, SpecialTokens, StopReason, Summary,
    Sweep, SweepConfig, SweepEvent, SweepSummary, TextCodec,
};

const IM_START: u32 = 151_644;
const IM_END: u32 = 151_645;

/// One token per byte, plus the ChatML specials written in the text.
#[derive(Clone)]
struct ByteCodec;

impl TextCodec for ByteCodec {
    fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("<|im_start|>") {
                ids.push(IM_START);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("<|im_end|>") {
                ids.push(IM_END);
                rest = r;
            } else {
                let c = rest.chars().next().unwrap_or_default();
                let mut buf = [0u8; 4];
                ids.extend(c.encode_utf8(&mut buf).bytes().map(u32::from));
                rest = &rest[c.len_utf8()..];
            }
        }
        Ok(ids)
    }

    fn token_bytes(&self, id: u32) -> Result<Vec<u8>, CodecError> {
        match id {
            IM_START => Ok(b"<|im_start|>".to_vec()),
            IM_END => Ok(b"<|im_end|>".to_vec()),
            _ => u8::try_from(id)
                .map(|b| vec![b])
                .map_err(|_| CodecError::new(format!("no token {id}"))),
        }
    }

    fn special_tokens(&self) -> SpecialTokens {
        SpecialTokens::QWEN2
    }
}

/// Plays back `script` one sample at a time and records what it was fed.
struct Scripted {
    script: Vec<u32>,
    next: usize,
    fed: Vec<Vec<u32>>,
    position: usize,
    context: usize,
    resets: usize,
    has_logits: bool,
}

impl Scripted {
    fn new(script: &str, context: usize) -> Self {
        Self {
            script: script.bytes().map(u32::from).collect(),
            next: 0,
            fed: Vec::new(),
            position: 0,
            context,
            resets: 0,
            has_logits: false,
        }
    }

    fn with_stop(mut self, at: usize) -> Self {
        self.script.insert(at, IM_END);
        self
    }
}

impl Backend for Scripted {
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        self.position += tokens.len();
        self.fed.push(tokens.to_vec());
        self.has_logits = true;
        Ok(())
    }

    async fn sample(&mut self, _: &Sampling) -> Result<u32, EngineError> {
        if !self.has_logits {
            return Err(EngineError::NoLogits);
        }
        let id = self
            .script
            .get(self.next)
            .copied()
            .unwrap_or(u32::from(b'.'));
        self.next += 1;
        Ok(id)
    }

    fn reset(&mut self) {
        self.position = 0;
        self.fed.clear();
        self.resets += 1;
        self.has_logits = false;
    }

    fn rewind(&mut self, pos: usize) {
        if pos < self.position {
            self.position = pos;
            self.has_logits = false;
        }
    }

    fn position(&self) -> usize {
        self.position
    }

    fn context_len(&self) -> usize {
        self.context
    }

    fn device_name(&self) -> String {
        "scripted".to_string()
    }
}

fn question() -> Question {
    Question {
        question: "Q?".into(),
        context: None,
        options: vec![("A".into(), "yes".into()), ("B".into(), "no".into())],
    }
}

fn config(budget: usize, max_answer_tokens: usize) -> ReasonConfig {
    ReasonConfig {
        budget,
        waits: 0,
        min_thinking: 0,
        max_answer_tokens,
    }
}

struct Outcome {
    result: Result<Summary, EngineError>,
    events: Vec<Event>,
}

fn run(
    backend: &mut Scripted,
    ctl: &mut Controller<ByteCodec>,
    cancel_after_samples: Option<usize>,
) -> Outcome {
    let clock = Cell::new(0.0);
    let samples = Cell::new(0usize);
    let mut events = Vec::new();
    let result = pollster::block_on(run_controller(
        backend,
        ctl,
        &Sampling::GREEDY,
        || {
            clock.set(clock.get() + 1.0);
            clock.get()
        },
        |e| {
            if matches!(e, Event::Think { .. } | Event::Answer { .. }) {
                samples.set(samples.get() + 1);
            }
            events.push(e);
        },
        || cancel_after_samples.is_some_and(|n| samples.get() >= n),
    ));
    Outcome { result, events }
}

#[test]
fn budget_run_feeds_prompt_then_tokens_and_emits_in_order() {
    let mut backend = Scripted::new("abcdefgh\\boxed{B}", 4096);
    let mut ctl = Controller::reasoning_for(ByteCodec, &question(), config(4, 20)).unwrap();
    let prompt = ctl.prompt().to_vec();
    let out = run(&mut backend, &mut ctl, None);
    let summary = out.result.unwrap();

    assert_eq!(backend.resets, 1);
    assert_eq!(backend.fed[0], prompt, "the prompt is the first feed");
    assert_eq!(summary.think_stop, Some(StopReason::Budget));
    assert_eq!(summary.think_tokens, 4);
    assert_eq!(summary.thinking, "abcd\n");
    assert_eq!(summary.choice.as_deref(), Some("B"));
    // Everything fed is what the model saw: prompt, 4 thinking tokens, "\n", the forced
    // prefix, then every answer token but the last (nothing follows it).
    let fed: Vec<u32> = backend.fed.concat();
    let mut expected = prompt.clone();
    expected.extend(b"abcd\n".map(u32::from));
    expected.extend(
        ByteCodec
            .encode(crate::reason::BUDGET_ANSWER_PREFIX)
            .unwrap(),
    );
    let answer_ids: Vec<u32> = summary.answer.bytes().map(u32::from).collect();
    expected.extend(&answer_ids[..answer_ids.len() - 1]);
    assert_eq!(fed, expected);
    assert_eq!(backend.position, fed.len());

    let kinds: Vec<&str> = out
        .events
        .iter()
        .map(|e| match e {
            Event::Prompt { .. } => "prompt",
            Event::Think { .. } => "think",
            Event::Wait { .. } => "wait",
            Event::AnswerPrefix { .. } => "answer_prefix",
            Event::Answer { .. } => "answer",
            Event::Done(_) => "done",
        })
        .collect();
    assert_eq!(kinds[0], "prompt");
    assert_eq!(kinds[1..5], ["think"; 4]);
    assert_eq!(kinds[5], "answer_prefix");
    assert!(kinds[6..kinds.len() - 1].iter().all(|k| *k == "answer"));
    assert_eq!(kinds.last(), Some(&"done"));
    assert!(matches!(out.events.last(), Some(Event::Done(s)) if *s == summary));
}

#[test]
fn natural_stop_ends_thinking_early() {
    let mut backend = Scripted::new("xyB", 4096).with_stop(2);
    let mut ctl = Controller::reasoning_for(ByteCodec, &question(), config(100, 1)).unwrap();
    let summary = run(&mut backend, &mut ctl, None).result.unwrap();
    assert_eq!(summary.think_stop, Some(StopReason::Natural));
    assert_eq!(summary.think_tokens, 2);
    assert_eq!(summary.stop, StopReason::MaxTokens);
    assert_eq!(summary.answer, "B");
    // The stop token never reaches the model.
    assert!(!backend.fed.concat()[ctl.prompt().len()..].contains(&IM_END));
}

#[test]
fn a_second_run_starts_from_a_clean_cache() {
    let mut backend = Scripted::new("abcdefgh", 4096);
    let mut first = Controller::reasoning_for(ByteCodec, &question(), config(2, 2)).unwrap();
    run(&mut backend, &mut first, None).result.unwrap();
    let mut second = Controller::reasoning_for(ByteCodec, &question(), config(2, 2)).unwrap();
    run(&mut backend, &mut second, None).result.unwrap();
    assert_eq!(backend.resets, 2);
    assert_eq!(backend.fed[0], second.prompt());
}

#[test]
fn too_small_context_fails_before_any_compute() {
    let mut backend = Scripted::new("abc", 100);
    let mut ctl = Controller::reasoning_for(ByteCodec, &question(), config(4096, 1024)).unwrap();
    let out = run(&mut backend, &mut ctl, None);
    match out.result {
        Err(EngineError::ContextTooSmall { needed, context }) => {
            assert_eq!(context, 100);
            assert_eq!(needed, ctl.max_sequence_len());
        }
        other => panic!("expected ContextTooSmall, got {other:?}"),
    }
    assert!(backend.fed.is_empty());
    assert!(out.events.is_empty());
}

#[test]
fn cancel_ends_the_run_with_a_done_event() {
    let mut backend = Scripted::new(&"t".repeat(100), 4096);
    let mut ctl = Controller::reasoning_for(ByteCodec, &question(), config(50, 10)).unwrap();
    let out = run(&mut backend, &mut ctl, Some(3));
    let summary = out.result.unwrap();
    assert_eq!(summary.stop, StopReason::Cancelled);
    assert_eq!(summary.think_stop, Some(StopReason::Cancelled));
    assert_eq!(summary.think_tokens, 3);
    assert!(matches!(out.events.last(), Some(Event::Done(_))));
}

#[test]
fn invalid_sampling_is_refused_up_front() {
    let mut backend = Scripted::new("abc", 4096);
    let mut ctl = Controller::reasoning_for(ByteCodec, &question(), config(2, 2)).unwrap();
    let bad = Sampling {
        temperature: -1.0,
        ..Sampling::GREEDY
    };
    let result = pollster::block_on(run_controller(
        &mut backend,
        &mut ctl,
        &bad,
        || 0.0,
        |_| {},
        || false,
    ));
    assert!(matches!(result, Err(EngineError::BadSampling { .. })));
    assert!(backend.fed.is_empty());
}

/// Tokens the hashing backend picks from: text, an answer letter, and both stop tokens.
const HASH_VOCAB: [u32; 10] = [
    b'a' as u32,
    b'b' as u32,
    b' ' as u32,
    b'.' as u32,
    b'\n' as u32,
    b'A' as u32,
    b'B' as u32,
    b'}' as u32,
    IM_END,
    IM_START,
];

/// Logits that are a hash of the whole sequence and of where each feed batch ended (a real
/// model's numerics may depend on batching), sampled with the real sampler at the real
/// step: so any difference in what a run is fed, or in the draw's (seed, position), shows.
#[derive(Default)]
struct Hashed {
    seq: Vec<u32>,
    batches: Vec<usize>,
    has_logits: bool,
    fed: usize,
    samples: usize,
    rewinds: usize,
    /// Raised when the sample with this number is taken: a Stop pressed while it ran.
    cancel_at: Option<usize>,
    cancelled: Rc<Cell<bool>>,
}

impl Hashed {
    fn logits(&self) -> Vec<f32> {
        (0..HASH_VOCAB.len() as u64)
            .map(|i| {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ i;
                for t in self.seq.iter().chain(&[u32::MAX]).copied() {
                    h = (h ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3);
                }
                for &b in &self.batches {
                    h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
                h ^= h >> 31;
                (h % 1000) as f32 / 250.0
            })
            .collect()
    }
}

impl Backend for Hashed {
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        self.seq.extend_from_slice(tokens);
        self.batches.push(self.seq.len());
        self.fed += tokens.len();
        self.has_logits = !tokens.is_empty() || self.has_logits;
        Ok(())
    }

    async fn sample(&mut self, sampling: &Sampling) -> Result<u32, EngineError> {
        if !self.has_logits {
            return Err(EngineError::NoLogits);
        }
        self.samples += 1;
        if self.cancel_at == Some(self.samples) {
            self.cancelled.set(true);
        }
        let step = u32::try_from(self.seq.len()).unwrap_or(u32::MAX);
        let i = sample_logits(&self.logits(), sampling, step)?;
        Ok(HASH_VOCAB[i as usize])
    }

    fn reset(&mut self) {
        self.seq.clear();
        self.batches.clear();
        self.has_logits = false;
    }

    fn rewind(&mut self, pos: usize) {
        if pos < self.seq.len() {
            self.seq.truncate(pos);
            self.batches.retain(|&end| end <= pos);
            self.has_logits = false;
            self.rewinds += 1;
        }
    }

    fn position(&self) -> usize {
        self.seq.len()
    }

    fn context_len(&self) -> usize {
        4096
    }

    fn device_name(&self) -> String {
        "hashed".to_string()
    }
}

/// A separate run through `run_controller`: its summary and answer token ids.
fn single_run(
    question: &Question,
    config: ReasonConfig,
    sampling: &Sampling,
) -> (Summary, Vec<u32>) {
    let mut backend = Hashed::default();
    let mut ctl = Controller::reasoning_for(ByteCodec, question, config).unwrap();
    let mut answer = Vec::new();
    let summary = pollster::block_on(run_controller(
        &mut backend,
        &mut ctl,
        sampling,
        || 0.0,
        |e| {
            if let Event::Answer { id, .. } = e {
                answer.push(id);
            }
        },
        || false,
    ))
    .unwrap();
    (summary, answer)
}

fn sweep_run(
    backend: &mut Hashed,
    question: &Question,
    config: &SweepConfig,
    sampling: &Sampling,
) -> (SweepSummary, Vec<SweepEvent>) {
    let mut sweep = Sweep::for_question(ByteCodec, question, config).unwrap();
    let mut events = Vec::new();
    let cancelled = backend.cancelled.clone();
    let summary = pollster::block_on(run_sweep(
        backend,
        &mut sweep,
        sampling,
        || 0.0,
        |e| events.push(e),
        || cancelled.get(),
    ))
    .unwrap();
    (summary, events)
}

fn hashed_question(salt: usize) -> Question {
    Question {
        question: format!("Question {salt}?"),
        ..question()
    }
}

#[test]
fn sweep_equals_separate_runs_greedy_with_waits_and_seeded_sampling() {
    let samplings = [
        Sampling::GREEDY,
        Sampling {
            temperature: 0.7,
            top_p: 0.9,
            seed: 7,
        },
        Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 3,
        },
    ];
    let mut rewinds = 0;
    for (salt, sampling) in (0..6).flat_map(|s| samplings.iter().map(move |p| (s, p))) {
        for (waits, min_thinking) in [(0, 0), (1, 0), (2, 0), (0, 6), (1, 6)] {
            let config = SweepConfig {
                budgets: vec![0, 1, 4, 9, 16, 40],
                waits,
                min_thinking,
                max_answer_tokens: 5,
            };
            let question = hashed_question(salt);
            let mut backend = Hashed::default();
            let (summary, events) = sweep_run(&mut backend, &question, &config, sampling);
            let ctx = format!("salt {salt}, {sampling:?}, {config:?}");
            assert_eq!(summary.stop, StopReason::Natural, "{ctx}");
            assert_eq!(summary.results.len(), config.budgets.len(), "{ctx}");
            for r in &summary.results {
                let (want, answer) = single_run(&question, config.run_config(r.budget), sampling);
                assert_eq!(r.summary, want, "budget {}: {ctx}", r.budget);
                assert_eq!(r.answer_ids, answer, "budget {}: {ctx}", r.budget);
            }
            // The driver performed every step the sweep counted.
            assert_eq!(summary.fed_tokens, backend.fed, "{ctx}");
            assert_eq!(summary.sampled_tokens, backend.samples, "{ctx}");
            assert_eq!(summary.rewinds, backend.rewinds, "{ctx}");
            assert!(matches!(events.last(), Some(SweepEvent::Done(s)) if *s == summary));
            rewinds += summary.rewinds;
        }
    }
    assert!(rewinds > 100, "the settings branch and rewind: {rewinds}");
}

#[test]
fn sweep_costs_one_trace_plus_an_answer_per_budget() {
    // Thinking never ends naturally below 64 with this minimum: the trace is the largest
    // budget's 64 tokens, each smaller budget adds only its answer.
    let config = SweepConfig {
        budgets: vec![8, 16, 32, 64],
        waits: 0,
        min_thinking: 64,
        max_answer_tokens: 3,
    };
    let mut backend = Hashed::default();
    let (summary, _) = sweep_run(&mut backend, &question(), &config, &Sampling::GREEDY);
    let singles: Vec<Summary> = config
        .budgets
        .iter()
        .map(|&b| single_run(&question(), config.run_config(b), &Sampling::GREEDY).0)
        .collect();
    // A separate run samples its thinking, then its answer and (unless capped) a stop token.
    let answer_samples = |s: &Summary| s.answer_tokens + usize::from(s.stop == StopReason::Natural);
    let largest = &singles[singles.len() - 1];
    let smaller: usize = singles[..singles.len() - 1]
        .iter()
        .map(answer_samples)
        .sum();
    assert_eq!(summary.sampled_tokens, largest.sampled_tokens + smaller);
    let separate: usize = singles.iter().map(|s| s.sampled_tokens).sum();
    assert!(
        summary.sampled_tokens * 3 < separate * 2,
        "sweep {} vs separate {separate}",
        summary.sampled_tokens
    );
    assert_eq!(summary.rewinds, 3);
}

#[test]
fn sweep_cancel_keeps_answered_budgets_and_ends_with_done() {
    let config = SweepConfig {
        budgets: vec![2, 10, 30],
        waits: 1,
        min_thinking: 0,
        max_answer_tokens: 4,
    };
    let mut backend = Hashed::default();
    let (full, _) = sweep_run(&mut backend, &question(), &config, &Sampling::GREEDY);
    for at in 1..full.sampled_tokens {
        let mut backend = Hashed {
            cancel_at: Some(at),
            ..Hashed::default()
        };
        let (summary, events) = sweep_run(&mut backend, &question(), &config, &Sampling::GREEDY);
        assert_eq!(summary.stop, StopReason::Cancelled, "at {at}");
        // The cancel is seen before the next step: nothing is sampled after it.
        assert_eq!(backend.samples, at, "at {at}");
        for (r, f) in summary.results.iter().zip(&full.results) {
            if r.summary.stop != StopReason::Cancelled {
                assert_eq!(r, f, "at {at}");
            }
        }
        assert!(
            matches!(events.last(), Some(SweepEvent::Done(_))),
            "at {at}"
        );
    }
}

#[test]
fn sweep_context_is_checked_for_the_largest_budget() {
    let config = SweepConfig {
        budgets: vec![4, 5000],
        ..SweepConfig::default()
    };
    let mut backend = Hashed::default();
    let mut sweep = Sweep::for_question(ByteCodec, &question(), &config).unwrap();
    let result = pollster::block_on(run_sweep(
        &mut backend,
        &mut sweep,
        &Sampling::GREEDY,
        || 0.0,
        |_| {},
        || false,
    ));
    assert!(
        matches!(result, Err(EngineError::ContextTooSmall { needed, context: 4096 }) if needed > 5000),
        "{result:?}"
    );
    assert_eq!(backend.fed, 0);
}
