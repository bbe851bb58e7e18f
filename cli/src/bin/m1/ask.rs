//! `m1 ask`: one question with streamed thinking and answer, or a scored JSONL batch.

use std::cell::Cell;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use m1_engine::backend::{run_controller, Backend, Sampling};
use m1_engine::reason::{
    medqa_records, Controller, LabeledQuestion, Question, ReasonConfig, Summary, TextCodec,
};
use serde_json::json;

use super::args::AskArgs;
use super::error::{CliError, FileProblem};
use super::load::{self, Loaded};
use super::output::{self, Mode, Printer};

pub fn run(args: &AskArgs) -> Result<(), CliError> {
    let sampling = args.sampling.to_sampling()?;
    let options = args.checked_options()?;
    // The batch file is read before the model, so a bad file fails fast.
    let batch = match &args.questions {
        Some(path) => Some(read_questions(path, args.limit)?),
        None => None,
    };
    let mut loaded = load::load(&args.model, false)?;
    let config = args.reason_config();
    match batch {
        Some(records) => run_batch(&mut loaded, &records, &config, &sampling, args.json),
        None => {
            let question = Question {
                // clap requires --question unless --questions is given.
                question: args.question.clone().unwrap_or_default(),
                context: args.context.clone(),
                options,
            };
            let stdout = std::io::stdout().lock();
            let mut printer = Printer::new(
                stdout,
                args.json,
                output::use_color(),
                Mode::Reason {
                    budget: config.budget,
                },
            );
            let summary = ask_one(
                &mut loaded.model.backend,
                &loaded.model.tokenizer,
                &question,
                &config,
                &sampling,
                &mut printer,
            );
            printer.finish()?;
            summary.map(|_| ())
        }
    }
}

/// Runs one question through the shared driver loop, showing its events with `printer`.
pub fn ask_one<B: Backend, C: TextCodec, W: Write>(
    backend: &mut B,
    codec: C,
    question: &Question,
    config: &ReasonConfig,
    sampling: &Sampling,
    printer: &mut Printer<W>,
) -> Result<Summary, CliError> {
    let mut controller = Controller::reasoning_for(codec, question, config.clone())?;
    let start = Instant::now();
    // The printer is written from the event callback and read by the cancel check; a
    // Cell carries "output failed" between the two without sharing the printer.
    let failed = Cell::new(false);
    let summary = pollster::block_on(run_controller(
        backend,
        &mut controller,
        sampling,
        || start.elapsed().as_secs_f64() * 1000.0,
        |event| {
            printer.event(&event);
            failed.set(printer.failed());
        },
        || failed.get(),
    ))?;
    Ok(summary)
}

/// Reads MedQA records, one JSON object per non-empty line, each with its line number.
pub fn read_questions(
    path: &Path,
    limit: Option<usize>,
) -> Result<Vec<(LabeledQuestion, usize)>, CliError> {
    let text = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(CliError::file(path, FileProblem::Directory)),
        _ => {
            std::fs::read_to_string(path).map_err(|e| CliError::file(path, FileProblem::Open(e)))?
        }
    };
    let mut records = Vec::new();
    for (line, record) in medqa_records(&text).take(limit.unwrap_or(usize::MAX)) {
        let record =
            record.map_err(|source| CliError::file(path, FileProblem::Record { line, source }))?;
        records.push((record, line));
    }
    if records.is_empty() {
        return Err(CliError::file(path, FileProblem::NoRecords));
    }
    Ok(records)
}

fn run_batch(
    loaded: &mut Loaded,
    records: &[(LabeledQuestion, usize)],
    config: &ReasonConfig,
    sampling: &Sampling,
    json: bool,
) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let total = records.len();
    let (mut correct, mut scored, mut unanswered) = (0usize, 0usize, 0usize);
    let write_err = |e: std::io::Error| CliError::Output(e);
    for (i, (record, _)) in records.iter().enumerate() {
        // Per-item events are not shown in a batch; a sink printer keeps the same loop.
        let mut sink = Printer::new(
            std::io::sink(),
            true,
            false,
            Mode::Reason {
                budget: config.budget,
            },
        );
        let s = ask_one(
            &mut loaded.model.backend,
            &loaded.model.tokenizer,
            &record.question,
            config,
            sampling,
            &mut sink,
        )?;
        let verdict = record
            .answer
            .as_ref()
            .map(|gold| s.choice.as_ref() == Some(gold));
        if let Some(ok) = verdict {
            scored += 1;
            correct += usize::from(ok);
        }
        if s.choice.is_none() {
            unanswered += 1;
        }
        let think_stop = s.think_stop.map(output::stop_name).unwrap_or("-");
        if json {
            let line = json!({
                "event": "item",
                "index": i,
                "choice": s.choice,
                "gold": record.answer,
                "correct": verdict,
                "stop": think_stop,
                "think_tokens": s.think_tokens,
                "answer_tokens": s.answer_tokens,
                "total_ms": s.total_ms,
            });
            writeln!(out, "{line}").map_err(write_err)?;
        } else {
            let mark = match verdict {
                Some(true) => "correct",
                Some(false) => "wrong",
                None => "no gold",
            };
            writeln!(
                out,
                "{:>4}/{total}  chose {:<2} gold {:<2} {mark:<8} thinking {} tokens ({think_stop}), {:.1} s",
                i + 1,
                s.choice.as_deref().unwrap_or("-"),
                record.answer.as_deref().unwrap_or("-"),
                s.think_tokens,
                s.total_ms / 1000.0
            )
            .map_err(write_err)?;
        }
        out.flush().map_err(write_err)?;
    }
    let accuracy = (scored > 0).then(|| correct as f64 / scored as f64);
    if json {
        let line = json!({
            "event": "accuracy",
            "correct": correct,
            "scored": scored,
            "total": total,
            "unanswered": unanswered,
            "accuracy": accuracy,
        });
        writeln!(out, "{line}").map_err(write_err)?;
    } else {
        let pct = accuracy.map_or("n/a".to_string(), |a| format!("{:.1}%", a * 100.0));
        writeln!(
            out,
            "accuracy: {correct}/{scored} = {pct} ({unanswered} of {total} with no extracted choice)"
        )
        .map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}
