//! The budget sweep against separate runs, over a fake model whose next token depends on
//! the whole sequence it was fed: any difference in what a budget's controller is fed (a
//! missed rewind, a token fed twice, a batch split differently) changes what it samples.

use super::fake::*;
use super::*;

const PROMPT: [u32; 4] = [1, 2, 3, 4];

fn options() -> Vec<(String, String)> {
    vec![
        ("A".to_string(), "Aspirin".to_string()),
        ("B".to_string(), "Heparin".to_string()),
    ]
}

/// Tokens the fake model picks from; stop tokens often enough that thinking ends naturally
/// inside small budgets, and a boxed letter so answers carry a choice.
const VOCAB: [u32; 12] = [
    HELLO, WORLD, SPACE, DOT, NL, BOXED_OPEN, LETTER_B, CLOSE, E_ACUTE_1, E_ACUTE_2, IM_END,
    IM_START,
];

/// What a fake model picks: a function of the sequence and of where each feed batch ended
/// (a real model's numerics may depend on batching).
type Pick = fn(&[u32], &[usize]) -> u32;

struct FakeModel {
    seq: Vec<u32>,
    batches: Vec<usize>,
    pick: Pick,
    has_logits: bool,
    fed: usize,
    samples: usize,
}

impl FakeModel {
    fn new(pick: Pick) -> Self {
        Self {
            seq: Vec::new(),
            batches: Vec::new(),
            pick,
            has_logits: false,
            fed: 0,
            samples: 0,
        }
    }

    fn feed(&mut self, tokens: &[u32]) {
        self.seq.extend_from_slice(tokens);
        self.batches.push(self.seq.len());
        self.fed += tokens.len();
        self.has_logits = true;
    }

    fn rewind(&mut self, pos: usize) {
        assert!(pos <= self.seq.len(), "rewind past the end: {pos}");
        self.seq.truncate(pos);
        self.batches.retain(|&end| end <= pos);
        self.has_logits = false;
    }

    fn sample(&mut self) -> u32 {
        assert!(self.has_logits, "sample without logits");
        self.samples += 1;
        (self.pick)(&self.seq, &self.batches)
    }
}

