//! `m1 bench`: load rate, prefill and decode throughput, time to first token, peak memory,
//! and on the GPU what each decoded token cost the host (encode + submit), the passes and
//! dispatches it recorded, the bytes it wrote and, where the adapter measures it, its GPU time.
//! `--synthetic SHAPE:TYPE` runs a model of real shapes made on the fly, so m1-7B's graph can
//! be measured on any machine with nothing downloaded.

use std::io::Write;
use std::time::Instant;

use m1_engine::backend::{AnyBackend, Backend, CpuBackend, EngineError, GpuBackend, Sampling};
use m1_engine::cpu::{CpuModel, CpuOptions};
use m1_engine::gpu::bench::{self as kernel_bench, BenchOptions, Timer};
use m1_engine::gpu::{Gpu, GpuModel, GpuModelOptions, GpuOptions, StepStats};
use m1_engine::model::ModelConfig;
use m1_engine::reason::{TextCodec, QWEN_SYSTEM_PROMPT};
use m1_engine::synthetic::{self, Synthetic};
use m1_engine::units::fmt_bytes;
use serde_json::json;

use super::args::{BenchArgs, ModelArgs};
use super::error::CliError;
use super::load::{self, GPU_DEFAULT_CTX};

/// Prompt material: real prose tokenizes like real prompts do (a run of one repeated id
/// would not).
const FILLER: &str = "A 45-year-old man presents with crushing substernal chest pain radiating \
to the left arm for the past 30 minutes. ECG shows ST-segment elevation in leads II, III and \
aVF. Troponin is elevated. He has a history of hypertension, type 2 diabetes and smoking. ";

/// What is measured: a loaded model, its prompt and how to name it.
struct Subject {
    backend: AnyBackend,
    config: ModelConfig,
    prompt_unit: Vec<u32>,
    label: String,
    description: String,
    weight_bytes: u64,
    load_s: f64,
}

/// The GPU's figures per decoded token, from its step counters over the decode loop.
struct PerToken {
    host_ms: f64,
    encode_ms: f64,
    passes: f64,
    dispatches: f64,
    bytes_written: f64,
    gpu_ms: Option<f64>,
}

