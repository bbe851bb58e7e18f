//! `m1 bench`: load rate, prefill and decode throughput, time to first token, peak memory.

use std::io::Write;
use std::time::Instant;

use m1_engine::backend::{Backend, EngineError, Sampling};
use m1_engine::reason::{TextCodec, QWEN_SYSTEM_PROMPT};
use serde_json::json;

use super::args::BenchArgs;
use super::error::CliError;
use super::load;

/// Prompt material: real prose tokenizes like real prompts do (a run of one repeated id
/// would not).
const FILLER: &str = "A 45-year-old man presents with crushing substernal chest pain radiating \
to the left arm for the past 30 minutes. ECG shows ST-segment elevation in leads II, III and \
aVF. Troponin is elevated. He has a history of hypertension, type 2 diabetes and smoking. ";

pub fn run(args: &BenchArgs) -> Result<(), CliError> {
    let usage = |what: &str, n: u64| {
        usize::try_from(n).map_err(|_| CliError::Usage(format!("{what} {n} is too large")))
    };
    let n_prompt = usage("--prompt-tokens", args.prompt_tokens)?;
    let n_gen = usage("--gen-tokens", args.gen_tokens)?;
    let mut loaded = load::load(&args.model, args.json)?;
    let read_bytes = loaded.tensor_bytes();
    let load_rate = read_bytes as f64 / 1e6 / loaded.load_s.max(1e-9);

    let unit = TextCodec::encode(&loaded.tokenizer, &format!("{QWEN_SYSTEM_PROMPT} {FILLER}"))
        .map_err(|e| CliError::Usage(format!("cannot tokenize the benchmark prompt: {e}")))?;
    if unit.is_empty() {
        return Err(CliError::Usage(
            "the benchmark prompt encodes to no tokens".into(),
        ));
    }
    let prompt: Vec<u32> = unit.iter().copied().cycle().take(n_prompt).collect();
    let backend = &mut loaded.backend;
    let context = backend.context_len();
    if n_prompt + n_gen > context {
        return Err(CliError::Engine(EngineError::ContextTooSmall {
            needed: n_prompt + n_gen,
            context,
        }));
    }

    let greedy = Sampling::GREEDY;
    let timings = pollster::block_on(async {
        // Warm-up: the first GPU passes compile every pipeline (the prefill and the decode
        // kernels differ, and the prefill tiles with the prompt's length), which is a one-time
        // cost, not throughput.
        backend.reset();
        backend.feed(&prompt).await?;
        backend.sample(&greedy).await?;
        backend.feed(&prompt[..1]).await?;
        backend.sample(&greedy).await?;
        backend.reset();
        let t0 = Instant::now();
        backend.feed(&prompt).await?;
        // The GPU backend only records the prefill in `feed`; it runs with the first sample,
        // so the prefill is timed to the first token (one sampling pass more, negligible).
        let mut token = backend.sample(&greedy).await?;
        let ttft_s = t0.elapsed().as_secs_f64();
        let prefill_s = ttft_s;
        let t1 = Instant::now();
        for _ in 0..n_gen {
            backend.feed(&[token]).await?;
            token = backend.sample(&greedy).await?;
        }
        let decode_s = t1.elapsed().as_secs_f64();
        Ok::<_, EngineError>((prefill_s, ttft_s, decode_s))
    })?;
    let (prefill_s, ttft_s, decode_s) = timings;
    let prefill_rate = n_prompt as f64 / prefill_s.max(1e-9);
    let decode_rate = n_gen as f64 / decode_s.max(1e-9);
    let peak_rss = peak_rss_bytes();
    let gpu_bytes = loaded.backend.as_gpu().map(|b| b.model().weight_bytes());

    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let line = json!({
            "model": args.model.model.display().to_string(),
            "description": loaded.describe(),
            "device": loaded.backend.device_name(),
            "load_s": loaded.load_s,
            "load_mb_per_s": load_rate,
            "weight_bytes": read_bytes,
            "gpu_weight_bytes": gpu_bytes,
            "prompt_tokens": n_prompt,
            "prefill_s": prefill_s,
            "prefill_tokens_per_s": prefill_rate,
            "time_to_first_token_s": ttft_s,
            "gen_tokens": n_gen,
            "decode_s": decode_s,
            "decode_tokens_per_s": decode_rate,
            "peak_rss_bytes": peak_rss,
        });
        writeln!(out, "{line}")
    } else {
        let rss = match peak_rss {
            Some(bytes) => format!("{:.0} MB", bytes as f64 / 1e6),
            None => "n/a (no /proc/self/status)".to_string(),
        };
        let device = match gpu_bytes {
            Some(bytes) => format!(
                "{} ({:.0} MB of weights on the GPU)",
                loaded.backend.device_name(),
                bytes as f64 / 1e6
            ),
            None => loaded.backend.device_name(),
        };
        write!(
            out,
            "model       {}\n\
             device      {device}\n\
             load        {:.2} s, {:.0} MB of weights at {load_rate:.0} MB/s\n\
             prefill     {n_prompt} tokens in {prefill_s:.2} s = {prefill_rate:.1} tok/s\n\
             first token {:.0} ms after the prompt was handed over\n\
             decode      {n_gen} tokens in {decode_s:.2} s = {decode_rate:.1} tok/s\n\
             peak RSS    {rss}\n",
            loaded.describe(),
            loaded.load_s,
            read_bytes as f64 / 1e6,
            ttft_s * 1000.0,
        )
    };
    written.map_err(CliError::Output)
}

/// The process's peak resident set (`VmHWM` in /proc/self/status), on Linux.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
