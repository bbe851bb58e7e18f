//! `m1 eval`: a JSONL file of MedQA-form questions, each run as one budget sweep (one
//! thinking trace, an answer per budget), scored per budget with a 95% Wilson interval.

use std::cell::Cell;
use std::io::Write;
use std::time::Instant;

use m1_engine::backend::{run_sweep, Backend, Sampling};
use m1_engine::reason::{
    pick_items, AccuracyRow, AccuracyTable, LabeledQuestion, Sweep, SweepConfig, SweepSummary,
    TextCodec,
};
use serde_json::json;

use super::args::EvalArgs;
use super::ask::read_questions;
use super::error::CliError;
use super::load;
use super::output;

pub fn run(args: &EvalArgs) -> Result<(), CliError> {
    let sampling = args.sampling.to_sampling()?;
    let config = args.sweep_config()?;
    // The file is read (and its records checked) before the model.
    let records = read_questions(&args.questions, None)?;
    let seed = args.shuffle.then_some(args.sampling.seed);
    let picked = pick_items(records.len(), args.limit, seed);
    let mut loaded = load::load(&args.model, false)?;
    let mut out = std::io::stdout().lock();
    let write_err = CliError::Output;
    let mut table = AccuracyTable::new(&config.budgets);
    let (mut fed, mut sampled) = (0usize, 0usize);
    let start = Instant::now();
    for (n, &index) in picked.iter().enumerate() {
        let (record, line) = &records[index];
        let id = record.id.clone().unwrap_or_else(|| line.to_string());
        let s = sweep_one(
            &mut loaded.model.backend,
            &loaded.model.tokenizer,
            record,
            &config,
            &sampling,
        )?;
        fed += s.fed_tokens;
        sampled += s.sampled_tokens;
        let mut marks = Vec::new();
        for r in &s.results {
            let verdict = record
                .answer
                .as_ref()
                .map(|gold| r.summary.choice.as_ref() == Some(gold));
            table.add(r.budget, verdict);
            if args.json {
                let line = json!({
                    "event": "item",
                    "index": index,
                    "id": id,
                    "budget": r.budget,
                    "choice": r.summary.choice,
                    "gold": record.answer,
                    "correct": verdict,
                    "answer": r.summary.answer,
                    "answer_tokens": r.answer_ids,
                    "answer_prefix": r.summary.answer_prefix,
                    "think_tokens": r.summary.think_tokens,
                    "thinking": r.summary.thinking,
                    "budget_used": r.summary.budget_used,
                    "waits": r.summary.waits,
                    "think_stop": r.summary.think_stop.map(output::stop_name),
                    "answer_stop": output::stop_name(r.summary.stop),
                    "answered_with": r.answered_with,
                    "position": r.position,
                    "cut_ms": r.cut_ms,
                    "answer_ms": r.answer_ms,
                });
                writeln!(out, "{line}").map_err(write_err)?;
            } else {
                let mark = match verdict {
                    Some(true) => "+",
                    Some(false) => "-",
                    None => "",
                };
                marks.push(format!(
                    "{}:{}{mark}",
                    r.budget,
                    r.summary.choice.as_deref().unwrap_or("?")
                ));
            }
        }
        if args.json {
            let line = json!({
                "event": "sweep",
                "index": index,
                "id": id,
                "prompt_tokens": s.prompt_tokens,
                "think_tokens": s.think_tokens,
                "fed_tokens": s.fed_tokens,
                "sampled_tokens": s.sampled_tokens,
                "total_ms": s.total_ms,
            });
            writeln!(out, "{line}").map_err(write_err)?;
        } else {
            writeln!(
                out,
                "{:>4}/{}  {id}  gold {:<2} {}  thought {} tokens, {:.1} s",
                n + 1,
                picked.len(),
                record.answer.as_deref().unwrap_or("-"),
                marks.join(" "),
                s.think_tokens,
                s.total_ms / 1000.0
            )
            .map_err(write_err)?;
        }
        out.flush().map_err(write_err)?;
    }
    let rows = table.rows();
    let total_s = start.elapsed().as_secs_f64();
    if args.json {
        let line = json!({
            "event": "summary",
            "items": picked.len(),
            "budgets": rows,
            "fed_tokens": fed,
            "sampled_tokens": sampled,
            "total_ms": total_s * 1000.0,
        });
        writeln!(out, "{line}").map_err(write_err)?;
    } else {
        write_table(&mut out, &rows).map_err(write_err)?;
        writeln!(
            out,
            "{} items in {total_s:.0} s: {fed} tokens fed, {sampled} sampled",
            picked.len()
        )
        .map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}

/// One question's sweep through the shared driver loop. Output failures end the run in
/// `ask`; here nothing is printed until the sweep is done, so there is nothing to cancel on.
pub fn sweep_one<B: Backend, C: TextCodec + Clone>(
    backend: &mut B,
    codec: C,
    record: &LabeledQuestion,
    config: &SweepConfig,
    sampling: &Sampling,
) -> Result<SweepSummary, CliError> {
    let mut sweep = Sweep::for_question(codec, &record.question, config)?;
    let start = Instant::now();
    let never = Cell::new(false);
    let summary = pollster::block_on(run_sweep(
        backend,
        &mut sweep,
        sampling,
        || start.elapsed().as_secs_f64() * 1000.0,
        |_| {},
        || never.get(),
    ))?;
    Ok(summary)
}

fn write_table(out: &mut impl Write, rows: &[AccuracyRow]) -> std::io::Result<()> {
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1}%", v * 100.0));
    writeln!(
        out,
        "\nbudget      n  correct  accuracy  95% Wilson interval"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:>6}  {:>5}  {:>7}  {:>8}  {} - {}",
            r.budget,
            r.n,
            r.correct,
            pct(r.accuracy),
            pct(r.low),
            pct(r.high)
        )?;
    }
    Ok(())
}
