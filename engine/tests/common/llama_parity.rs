//! Greedy decoding on the CPU path against llama.cpp's fixture (scripts/llama_reference.py),
//! the check that tests/cpu_model.rs runs natively and tests/cpu_wasm.rs in WebAssembly.
//!
//! Free-running, as a user sees it: our first 32 greedy tokens after the prompt are compared
//! with llama.cpp's under every recorded run (its default, the prompt fed token by token,
//! flash attention, an AVX2 and an AVX-512 build). Those runs disagree with each other on
//! some prompts: where two logits are nearly tied, last-bit differences between llama.cpp's
//! own kernels pick one or the other, and the text goes its own way from there. Where every
//! run of llama.cpp gives the same 32 tokens, ours must equal them exactly.
//!
//! Teacher-forced, step by step: prefill the prompt in one batch, feed llama.cpp's reference
//! tokens one at a time and take our argmax at every step. A step may pick another token
//! only where llama.cpp itself cannot tell them apart: the token must be among llama.cpp's
//! top 5 and within llama.cpp's own numerical noise of its best logit (the largest logit
//! difference between llama.cpp evaluating the same text token by token and in one batch,
//! maximised over the model's prompts).

use std::collections::HashSet;

use m1_engine::cpu::{greedy, CpuModel};
use serde_json::Value;

use super::ids;

/// Runs every prompt of model `name` in `fixture`; `Err` lists each failure. `log` gets a
/// line per prompt and a summary (wasm32 has no stderr).
pub fn check(
    name: &str,
    model: &mut CpuModel,
    fixture: &Value,
    log: &dyn Fn(String),
) -> Result<(), String> {
    let prompts = fixture["models"][name]["prompts"]
        .as_object()
        .ok_or_else(|| format!("the fixture has no prompts for {name}"))?;
    let noise = noise(prompts);
    log(format!(
        "{name}: llama.cpp batch-vs-incremental logit noise up to {noise:.3}"
    ));
    let mut failures = Vec::new();
    let (mut exact, mut equal_a_run, mut ambiguous) = (0, 0, 0);
    for (key, case) in prompts {
        let prompt = ids(&case["ids"]);
        let want = ids(&case["greedy"]);
        let forward = |model: &mut CpuModel, tokens: &[u32]| {
            model
                .forward(tokens, model.position())
                .map_err(|e| format!("{key}: forward failed: {e}"))
        };

        // Free-running.
        model.reset();
        let mut logits = forward(model, &prompt)?;
        let mut ours = Vec::with_capacity(want.len());
        for i in 0..want.len() {
            ours.push(greedy(&logits).expect("logits"));
            if i + 1 < want.len() {
                logits = forward(model, &ours[i..])?;
            }
        }
        let runs = llama_runs(case);
        let agree = runs.iter().all(|(_, r)| *r == want);
        let matching: Vec<&str> = runs
            .iter()
            .filter(|(_, r)| *r == ours)
            .map(|(run, _)| run.as_str())
            .collect();
        let first_difference = |other: &[u32]| ours.iter().zip(other).position(|(a, b)| a != b);
        equal_a_run += usize::from(!matching.is_empty());
        ambiguous += usize::from(!agree);
        log(format!(
            "{name} {key}: {} prompt tokens; llama.cpp's {} runs {}; our 32 tokens {}",
            prompt.len(),
            runs.len(),
            if agree {
                "agree".to_string()
            } else {
                let distinct: HashSet<&Vec<u32>> = runs.iter().map(|(_, r)| r).collect();
                format!("give {} different outputs", distinct.len())
            },
            if matching.is_empty() {
                format!(
                    "equal none of them (first difference at token {:?})",
                    runs.iter().filter_map(|(_, r)| first_difference(r)).max()
                )
            } else {
                format!("equal {}", matching.join(", "))
            }
        ));
        if agree && matching.is_empty() {
            failures.push(format!(
                "{key}: all {} runs of llama.cpp give {want:?}; ours {ours:?} differ at token {:?}",
                runs.len(),
                first_difference(&want)
            ));
        }

        // Teacher-forced.
        model.reset();
        let mut logits = forward(model, &prompt)?;
        let mut differs = Vec::new();
        for (i, &expected) in want.iter().enumerate() {
            let ours = greedy(&logits).expect("logits");
            match judge_step(key, case, i, ours, expected, noise) {
                Ok(None) => {}
                Ok(Some(gap)) => differs.push((i, gap)),
                Err(failure) => failures.push(failure),
            }
            if i + 1 < want.len() {
                logits = forward(model, &[expected])?;
            }
        }
        if differs.is_empty() {
            exact += 1;
        } else {
            log(format!(
                "{name} {key}: teacher-forced, steps where we pick a near-tie llama.cpp ranks second (step, gap): {differs:?}"
            ));
        }
    }
    log(format!(
        "{name}: our 32 greedy tokens equal a llama.cpp run's on {equal_a_run} of {n} prompts (llama.cpp's own runs disagree on {ambiguous} of {n}); \
         teacher-forced, every step equals llama.cpp's reference on {exact} of {n}",
        n = prompts.len()
    ));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// llama.cpp's numerical noise on one model: the largest logit difference between it
/// evaluating a prompt and its greedy tokens token by token and in one batch, over `prompts`.
pub fn noise(prompts: &serde_json::Map<String, Value>) -> f64 {
    prompts
        .values()
        .map(|c| {
            c["self_noise"]
                .as_f64()
                .expect("fixture records self_noise")
        })
        .fold(0f64, f64::max)
}

/// One teacher-forced step of prompt `key`: `Ok(None)` where our token is llama.cpp's,
/// `Ok(Some(gap))` where it is a near-tie llama.cpp cannot tell from its own pick (in its top
/// 5, `gap` below its best, within `noise`), otherwise the failure.
pub fn judge_step(
    key: &str,
    case: &Value,
    i: usize,
    ours: u32,
    expected: u32,
    noise: f64,
) -> Result<Option<f64>, String> {
    if ours == expected {
        return Ok(None);
    }
    let top = top5(case, i);
    match top.iter().find(|(t, _)| *t == ours) {
        Some(&(_, gap)) if gap <= noise => Ok(Some(gap)),
        _ => Err(format!(
            "{key} token {i}: ours {ours}, llama.cpp {expected}; llama.cpp's top 5 (token, gap): {top:?}"
        )),
    }
}

/// llama.cpp's greedy tokens for one prompt under each recorded run ("avx2/batch", ...).
fn llama_runs(case: &Value) -> Vec<(String, Vec<u32>)> {
    let runs = case["runs"]
        .as_object()
        .expect("fixture records llama.cpp's runs");
    runs.iter()
        .map(|(run, tokens)| (run.clone(), ids(tokens)))
        .collect()
}

/// llama.cpp's top 5 at reference step `i`, as (token, distance below its best logit).
fn top5(case: &Value, i: usize) -> Vec<(u32, f64)> {
    case["top5"][i]
        .as_array()
        .expect("fixture records the top 5")
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap()))
        .collect()
}