impl PerToken {
    fn between(before: StepStats, after: StepStats, tokens: usize) -> Self {
        let n = tokens.max(1) as f64;
        let timed = after.timed_steps - before.timed_steps;
        Self {
            host_ms: (after.host_ms - before.host_ms) / n,
            encode_ms: (after.encode_ms - before.encode_ms) / n,
            passes: (after.passes - before.passes) as f64 / n,
            dispatches: (after.dispatches - before.dispatches) as f64 / n,
            bytes_written: (after.bytes_written - before.bytes_written) as f64 / n,
            gpu_ms: (timed > 0).then(|| (after.gpu_ms - before.gpu_ms) / timed as f64),
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<(), CliError> {
    if args.kernels {
        return kernels(args);
    }
    let usage = |what: &str, n: u64| {
        usize::try_from(n).map_err(|_| CliError::Usage(format!("{what} {n} is too large")))
    };
    let n_prompt = usage("--prompt-tokens", args.prompt_tokens)?;
    let n_gen = usage("--gen-tokens", args.gen_tokens)?;
    // Timestamp queries where offered: the GPU time of each step.
    let gpu_options = GpuOptions {
        timestamps: true,
        host_only: args.host_only,
        ..GpuOptions::default()
    };
    let mut subject = match (&args.synthetic, &args.model) {
        (Some(name), _) => synthetic_subject(name, args, gpu_options)?,
        (None, Some(model)) => file_subject(model, args, gpu_options)?,
        (None, None) => return Err(CliError::Usage("give --model or --synthetic".into())),
    };
    let load_rate = subject.weight_bytes as f64 / 1e6 / subject.load_s.max(1e-9);
    let prompt: Vec<u32> = subject
        .prompt_unit
        .iter()
        .copied()
        .cycle()
        .take(n_prompt)
        .collect();
    let backend = &mut subject.backend;
    let context = backend.context_len();
    if n_prompt + n_gen > context {
        return Err(CliError::Engine(EngineError::ContextTooSmall {
            needed: n_prompt + n_gen,
            context,
        }));
    }
    let stats = |b: &AnyBackend| b.as_gpu().map(|g| g.model().stats());

    let greedy = Sampling::GREEDY;
    let (prefill_s, decode_s, per_token) = pollster::block_on(async {
        // Warm-up: the first prefill of a length prepares its recording and compiles its
        // pipelines, a one-time cost, not throughput.
        backend.reset();
        backend.feed(&prompt).await?;
        backend.sample(&greedy).await?;
        backend.reset();
        let t0 = Instant::now();
        backend.feed(&prompt).await?;
        // The GPU backend submits the prefill with the first sample, so the prefill is
        // timed to the first token (one sampling pass more, negligible).
        let mut token = backend.sample(&greedy).await?;
        let prefill_s = t0.elapsed().as_secs_f64();
        let before = stats(backend);
        let t1 = Instant::now();
        for _ in 0..n_gen {
            backend.feed(&[token]).await?;
            token = backend.sample(&greedy).await?;
        }
        let decode_s = t1.elapsed().as_secs_f64();
        let per_token = before
            .zip(stats(backend))
            .map(|(b, a)| PerToken::between(b, a, n_gen));
        Ok::<_, EngineError>((prefill_s, decode_s, per_token))
    })?;
    let prefill_rate = n_prompt as f64 / prefill_s.max(1e-9);
    let decode_rate = n_gen as f64 / decode_s.max(1e-9);
    let wall_ms = decode_s * 1000.0 / n_gen as f64;
    let peak_rss = peak_rss_bytes();
    let gpu_bytes = subject.backend.as_gpu().map(|b| b.model().weight_bytes());
    let device = subject.backend.device_name();
    let layers = subject.config.n_layer;

    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let mut line = json!({
            "model": subject.label,
            "description": subject.description,
            "device": device,
            "load_s": subject.load_s,
            "load_mb_per_s": load_rate,
            "weight_bytes": subject.weight_bytes,
            "gpu_weight_bytes": gpu_bytes,
            "prompt_tokens": n_prompt,
            "prefill_s": prefill_s,
            "prefill_tokens_per_s": prefill_rate,
            "time_to_first_token_s": prefill_s,
            "gen_tokens": n_gen,
            "decode_s": decode_s,
            "decode_tokens_per_s": decode_rate,
            "peak_rss_bytes": peak_rss,
            "wall_ms_per_token": wall_ms,
            "layers": layers,
        });
        if let (Some(p), Some(obj)) = (&per_token, line.as_object_mut()) {
            obj.insert("host_ms_per_token".into(), json!(p.host_ms));
            obj.insert("encode_ms_per_token".into(), json!(p.encode_ms));
            obj.insert("passes_per_token".into(), json!(p.passes));
            obj.insert("dispatches_per_token".into(), json!(p.dispatches));
            obj.insert("bytes_written_per_token".into(), json!(p.bytes_written));
            if let Some(ms) = p.gpu_ms {
                obj.insert("gpu_ms_per_token".into(), json!(ms));
            }
        }
        writeln!(out, "{line}")
    } else {
        let rss = match peak_rss {
            Some(bytes) => fmt_bytes(bytes),
            None => "n/a (no /proc/self/status)".to_string(),
        };
        let device = match gpu_bytes {
            Some(bytes) => format!("{device} ({} of weights on the GPU)", fmt_bytes(bytes)),
            None => device,
        };
        let steps = match &per_token {
            Some(p) => {
                let gpu = p
                    .gpu_ms
                    .map_or("not measured (no timestamp queries)".to_string(), |ms| {
                        format!("{ms:.2} ms")
                    });
                format!(
                    "per token   host {:.3} ms (encode {:.3} + submit {:.3}), wall {wall_ms:.2} ms, GPU {gpu}\n\
                     per token   {:.0} pass, {:.0} dispatches ({:.1} per layer), {:.0} bytes written\n",
                    p.host_ms,
                    p.encode_ms,
                    p.host_ms - p.encode_ms,
                    p.passes,
                    p.dispatches,
                    p.dispatches / layers.max(1) as f64,
                    p.bytes_written,
                )
            }
            None => format!("per token   wall {wall_ms:.2} ms\n"),
        };
        write!(
            out,
            "model       {}\n\
             device      {device}\n\
             load        {:.2} s, {} of weights at {load_rate:.0} MB/s\n\
             prefill     {n_prompt} tokens in {prefill_s:.2} s = {prefill_rate:.1} tok/s\n\
             decode      {n_gen} tokens in {decode_s:.2} s = {decode_rate:.1} tok/s\n\
             {steps}\
             peak RSS    {rss}\n",
            subject.description,
            subject.load_s,
            fmt_bytes(subject.weight_bytes),
        )
    };
    written.map_err(CliError::Output)
}

fn file_subject(
    model: &std::path::Path,
    args: &BenchArgs,
    gpu: GpuOptions,
) -> Result<Subject, CliError> {
    let model_args = ModelArgs {
        model: model.to_path_buf(),
        cpu: args.cpu,
        ctx: args.ctx,
    };
    let loaded = load::load_with(&model_args, args.json, gpu)?;
    let prompt_unit = TextCodec::encode(
        &loaded.model.tokenizer,
        &format!("{QWEN_SYSTEM_PROMPT} {FILLER}"),
    )
    .map_err(|e| CliError::Usage(format!("cannot tokenize the benchmark prompt: {e}")))?;
    if prompt_unit.is_empty() {
        return Err(CliError::Usage(
            "the benchmark prompt encodes to no tokens".into(),
        ));
    }
    Ok(Subject {
        description: loaded.describe(),
        weight_bytes: loaded.model.weight_bytes,
        load_s: loaded.load_s,
        config: loaded.model.config,
        backend: loaded.model.backend,
        prompt_unit,
        label: model.display().to_string(),
    })
}

/// A synthetic model has no tokenizer: its prompt is seeded ids across the vocabulary.
fn synthetic_subject(name: &str, args: &BenchArgs, gpu: GpuOptions) -> Result<Subject, CliError> {
    let started = Instant::now();
    let model = Synthetic::parse(name).map_err(|e| CliError::Usage(e.to_string()))?;
    let header = &model.header;
    let config = ModelConfig::from_header(header).map_err(|e| CliError::Usage(e.to_string()))?;
    let ctx = args.ctx.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let engine = |e: String| CliError::Usage(format!("{name}: {e}"));
    let backend = if args.cpu {
        let options = CpuOptions {
            max_seq_len: ctx,
            ..CpuOptions::default()
        };
        let cpu = pollster::block_on(CpuModel::load(header, model.source(), options))
            .map_err(|e| engine(e.to_string()))?;
        AnyBackend::Cpu(CpuBackend::new(cpu))
    } else {
        let gpu = pollster::block_on(Gpu::new(gpu)).map_err(|e| engine(e.to_string()))?;
        let options = GpuModelOptions {
            context: Some(ctx.unwrap_or(GPU_DEFAULT_CTX)),
            ..GpuModelOptions::default()
        };
        let gpu_model = pollster::block_on(GpuModel::load(gpu, header, model.source(), options))
            .map_err(|e| engine(e.to_string()))?;
        AnyBackend::gpu(GpuBackend::new(gpu_model))
    };
    let vocab = synthetic::vocab(&model) as u32;
    let prompt_unit = (0..512u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % vocab.max(1))
        .collect();
    Ok(Subject {
        description: format!(
            "{} synthetic ({} layers, {}, random weights)",
            model.shape.name,
            config.n_layer,
            model.file_type.name()
        ),
        weight_bytes: model.tensor_bytes(),
        load_s: started.elapsed().as_secs_f64(),
        config,
        backend,
        prompt_unit,
        label: format!("synthetic:{name}"),
    })
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

/// `m1 bench --kernels`: each decode mat-vec type at m1-7B's shapes, as effective GB/s.
fn kernels(args: &BenchArgs) -> Result<(), CliError> {
    let gpu = pollster::block_on(Gpu::new(GpuOptions {
        timestamps: true,
        ..GpuOptions::default()
    }))
    .map_err(EngineError::from)?;
    let opts = BenchOptions {
        peak_gb_s: args.peak_gb_s,
        ..BenchOptions::default()
    };
    if !args.json {
        eprintln!(
            "timing {} types x {} shapes on {} (a software adapter takes seconds each)",
            opts.types.len(),
            opts.shapes.len(),
            gpu.report.name
        );
    }
    let report = pollster::block_on(kernel_bench::matvec(&gpu, &opts, |k| {
        if !args.json {
            eprintln!("  {} {}: {:.3} ms", k.ty.name(), k.shape.name, k.ms);
        }
    }))
    .map_err(EngineError::from)?;
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        let reference = report.reference_gb_s();
        json!({
            "adapter": report.adapter,
            "copy_gb_s": report.copy_gb_s,
            "peak_gb_s": report.peak_gb_s,
            "kernels": report.kernels.iter().map(|k| json!({
                "type": k.ty.name(),
                "tensor": k.shape.name,
                "rows": k.shape.rows,
                "cols": k.shape.cols,
                "bytes": k.bytes,
                "ms": k.ms,
                "gb_s": k.gb_s(),
                "fraction": k.gb_s() / reference,
                "timer": match k.timer {
                    Timer::Timestamps => "timestamps",
                    Timer::Wall => "wall",
                },
            })).collect::<Vec<_>>(),
        })
        .to_string()
    } else {
        report.to_string()
    };
    writeln!(out, "{text}").map_err(CliError::Output)
}
