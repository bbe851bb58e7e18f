//! Pipelined GPU decoding (steps submitted before the last id is read; speculation dropped
//! wherever the controller overrides the model) gives exactly the events of step-by-step
//! decoding: greedy and seeded top-p, budgets 0, 16 and 64, "Wait" x 2, a Stop mid-run, on
//! SmolLM2 (the logic is the backend's, the same for every model; the 0.5B's layout of fused
//! weights is checked against the CPU by gpu_model.rs). Without an adapter or the model files it prints why and passes
//! (unless M1_REQUIRE_GPU=1).
#![cfg(not(target_arch = "wasm32"))]

use std::cell::Cell;

use futures::executor::block_on;
use m1_engine::backend::{run_controller, GpuBackend, Sampling};
use m1_engine::gguf::{read_header, FileSource};
use m1_engine::gpu::{GpuModel, GpuModelOptions};
use m1_engine::reason::{Controller, Event, Question, ReasonConfig};
use m1_engine::tokenizer::Tokenizer;

mod common;
use common::{gpu_or_skip, test_model, SMOLLM};

/// One run: its settings and, optionally, a Stop after this many thinking tokens.
struct Scenario {
    budget: usize,
    waits: usize,
    sampling: Sampling,
    stop_after: Option<usize>,
}

/// Each override once: an answer forced at once (budget 0), "Wait" twice then the budget
/// (greedy), a Stop while thinking (seeded top-p). lavapipe decodes a few tokens a second
/// on CI's two cores, so the runs are short.
fn scenarios() -> Vec<Scenario> {
    let top_p = Sampling {
        temperature: 0.8,
        top_p: 0.9,
        seed: 7,
    };
    let run = |budget, waits, sampling, stop_after| Scenario {
        budget,
        waits,
        sampling,
        stop_after,
    };
    vec![
        run(0, 0, Sampling::GREEDY, None),
        run(16, 2, Sampling::GREEDY, None),
        run(64, 2, top_p, Some(9)),
    ]
}

fn question() -> Question {
    Question {
        question: "Scurvy is caused by a lack of?".into(),
        context: None,
        options: vec![
            ("A".into(), "Iron".into()),
            ("B".into(), "Vitamin C".into()),
        ],
    }
}

/// The events of every scenario, timings dropped (they differ between runs by nature).
fn events(backend: &mut GpuBackend, tokenizer: &Tokenizer) -> Vec<String> {
    let mut out = Vec::new();
    for s in scenarios() {
        let config = ReasonConfig {
            budget: s.budget,
            waits: s.waits,
            min_thinking: 0,
            max_answer_tokens: 4,
        };
        let mut ctl = Controller::reasoning_for(tokenizer, &question(), config).expect("prompt");
        let thought = Cell::new(0usize);
        let summary = block_on(run_controller(
            backend,
            &mut ctl,
            &s.sampling,
            || 0.0,
            |e| {
                if matches!(e, Event::Think { .. }) {
                    thought.set(thought.get() + 1);
                }
                if let Event::Done(mut summary) = e {
                    summary.time_to_first_token_ms = None;
                    summary.prefill_tokens_per_s = None;
                    summary.decode_tokens_per_s = None;
                    out.push(format!("done {summary:?}"));
                } else {
                    out.push(format!("{e:?}"));
                }
            },
            || s.stop_after.is_some_and(|n| thought.get() >= n),
        ))
        .expect("run");
        out.push(format!(
            "budget {} waits {} {:?}: {:?} after {} thinking tokens",
            s.budget, s.waits, s.sampling, summary.stop, summary.think_tokens
        ));
    }
    out
}

#[test]
fn pipelined_decoding_equals_step_by_step() {
    let name = SMOLLM;
    let Some(path) = test_model(name) else {
        return;
    };
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    let mut src = FileSource::open(&path).expect("open");
    let header = block_on(read_header(&mut src)).expect("header");
    let tokenizer = Tokenizer::from_metadata(&header.metadata).expect("tokenizer");
    let options = GpuModelOptions {
        context: Some(512),
        ..GpuModelOptions::default()
    };
    let model = block_on(GpuModel::load(gpu, &header, src, options)).expect("load");
    let mut step_by_step = GpuBackend::with_lookahead(model, 0);
    let reference = events(&mut step_by_step, &tokenizer);
    let mut pipelined = GpuBackend::with_lookahead(step_by_step.into_model(), 2);
    let got = events(&mut pipelined, &tokenizer);
    for (i, (a, b)) in reference.iter().zip(&got).enumerate() {
        assert_eq!(a, b, "{name}: event {i} differs");
    }
    assert_eq!(reference.len(), got.len(), "{name}: event count");
    for line in reference.iter().filter(|l| l.starts_with("budget")) {
        println!("{name}: {line}");
    }
}
