//! `m1 info FILE`: what a GGUF file holds, from its header alone (no weights are read).

use std::collections::BTreeMap;
use std::io::Write;

use m1_engine::backend::LoadError;
use m1_engine::gguf::Header;
use m1_engine::model::ModelConfig;
use m1_engine::reason::TextCodec;
use m1_engine::tokenizer::Tokenizer;
use m1_engine::units::fmt_bytes;
use serde_json::{json, Value};

use super::args::InfoArgs;
use super::error::CliError;
use super::load;

pub fn run(args: &InfoArgs) -> Result<(), CliError> {
    let path = args.file.as_path();
    let (_, header) = load::open(path)?;
    // Config and tokenizer failures still let the rest of the file be described; they
    // then make the command fail (exit 3), since the file cannot be run.
    let config = ModelConfig::from_header(&header);
    let tokenizer = Tokenizer::from_metadata(&header.metadata);

    let report = report(&header, config.as_ref().ok(), tokenizer.as_ref().ok());
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let mut value = report;
        if let Err(e) = &config {
            value["model_error"] = json!(e.to_string());
        }
        if let Err(e) = &tokenizer {
            value["tokenizer_error"] = json!(e.to_string());
        }
        writeln!(out, "{value:#}")
    } else {
        write_text(&mut out, path, &header, &report)
    };
    written.map_err(CliError::Output)?;
    config.map_err(|e| CliError::file(path, LoadError::from(e)))?;
    tokenizer.map_err(|e| CliError::file(path, LoadError::from(e)))?;
    Ok(())
}

/// Tensor count and bytes per ggml type, largest share first.
fn type_histogram(header: &Header) -> Vec<(String, usize, u64)> {
    let mut by_type: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in &header.tensors {
        let entry = by_type.entry(t.ggml_type.name().to_string()).or_default();
        entry.0 += 1;
        entry.1 += t.size;
    }
    let mut rows: Vec<(String, usize, u64)> = by_type
        .into_iter()
        .map(|(name, (n, bytes))| (name, n, bytes))
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// The types holding at least 1% of the weight bytes, e.g. "Q4_K+Q6_K".
pub fn weight_types(header: &Header) -> String {
    let total = header.tensor_bytes().max(1);
    let names: Vec<String> = type_histogram(header)
        .into_iter()
        .filter(|(_, _, bytes)| bytes * 100 >= total)
        .map(|(name, _, _)| name)
        .collect();
    names.join("+")
}

/// llama.cpp's `llama_ftype` names for `general.file_type` (llama.h), the quantization
/// preset a file was made with.
fn file_type_name(ftype: u64) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

fn token_json(tokenizer: &Tokenizer, id: Option<u32>) -> Value {
    match id {
        Some(id) => json!({ "id": id, "text": token_text(tokenizer, id) }),
        None => Value::Null,
    }
}

fn token_text(tokenizer: &Tokenizer, id: u32) -> String {
    String::from_utf8_lossy(tokenizer.token_bytes(id)).into_owned()
}

/// Everything `info` shows, as JSON; the text form is rendered from it.
fn report(header: &Header, config: Option<&ModelConfig>, tokenizer: Option<&Tokenizer>) -> Value {
    let md = &header.metadata;
    let text = |key: &str| md.opt_str(key).ok().flatten().map(str::to_string);
    let n_params: u64 = header.tensors.iter().map(|t| t.n_elements()).sum();
    let types: Vec<Value> = type_histogram(header)
        .into_iter()
        .map(|(name, n, bytes)| json!({ "type": name, "tensors": n, "bytes": bytes }))
        .collect();
    let file_type = md.opt_u64("general.file_type").ok().flatten();

    let model = config.map(|c| {
        json!({
            "architecture": c.architecture.name(),
            "layers": c.n_layer,
            "embedding": c.n_embd,
            "feed_forward": c.n_ff,
            "heads": c.n_head,
            "kv_heads": c.n_head_kv,
            "head_dim": c.head_dim,
            "context_length": c.context_length,
            "rope_theta": c.rope_theta,
            "rms_eps": c.rms_eps,
            "vocab_size": c.vocab_size,
            "tied_output": c.tied_output,
            "qkv_bias": c.qkv_bias,
        })
    });
    let tok = tokenizer.map(|t| {
        let special = t.special_tokens();
        json!({
            "model": text("tokenizer.ggml.model"),
            "pre": t.pre_tokenizer(),
            "vocab_size": t.vocab_size(),
            "bos": token_json(t, t.bos()),
            "add_bos": t.add_bos(),
            "eos": token_json(t, t.eos()),
            "end_of_generation": t.eog_ids().iter().map(|&id| token_json(t, Some(id))).collect::<Vec<_>>(),
            "im_start": token_json(t, t.token_id("<|im_start|>")),
            "im_end": token_json(t, t.token_id("<|im_end|>")),
            "reasoning_stops": [special.im_start, special.im_end, special.end_of_text, special.eos],
        })
    });
    json!({
        "file_size": header.file_size,
        "gguf_version": header.version,
        "name": text("general.name"),
        "architecture": text("general.architecture"),
        "file_type": file_type.map(|f| file_type_name(f).map_or(f.to_string(), str::to_string)),
        "parameters": n_params,
        "tensors": header.tensors.len(),
        "tensor_bytes": header.tensor_bytes(),
        "tensor_types": types,
        "model": model,
        "tokenizer": tok,
        "chat_template": tokenizer.and_then(|t| t.chat_template()).map(str::to_string),
    })
}

fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n => n.to_string(),
    }
}