/// The hashing model of the property test; the salt is the sequence's first token.
fn hashed(seq: &[u32], batches: &[usize]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in seq.iter().copied().chain(batches.iter().map(|&b| b as u32)) {
        h = (h ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 29;
    VOCAB[(h % VOCAB.len() as u64) as usize]
}

/// Thinks `THINK` by position after the prompt; after a forced answer prefix answers
/// "\boxed{B}" and stops.
fn scripted(seq: &[u32], _: &[usize]) -> u32 {
    const THINK: [u32; 5] = [HELLO, WORLD, IM_END, DOT, IM_END];
    const ANSWER: [u32; 4] = [BOXED_OPEN, LETTER_B, CLOSE, IM_END];
    match seq.iter().rposition(|&t| t == ANSWER_ID) {
        Some(at) => {
            let mut after = &seq[at + 1..];
            if after.starts_with(&BUDGET_ANSWER_TOKENS[2..]) {
                after = &after[BUDGET_ANSWER_TOKENS.len() - 2..];
            }
            ANSWER[after.len().min(3)]
        }
        None => THINK
            .get(seq.len() - PROMPT.len())
            .copied()
            .unwrap_or(IM_END),
    }
}

/// A separate run at `config`'s budget: its summary, answer ids, and the sequence length
/// where its answer branched off.
struct Single {
    summary: Summary,
    answer_ids: Vec<u32>,
    position: Option<usize>,
}

fn single(config: ReasonConfig, prompt: &[u32], pick: Pick) -> Single {
    let mut ctl = Controller::reasoning(FakeCodec::new(), prompt.to_vec(), config)
        .unwrap()
        .with_options(options());
    let mut model = FakeModel::new(pick);
    let mut answer_ids = Vec::new();
    let mut position = None;
    let mut look = |events: Vec<Event>, len: usize| {
        for e in events {
            match e {
                Event::AnswerPrefix { .. } => position = Some(len),
                Event::Answer { id, .. } => answer_ids.push(id),
                _ => {}
            }
        }
    };
    let summary = loop {
        let step = ctl.next_step(0.0).unwrap();
        look(ctl.drain_events().collect(), model.seq.len());
        match step {
            Step::Feed(tokens) => model.feed(&tokens),
            Step::Sample => {
                let id = model.sample();
                ctl.on_token(id, 0.0).unwrap();
                look(ctl.drain_events().collect(), model.seq.len());
            }
            Step::Done(summary) => break summary,
        }
    };
    Single {
        summary,
        answer_ids,
        position,
    }
}

struct SweepRun {
    summary: SweepSummary,
    events: Vec<SweepEvent>,
    model: FakeModel,
}

/// Drives a sweep over the fake model; `cancel_at: Some(n)` cancels while the n-th sample
/// is in flight (its token still arrives, and must be ignored).
fn sweep(config: &SweepConfig, prompt: &[u32], pick: Pick, cancel_at: Option<usize>) -> SweepRun {
    let mut sw = Sweep::new(FakeCodec::new(), prompt.to_vec(), config)
        .unwrap()
        .with_options(options());
    let mut model = FakeModel::new(pick);
    let mut events = Vec::new();
    let summary = loop {
        let step = sw.next_step(0.0).unwrap();
        events.extend(sw.drain_events());
        match step {
            SweepStep::Feed(tokens) => model.feed(&tokens),
            SweepStep::Sample => {
                let id = model.sample();
                if cancel_at == Some(model.samples) {
                    sw.cancel(0.0);
                }
                sw.on_token(id, 0.0).unwrap();
                events.extend(sw.drain_events());
            }
            SweepStep::Rewind(pos) => model.rewind(pos),
            SweepStep::Done(summary) => break summary,
        }
        assert_eq!(sw.position(), model.seq.len(), "the sweep's position");
    };
    events.extend(sw.drain_events());
    SweepRun {
        summary,
        events,
        model,
    }
}

/// Every budget's result equals its separate run, and the shared trace with its cut
/// markers spells each budget's thinking.
fn assert_sweep_equals_single_runs(config: &SweepConfig, prompt: &[u32], pick: Pick) -> SweepRun {
    let run = sweep(config, prompt, pick, None);
    let mut budgets = config.budgets.clone();
    budgets.sort_unstable();
    budgets.dedup();
    assert_eq!(
        run.summary
            .results
            .iter()
            .map(|r| r.budget)
            .collect::<Vec<_>>(),
        budgets
    );
    for r in &run.summary.results {
        let want = single(config.run_config(r.budget), prompt, pick);
        let ctx = format!("budget {} of {config:?}, prompt {prompt:?}", r.budget);
        assert_eq!(r.summary, want.summary, "{ctx}");
        assert_eq!(r.answer_ids, want.answer_ids, "{ctx}");
        if let Some(p) = want.position {
            assert_eq!(r.position, p, "{ctx}");
        }
    }
    // The trace up to each cut, plus the cut's tail, is that budget's thinking.
    let mut trace = String::new();
    let mut budget_events = 0;
    for e in &run.events {
        match e {
            SweepEvent::Think { text, .. } | SweepEvent::Wait { text, .. } => trace.push_str(text),
            SweepEvent::Cut {
                budgets,
                thinking_tail,
                ..
            } => {
                for b in budgets {
                    let r = run.summary.results.iter().find(|r| r.budget == *b).unwrap();
                    assert_eq!(
                        format!("{trace}{thinking_tail}"),
                        r.summary.thinking,
                        "budget {b} of {config:?}, prompt {prompt:?}"
                    );
                }
            }
            SweepEvent::Budget(_) => budget_events += 1,
            _ => {}
        }
    }
    assert_eq!(budget_events, budgets.len());
    assert!(matches!(run.events.last(), Some(SweepEvent::Done(s)) if *s == run.summary));
    assert_eq!(run.summary.fed_tokens, run.model.fed);
    assert_eq!(run.summary.sampled_tokens, run.model.samples);
    assert_eq!(run.summary.stop, StopReason::Natural);
    run
}

#[test]
fn sweeps_equal_separate_runs_over_many_settings() {
    let all = [0usize, 1, 2, 3, 5, 8, 13, 21, 34];
    let mut cases = 0;
    for salt in 0..60u64 {
        let pick = |k: u64| (salt.wrapping_mul(2654435761).wrapping_add(k * 40503) >> 7) as usize;
        let budgets: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| (pick(*i as u64) % 3) != 0)
            .map(|(_, b)| *b)
            .collect();
        if budgets.is_empty() {
            continue;
        }
        let config = SweepConfig {
            budgets,
            waits: pick(11) % 4,
            min_thinking: [0, 0, 4, 10][pick(12) % 4],
            max_answer_tokens: [0, 1, 3, 6][pick(13) % 4],
        };
        let prompt = [salt as u32 + 1000, 1, 2, 3];
        assert_sweep_equals_single_runs(&config, &prompt, hashed);
        cases += 1;
    }
    assert!(cases > 50);
}

fn kinds(events: &[SweepEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            SweepEvent::Prompt { .. } => "prompt",
            SweepEvent::Think { .. } => "think",
            SweepEvent::Wait { .. } => "wait",
            SweepEvent::Cut { .. } => "cut",
            SweepEvent::Answer { .. } => "answer",
            SweepEvent::Budget(_) => "budget",
            SweepEvent::Done(_) => "done",
        })
        .collect()
}

