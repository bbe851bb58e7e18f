//! The budget sweep on the GPU backend. Its decode runs steps ahead of the ids it has read
//! (two in flight), so a sweep's rewind to a cut must drop those speculative steps and every
//! budget's answer must still equal a separate run at that budget on the same device. The
//! fake model of `backend/tests.rs` holds the sweep's logic to this over 90 settings, and the
//! CPU path is checked against `m1 ask` in `cli/tests`; this is the path the page's "Compare
//! budgets" view takes on WebGPU. SmolLM2 on lavapipe, small budgets: each run costs a prefill.
#![cfg(not(target_arch = "wasm32"))]

use futures::executor::block_on;
use m1_engine::backend::{run_controller, run_sweep, Sampling};
use m1_engine::reason::{Controller, Event, Question, StopReason, Sweep, SweepConfig};

mod common;
use common::{gpu_or_skip, load_on_gpu, test_model, SMOLLM};

#[test]
fn a_sweep_on_the_gpu_equals_separate_runs() {
    let Some(path) = test_model(SMOLLM) else {
        return;
    };
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    let mut loaded = load_on_gpu(&path, gpu);
    let question = Question {
        question: "Is 7 a prime number?".into(),
        context: None,
        options: vec![("A".into(), "yes".into()), ("B".into(), "no".into())],
    };
    let seeded = Sampling {
        temperature: 0.8,
        top_p: 0.9,
        seed: 11,
    };
    // Greedy, then "Wait" once under seeded top-p: the sweep's cuts fall inside the thinking,
    // after an inserted "Wait", and (budget 0) before any.
    for (waits, sampling) in [(0, Sampling::GREEDY), (1, seeded)] {
        let config = SweepConfig {
            budgets: vec![0, 3, 7],
            waits,
            min_thinking: 0,
            max_answer_tokens: 3,
        };
        let mut sweep = Sweep::for_question(&loaded.tokenizer, &question, &config).expect("sweep");
        let summary = block_on(run_sweep(
            &mut loaded.backend,
            &mut sweep,
            &sampling,
            || 0.0,
            |_| {},
            || false,
        ))
        .expect("sweep run");
        let ctx = format!("waits {waits}, {sampling:?}");
        assert_eq!(summary.stop, StopReason::Natural, "{ctx}");
        assert_eq!(summary.results.len(), 3, "{ctx}");
        assert!(summary.rewinds > 0, "{ctx}: the sweep never rewound");
        for r in &summary.results {
            let mut ctl = Controller::reasoning_for(
                &loaded.tokenizer,
                &question,
                config.run_config(r.budget),
            )
            .expect("prompt");
            let mut answer = Vec::new();
            let want = block_on(run_controller(
                &mut loaded.backend,
                &mut ctl,
                &sampling,
                || 0.0,
                |e| {
                    if let Event::Answer { id, .. } = e {
                        answer.push(id);
                    }
                },
                || false,
            ))
            .expect("single run");
            assert_eq!(r.summary, want, "budget {}: {ctx}", r.budget);
            assert_eq!(r.answer_ids, answer, "budget {}: {ctx}", r.budget);
        }
    }
}