fn write_text(
    out: &mut impl Write,
    path: &std::path::Path,
    header: &Header,
    r: &Value,
) -> std::io::Result<()> {
    let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "file          {} ({}, GGUF v{})",
        path.display(),
        fmt_bytes(header.file_size),
        header.version
    )?;
    writeln!(out, "name          {}", s(&r["name"]))?;
    writeln!(out, "architecture  {}", s(&r["architecture"]))?;
    let m = &r["model"];
    if m.is_object() {
        writeln!(
            out,
            "  layers {} · embedding {} · feed-forward {} · heads {} (kv {}, dim {})",
            m["layers"],
            m["embedding"],
            m["feed_forward"],
            m["heads"],
            m["kv_heads"],
            m["head_dim"]
        )?;
        writeln!(
            out,
            "  context {} · rope theta {} · vocab {} · output {} · qkv bias {}",
            m["context_length"],
            m["rope_theta"],
            m["vocab_size"],
            if m["tied_output"] == true {
                "tied to embeddings"
            } else {
                "separate"
            },
            m["qkv_bias"]
        )?;
    } else {
        writeln!(out, "  (not runnable by m1; see the error below)")?;
    }
    let params = r["parameters"].as_u64().unwrap_or(0);
    writeln!(out, "parameters    {} ({params})", count(params))?;
    writeln!(
        out,
        "file type     {}",
        r["file_type"].as_str().unwrap_or("-")
    )?;
    writeln!(
        out,
        "tensors       {} tensors, {} of weights",
        r["tensors"],
        fmt_bytes(header.tensor_bytes())
    )?;
    if let Some(types) = r["tensor_types"].as_array() {
        for t in types {
            writeln!(
                out,
                "  {:<6} {:>4} tensor{}  {:>10}",
                s(&t["type"]),
                t["tensors"],
                if t["tensors"] == 1 { " " } else { "s" },
                fmt_bytes(t["bytes"].as_u64().unwrap_or(0))
            )?;
        }
    }
    let t = &r["tokenizer"];
    if t.is_object() {
        let tok = |v: &Value| match v {
            Value::Object(o) => format!("{} {:?}", o["id"], o["text"].as_str().unwrap_or("")),
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "tokenizer     {} (pre {}), {} tokens",
            s(&t["model"]),
            s(&t["pre"]),
            t["vocab_size"]
        )?;
        writeln!(
            out,
            "  bos {}{} · eos {}",
            tok(&t["bos"]),
            if t["add_bos"] == true {
                " (added)"
            } else {
                " (not added)"
            },
            tok(&t["eos"])
        )?;
        writeln!(
            out,
            "  <|im_start|> {} · <|im_end|> {}",
            tok(&t["im_start"]),
            tok(&t["im_end"])
        )?;
        let eog: Vec<String> = t["end_of_generation"]
            .as_array()
            .map(|a| a.iter().map(tok).collect())
            .unwrap_or_default();
        writeln!(out, "  end of generation: {}", eog.join(", "))?;
    }
    match r["chat_template"].as_str() {
        Some(template) => {
            writeln!(out, "chat template ({} chars)", template.len())?;
            for line in template.lines() {
                writeln!(out, "  | {line}")?;
            }
        }
        None => writeln!(out, "chat template -")?,
    }
    Ok(())
}
