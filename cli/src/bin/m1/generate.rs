//! `m1 generate`: a plain reply or raw continuation, through the same driver loop as `ask`.

use std::cell::Cell;
use std::time::Instant;

use m1_engine::backend::run_controller;
use m1_engine::reason::{chat_prompt, ChatConfig, Controller, TextCodec, QWEN_SYSTEM_PROMPT};
use m1_engine::tokenizer::{Tokenizer, TokenizerError};

use super::args::GenerateArgs;
use super::error::CliError;
use super::load;
use super::output::{self, Mode, Printer};

pub fn run(args: &GenerateArgs) -> Result<(), CliError> {
    let sampling = args.sampling.to_sampling()?;
    let mut loaded = load::load(&args.model, false)?;
    // Raw text starts a document, so it gets BOS where the model asks for one. Otherwise
    // the prompt is ChatML (our models: Qwen2.5, m1, SmolLM2) built by `chat_prompt`
    // rather than the file's Jinja template, which would need a template engine; ChatML
    // has no BOS.
    let tokens = if args.raw {
        Tokenizer::encode(&mut loaded.model.tokenizer, &args.prompt, true)
    } else {
        let system = args.system.as_deref().unwrap_or(QWEN_SYSTEM_PROMPT);
        TextCodec::encode(&loaded.model.tokenizer, &chat_prompt(system, &args.prompt))
            .map_err(|e| TokenizerError::Encode(e.to_string()))
    }
    .map_err(|e| CliError::Usage(format!("the prompt cannot be tokenized: {e}")))?;
    if tokens.is_empty() {
        return Err(CliError::Usage("the prompt is empty".to_string()));
    }
    let mut controller = Controller::chat(
        &loaded.model.tokenizer,
        tokens,
        ChatConfig {
            max_tokens: args.max_tokens,
        },
    )?;

    let mut printer = Printer::new(
        std::io::stdout().lock(),
        args.json,
        output::use_color(),
        Mode::Chat,
    );
    let start = Instant::now();
    let failed = Cell::new(false);
    let summary = pollster::block_on(run_controller(
        &mut loaded.model.backend,
        &mut controller,
        &sampling,
        || start.elapsed().as_secs_f64() * 1000.0,
        |event| {
            printer.event(&event);
            failed.set(printer.failed());
        },
        || failed.get(),
    ));
    printer.finish()?;
    let summary = summary?;
    if !args.json {
        // Statistics go to stderr so stdout holds only the generated text.
        let mut parts = vec![format!(
            "{} ({})",
            output::tokens(summary.answer_tokens),
            output::stop_name(summary.stop)
        )];
        parts.extend(output::timing_parts(&summary));
        eprintln!("m1: {}", parts.join(" · "));
    }
    Ok(())
}
