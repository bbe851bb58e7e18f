//! Command-line syntax (clap derive). Checks that need more than one flag at a time live in
//! the checking methods below, which report usage errors (exit code 2) like clap's own.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use m1_engine::backend::{Sampling, DEFAULT_SEED};
use m1_engine::quantize::FileType;
use m1_engine::reason::{
    ReasonConfig, SweepConfig, DEFAULT_BUDGET, DEFAULT_MAX_ANSWER_TOKENS, DEFAULT_SWEEP_BUDGETS,
};

use super::error::CliError;

const ABOUT: &str =
    "Run the m1 medical reasoning model (or any qwen2/llama GGUF) from the terminal";

const LONG_ABOUT: &str = "\
Run the m1 medical reasoning model (a Qwen2.5-7B fine-tune) or any qwen2/llama GGUF file
from the terminal, with m1's budget forcing: the model thinks for at most --budget tokens,
then is forced to answer.

Compute: WebGPU (Vulkan, Metal or DX12) by default; where no GPU adapter can be opened,
the CPU, with a note on stderr saying why; --cpu selects the CPU explicitly.";

const EXAMPLES: &str = "\
Examples:
  # Answer a multiple-choice question, thinking at most 1024 tokens
  m1 ask --model m1-7b-23k-q4_k_m.gguf --budget 1024 \\
     --question 'Which vitamin deficiency causes scurvy?' \\
     --option 'A=Vitamin A' --option 'B=Vitamin C' --option 'C=Vitamin D'

  # The same as JSON lines (one event per line: prompt, think, answer_prefix, answer, done)
  m1 ask --model m1.gguf --question '...' --option 'A=...' --option 'B=...' --json

  # Score a MedQA JSONL file (one {question, options, answer_idx} record per line)
  m1 ask --model m1.gguf --questions medqa_test.jsonl --budget 2048 --limit 50

  # Accuracy by thinking budget: one thinking trace per question, an answer per budget
  m1 eval --model m1.gguf --questions pubmedqa-test.jsonl --budgets 128,512,2048 \\
     --limit 50 --shuffle --seed 7

  # Plain generation with the model's chat template, or raw text completion
  m1 generate --model qwen2.5-0.5b-instruct.gguf --prompt 'What is the capital of France?'
  m1 generate --model qwen2.5-0.5b-instruct.gguf --raw --prompt 'Once upon a time'

  # Make the GGUF from Hugging Face safetensors (bf16/f16/f32; 7B q4_k_m: ~4.7 GB)
  huggingface-cli download UCSC-VLAA/m1-7B-23K --local-dir m1-7B-23K
  m1 quantize --input m1-7B-23K --output m1-7b-23k-q4_k_m.gguf --type q4_k_m

  # Inspect a GGUF file; measure load, prefill and decode speed
  m1 info m1.gguf
  m1 bench --model m1.gguf --cpu --prompt-tokens 128 --gen-tokens 64

Exit codes:
  0  success
  1  the run failed (compute error, context too small, output error)
  2  bad arguments
  3  bad input file: missing, not GGUF, truncated, unsupported architecture or tensor
     type, unusable tokenizer, or a malformed --questions record; for quantize, a model
     folder with a missing or malformed config, tokenizer or shard, an unknown
     architecture or a tensor shape that contradicts config.json";

#[derive(Debug, Parser)]
#[command(
    name = "m1",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = EXAMPLES,
    after_help = "Run `m1 --help` for examples and exit codes.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer a question with m1's budget-forced reasoning (or score a JSONL file of them)
    #[command(after_long_help = EXAMPLES)]
    Ask(AskArgs),
    /// Score a JSONL file at several thinking budgets: one budget sweep per question
    /// (thinking once to the largest budget), accuracy per budget with a 95% interval
    #[command(after_long_help = EXAMPLES)]
    Eval(EvalArgs),
    /// Generate a reply to a prompt (chat template unless --raw), without budget forcing
    Generate(GenerateArgs),
    /// Describe a GGUF file: architecture, sizes, tensor types, tokenizer, chat template
    Info(InfoArgs),
    /// Measure load speed, prefill and decode throughput, time to first token, peak memory
    Bench(BenchArgs),
    /// Convert a Hugging Face model folder (safetensors) to a quantized GGUF file
    Quantize(QuantizeArgs),
}

/// Which model file and how to run it.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The GGUF model file
    #[arg(long, short = 'm', value_name = "FILE")]
    pub model: PathBuf,

    /// Run on the CPU instead of the GPU
    #[arg(long)]
    pub cpu: bool,

    /// Longest sequence (prompt + thinking + answer) to allow [default: on the CPU the
    /// model's context length, its KV cache grows as a run needs; on the GPU 8192, capped at
    /// the model's context length, allocated up front]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub ctx: Option<u64>,
}