#[test]
fn a_natural_end_fills_every_larger_budget_with_one_answer() {
    // Thinks "Hello world" and stops; every answer is "\boxed{B}".
    let config = SweepConfig {
        budgets: vec![32, 1, 8, 2, 16],
        waits: 0,
        min_thinking: 0,
        max_answer_tokens: 8,
    };
    let run = assert_sweep_equals_single_runs(&config, &PROMPT, scripted);
    let cuts: Vec<(Vec<usize>, bool)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            SweepEvent::Cut {
                budgets,
                budget_exhausted,
                ..
            } => Some((budgets.clone(), *budget_exhausted)),
            _ => None,
        })
        .collect();
    assert_eq!(
        cuts,
        vec![(vec![1], true), (vec![2], true), (vec![8, 16, 32], false)]
    );
    let summary = &run.summary;
    // Three thinking samples (the last a stop token), then three answers of four samples:
    // separate runs would take 2 + 3 + 3 x 3 thinking samples and five answers.
    assert_eq!(summary.sampled_tokens, 3 + 3 * 4);
    let answers_at_8 = run
        .events
        .iter()
        .filter(|e| matches!(e, SweepEvent::Answer { budget: 8, .. }))
        .count();
    assert_eq!(answers_at_8, 3, "the natural end's answer is decoded once");
    assert_eq!(summary.rewinds, 2);
    for r in &summary.results {
        assert_eq!(r.summary.choice.as_deref(), Some("B"), "{r:?}");
        let natural = r.budget >= 8;
        assert_eq!(r.answered_with, if natural { 8 } else { r.budget });
        let stop = if natural {
            StopReason::Natural
        } else {
            StopReason::Budget
        };
        assert_eq!(r.summary.think_stop, Some(stop));
    }
    assert_eq!(summary.results[2].summary, summary.results[4].summary);
    assert_eq!(summary.think_tokens, 2);
}

#[test]
fn cut_at_a_natural_end_comes_before_the_wait_of_larger_budgets() {
    // After "Hello world" (2 tokens) budget 3 cannot afford a "Wait" (2 + 1 is not below 3)
    // and answers; 16 goes on: "Wait", ".", end.
    let config = SweepConfig {
        budgets: vec![3, 16],
        waits: 1,
        min_thinking: 0,
        max_answer_tokens: 8,
    };
    let run = assert_sweep_equals_single_runs(&config, &PROMPT, scripted);
    assert_eq!(
        kinds(&run.events),
        [
            "prompt", "think", "think", "cut", "answer", "answer", "answer", "budget", "wait",
            "think", "cut", "answer", "answer", "answer", "budget", "done"
        ]
    );
}

#[test]
fn min_thinking_keeps_thinking_through_early_ends() {
    for salt in 0..20 {
        let config = SweepConfig {
            budgets: vec![4, 12, 30],
            waits: 0,
            min_thinking: 12,
            max_answer_tokens: 2,
        };
        let prompt = [salt + 2000, 9];
        let run = assert_sweep_equals_single_runs(&config, &prompt, hashed);
        for r in &run.summary.results {
            // No natural end below the minimum, unless a "Wait" would not fit the budget.
            if r.summary.think_stop == Some(StopReason::Natural) {
                let floor = 12.min(r.budget - 1);
                assert!(r.summary.budget_used >= floor, "{r:?}");
            }
        }
    }
}