/// How tokens are picked. The defaults are m1's recipe: greedy.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy (m1's evaluation setting)
    #[arg(
        long,
        value_name = "T",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub temperature: f32,

    /// Nucleus sampling: keep the most likely tokens up to this probability mass, in (0, 1]
    #[arg(
        long,
        value_name = "P",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub top_p: f32,

    /// Seed for sampling (unused when greedy; with `eval --shuffle` also picks the items); a
    /// run is reproducible per seed
    #[arg(long, value_name = "S", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn to_sampling(&self) -> Result<Sampling, CliError> {
        let sampling = Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
        };
        sampling
            .validate()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(sampling)
    }
}

#[derive(Debug, Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// The question text
    #[arg(
        long,
        short = 'q',
        value_name = "TEXT",
        required_unless_present = "questions"
    )]
    pub question: Option<String>,

    /// Background text shown before the question (PubMedQA-style abstract)
    #[arg(long, value_name = "TEXT", conflicts_with = "questions")]
    pub context: Option<String>,

    /// An answer option as LETTER=TEXT, e.g. "A=Aspirin"; repeat for each option, in order
    #[arg(
        long = "option",
        short = 'o',
        value_name = "LETTER=TEXT",
        value_parser = parse_option,
        conflicts_with = "questions"
    )]
    pub options: Vec<(String, String)>,

    /// Score a JSONL file of MedQA records ({"question", "options", "answer_idx"}) instead
    /// of one question: prints each item's choice and the accuracy
    #[arg(long, value_name = "FILE.jsonl", conflicts_with = "question")]
    pub questions: Option<PathBuf>,

    /// With --questions: only the first N records
    #[arg(long, value_name = "N", requires = "questions")]
    pub limit: Option<usize>,

    /// Thinking budget in tokens; when it runs out the answer is forced with
    /// "Final Answer:" (m1's accuracy saturates around 4096)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BUDGET)]
    pub budget: usize,

    #[command(flatten)]
    pub forcing: ForcingArgs,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// Print one JSON object per line: the prompt token ids, each thinking and answer token,
    /// the forced answer prefix, and a final "done" object whose "stop" says how thinking
    /// ended ("budget" or "natural") and "answer_stop" how the answer ended
    #[arg(long)]
    pub json: bool,
}

/// What every budget's run shares: "Wait"s, minimum thinking and the answer cap.
#[derive(Debug, Args)]
pub struct ForcingArgs {
    /// How many times a natural end of thinking is replaced by "Wait" to think longer
    #[arg(long = "wait", value_name = "N", default_value_t = 0)]
    pub waits: usize,

    /// Keep thinking until N tokens: an earlier end of thinking is replaced by "Wait"
    /// (s1's minimum thinking; these do not count against --wait)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_thinking: usize,

    /// Most answer tokens after thinking
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ANSWER_TOKENS)]
    pub max_answer_tokens: usize,
}

impl AskArgs {
    pub fn reason_config(&self) -> ReasonConfig {
        ReasonConfig {
            budget: self.budget,
            waits: self.forcing.waits,
            min_thinking: self.forcing.min_thinking,
            max_answer_tokens: self.forcing.max_answer_tokens,
        }
    }

    /// Options in order, with duplicate letters refused (the model could not tell them
    /// apart, and scoring would be ambiguous).
    pub fn checked_options(&self) -> Result<Vec<(String, String)>, CliError> {
        for (i, (letter, _)) in self.options.iter().enumerate() {
            if self.options[..i].iter().any(|(l, _)| l == letter) {
                return Err(CliError::Usage(format!(
                    "option {letter} is given twice; each --option needs its own letter"
                )));
            }
        }
        Ok(self.options.clone())
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// A JSONL file of MedQA records ({"question", "options" as an object or a list,
    /// "answer_idx", optional "context" and "id"})
    #[arg(long, value_name = "FILE.jsonl")]
    pub questions: PathBuf,

    /// Thinking budgets, comma-separated; each question thinks once, to the largest
    #[arg(
        long,
        value_name = "B1,B2,...",
        value_delimiter = ',',
        num_args = 1..,
        default_values_t = DEFAULT_SWEEP_BUDGETS
    )]
    pub budgets: Vec<usize>,

    /// Only N records: the first N, or with --shuffle N picked at random
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Pick the --limit records at random, seeded by --seed (the page's "N at random"
    /// picks the same ones for the same seed)
    #[arg(long)]
    pub shuffle: bool,

    #[command(flatten)]
    pub forcing: ForcingArgs,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// Print one JSON object per line: per item and budget ("event": "item", with id,
    /// budget, choice, gold, correct, answer, answer_tokens), per item ("sweep": its cost),
    /// then "summary" with each budget's n, correct, accuracy and 95% interval (low, high)
    #[arg(long)]
    pub json: bool,
}

impl EvalArgs {
    pub fn sweep_config(&self) -> Result<SweepConfig, CliError> {
        if self.budgets.is_empty() {
            return Err(CliError::Usage(
                "--budgets needs at least one budget".into(),
            ));
        }
        // Ascending and once each, as the sweep answers them: the table lists each once.
        let mut budgets = self.budgets.clone();
        budgets.sort_unstable();
        budgets.dedup();
        Ok(SweepConfig {
            budgets,
            waits: self.forcing.waits,
            min_thinking: self.forcing.min_thinking,
            max_answer_tokens: self.forcing.max_answer_tokens,
        })
    }
}

/// `LETTER=TEXT`: one letter A-Z (case-insensitive), then the option's text.
fn parse_option(s: &str) -> Result<(String, String), String> {
    let (letter, text) = s
        .split_once('=')
        .ok_or_else(|| format!("expected LETTER=TEXT, e.g. \"A=Aspirin\", got {s:?}"))?;
    let letter = letter.trim();
    let mut chars = letter.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => {}
        _ => {
            return Err(format!(
                "the option label must be one letter A-Z, got {letter:?} in {s:?}"
            ))
        }
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("option {letter} has no text"));
    }
    Ok((letter.to_ascii_uppercase(), text.to_string()))
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// The user message (or, with --raw, the exact text to continue)
    #[arg(long, short = 'p', value_name = "TEXT")]
    pub prompt: String,

    /// System message for the chat template [default: Qwen's default system prompt]
    #[arg(long, value_name = "TEXT", conflicts_with = "raw")]
    pub system: Option<String>,

    /// Continue the prompt text as is: no chat template (special tokens written in the
    /// text, like <|im_start|>, are still recognised)
    #[arg(long)]
    pub raw: bool,

    /// Most tokens to generate; generation also stops at an end-of-turn token
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_tokens: usize,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// Print one JSON object per line (prompt, answer tokens, done)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The GGUF file to describe
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The GGUF model file
    #[arg(
        long,
        short = 'm',
        value_name = "FILE",
        required_unless_present_any = ["synthetic", "kernels"],
        conflicts_with_all = ["synthetic", "kernels"]
    )]
    pub model: Option<PathBuf>,

    /// Instead of a file, a model of real shapes and llama.cpp's per-tensor types with
    /// random weights made as they are read: SHAPE:TYPE with SHAPE qwen2.5-7b (m1-7B's graph)
    /// or qwen2.5-0.5b, TYPE q4_k_m, q5_k_m, q6_k, q8_0, q4_0 or f16
    #[arg(long, value_name = "SHAPE:TYPE", conflicts_with = "kernels")]
    pub synthetic: Option<String>,

    /// Instead of a model: time the decode mat-vec of each quant type at m1-7B's shapes and
    /// print effective GB/s (weight bytes / kernel time, from timestamp queries where offered)
    #[arg(long, conflicts_with = "cpu")]
    pub kernels: bool,

    /// The adapter's memory bandwidth in GB/s: --kernels then prints each kernel's fraction
    /// of it (else of a buffer copy's rate, measured)
    #[arg(long, value_name = "GB_S", requires = "kernels")]
    pub peak_gb_s: Option<f64>,

    /// Run on the CPU instead of the GPU
    #[arg(long)]
    pub cpu: bool,

    /// Run the GPU path on a device that executes nothing (wgpu's noop backend): every step
    /// is prepared, recorded, submitted and read back, so the per-token figures are the
    /// host's cost alone, which a software adapter's submit hides in its execution. The
    /// model's outputs are meaningless
    #[arg(long, conflicts_with_all = ["cpu", "kernels"])]
    pub host_only: bool,

    /// Positions the KV cache holds [default: 8192 on the GPU, capped at the model's context]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub ctx: Option<u64>,

    /// Prompt length to prefill in one pass
    #[arg(long, value_name = "N", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub prompt_tokens: u64,

    /// Tokens to decode one at a time after the prompt
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub gen_tokens: u64,

    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The Hugging Face model folder: config.json, tokenizer.json, tokenizer_config.json
    /// and model.safetensors or model.safetensors.index.json with its shards
    #[arg(long, short = 'i', value_name = "DIR")]
    pub input: PathBuf,

    /// The GGUF file to write (written as FILE.partial, renamed when complete)
    #[arg(long, short = 'o', value_name = "FILE.gguf")]
    pub output: PathBuf,

    /// Quantization: q4_k_m (llama.cpp's mix: q4_k, q6_k for output and the sensitive
    /// attn_v/ffn_down layers), q5_k_m, q6_k, q8_0, q4_0 or f16
    #[arg(
        long = "type",
        short = 't',
        value_name = "TYPE",
        default_value = "q4_k_m"
    )]
    pub file_type: FileType,

    /// Worker threads [default: one per core]
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub threads: usize,

    /// No per-tensor progress on stderr
    #[arg(long)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_parse() {
        assert_eq!(
            parse_option("b = Heparin sodium"),
            Ok(("B".into(), "Heparin sodium".into()))
        );
        assert_eq!(parse_option("A=x=y"), Ok(("A".into(), "x=y".into())));
        assert!(parse_option("Heparin").is_err());
        assert!(parse_option("AB=x").is_err());
        assert!(parse_option("1=x").is_err());
        assert!(parse_option("A=").is_err());
    }
}