#[test]
fn budget_zero_and_duplicates() {
    let config = SweepConfig {
        budgets: vec![0, 5, 0, 5],
        waits: 0,
        min_thinking: 0,
        max_answer_tokens: 3,
    };
    let run = assert_sweep_equals_single_runs(&config, &PROMPT, hashed);
    assert_eq!(run.summary.results.len(), 2);
    assert_eq!(run.summary.results[0].position, 0);
    let empty = SweepConfig {
        budgets: vec![],
        ..SweepConfig::default()
    };
    assert_eq!(
        Sweep::new(FakeCodec::new(), PROMPT.to_vec(), &empty).err(),
        Some(ReasonError::NoBudgets)
    );
}

#[test]
fn cancel_at_any_token_ends_with_every_budget_accounted_for() {
    let config = SweepConfig {
        budgets: vec![0, 2, 5, 9, 20],
        waits: 2,
        min_thinking: 0,
        max_answer_tokens: 4,
    };
    let prompt = [11, 12];
    let full = sweep(&config, &prompt, hashed, None);
    assert!(full.model.samples > 8);
    for at in 1..=full.model.samples {
        let run = sweep(&config, &prompt, hashed, Some(at));
        let ctx = format!("cancelled at sample {at}");
        assert_eq!(run.summary.stop, StopReason::Cancelled, "{ctx}");
        assert_eq!(run.summary.results.len(), 5, "{ctx}");
        assert_eq!(
            run.model.samples, at,
            "{ctx}: nothing is sampled after a cancel"
        );
        for (r, f) in run.summary.results.iter().zip(&full.summary.results) {
            // Budgets answered before the cancel keep their answer; the rest are cancelled.
            if r.summary.stop != StopReason::Cancelled {
                assert_eq!(r.summary, f.summary, "{ctx}");
            }
        }
        let budget_events = run
            .events
            .iter()
            .filter(|e| matches!(e, SweepEvent::Budget(_)))
            .count();
        assert_eq!(budget_events, 5, "{ctx}");
        assert!(
            matches!(run.events.last(), Some(SweepEvent::Done(_))),
            "{ctx}"
        );
    }
}

#[test]
fn driver_protocol_errors() {
    let mut sw = Sweep::new(FakeCodec::new(), PROMPT.to_vec(), &SweepConfig::default()).unwrap();
    assert_eq!(
        sw.on_token(5, 0.0),
        Err(ReasonError::UnexpectedToken { id: 5 })
    );
    assert!(matches!(sw.next_step(0.0), Ok(SweepStep::Feed(_))));
    assert!(matches!(sw.next_step(0.0), Ok(SweepStep::Sample)));
    assert_eq!(sw.next_step(0.0), Err(ReasonError::TokenNotReported));
    assert_eq!(
        sw.max_sequence_len(),
        Controller::reasoning(
            FakeCodec::new(),
            PROMPT.to_vec(),
            SweepConfig::default().run_config(4096)
        )
        .unwrap()
        .max_sequence_len()
    );
}

#[test]
fn sweep_event_json_shapes() {
    let cut = SweepEvent::Cut {
        budgets: vec![8, 16],
        position: 40,
        think_tokens: 5,
        budget_used: 6,
        thinking_tail: "\n".into(),
        text: ANSWER_PREFIX.into(),
        budget_exhausted: false,
    };
    let json = serde_json::to_string(&cut).unwrap();
    assert_eq!(
        json,
        r#"{"event":"cut","budgets":[8,16],"position":40,"think_tokens":5,"budget_used":6,"thinking_tail":"\n","text":"<|im_start|>answer","budget_exhausted":false}"#
    );
    assert_eq!(serde_json::from_str::<SweepEvent>(&json).unwrap(), cut);
    let answer = SweepEvent::Answer {
        budget: 8,
        id: 3,
        text: "B".into(),
    };
    assert_eq!(
        serde_json::to_string(&answer).unwrap(),
        r#"{"event":"answer","budget":8,"id":3,"text":"B"}"#
    );
    let config: SweepConfig = serde_json::from_str(r#"{"budgets":[64]}"#).unwrap();
    assert_eq!(config.max_answer_tokens, DEFAULT_MAX_ANSWER_TOKENS);
}
