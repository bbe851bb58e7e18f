//! The `m1` binary end to end: argument and file errors (exit codes 2 and 3, messages), and
//! `info`, `ask --json`, `ask --questions` and `generate` on the real Qwen2.5-0.5B.
//!
//! Model tests read `qwen2.5-coder-0.5b-instruct.gguf` from `$M1_TEST_MODELS` (default
//! `<workspace>/.cache/models`) and skip with a printed reason when it is absent. Answers
//! are kept to a few tokens: the CPU model decodes tens of tokens per second at best.

// Runs the native binary and reads and writes files: native only.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use m1_engine::reason::{m1_prompt, Question};
use serde_json::Value;

#[path = "../../engine/tests/common/mod.rs"]
mod common;
use common::{ids, test_model, QWEN, SMOLLM};

fn m1(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_m1"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the m1 binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_exit(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}; stderr:\n{err}\nstdout:\n{}",
        stdout(out)
    );
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}:\n{err}"
    );
}

/// A file in a fresh temp directory, removed when dropped.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let dir = std::env::temp_dir().join(format!("m1-cli-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(bytes))
            .unwrap();
        Self { dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

// ---------------------------------------------------------------- arguments: exit 2

#[test]
fn no_arguments_shows_usage_and_exits_2() {
    let out = m1(&[]);
    assert_exit(&out, 2, "Usage: m1 <COMMAND>");
}

#[test]
fn help_lists_commands_examples_and_exit_codes() {
    let out = m1(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for needle in [
        "ask",
        "generate",
        "info",
        "bench",
        "Examples:",
        "Exit codes:",
        "--budget",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
    let ask = stdout(&m1(&["ask", "--help"]));
    for needle in [
        "--question",
        "--option <LETTER=TEXT>",
        "--questions",
        "--json",
        "--cpu",
    ] {
        assert!(ask.contains(needle), "ask --help lacks {needle:?}:\n{ask}");
    }
}

#[test]
fn unknown_flag_exits_2() {
    let out = m1(&["ask", "--model", "m.gguf", "-q", "Q?", "--bogus"]);
    assert_exit(&out, 2, "m1: error: unexpected argument '--bogus'");
}

#[test]
fn ask_without_a_question_exits_2() {
    let out = m1(&["ask", "--model", "m.gguf"]);
    assert_exit(&out, 2, "--question <TEXT>");
}

#[test]
fn malformed_option_exits_2() {
    let out = m1(&["ask", "-m", "m.gguf", "-q", "Q?", "--option", "Aspirin"]);
    assert_exit(&out, 2, "expected LETTER=TEXT");
}

#[test]
fn duplicate_option_letter_exits_2() {
    // Checked before the model is opened, so the missing file does not matter.
    let out = m1(&["ask", "-m", "m.gguf", "-q", "Q?", "-o", "A=x", "-o", "a=y"]);
    assert_exit(&out, 2, "m1: error: option A is given twice");
}

#[test]
fn bad_sampling_exits_2() {
    let out = m1(&["ask", "-m", "m.gguf", "-q", "Q?", "--temperature", "-1"]);
    assert_exit(&out, 2, "temperature = -1 is invalid");
    let out = m1(&["generate", "-m", "m.gguf", "-p", "hi", "--top-p", "0"]);
    assert_exit(&out, 2, "top_p = 0 is invalid");
}

#[test]
fn question_and_questions_conflict_exits_2() {
    let out = m1(&["ask", "-m", "m.gguf", "-q", "Q?", "--questions", "x.jsonl"]);
    assert_exit(&out, 2, "cannot be used with");
}

#[test]
fn zero_context_exits_2() {
    let out = m1(&["bench", "-m", "m.gguf", "--ctx", "0"]);
    assert_exit(&out, 2, "--ctx");
}

#[test]
fn host_only_conflicts_with_cpu_exits_2() {
    let out = m1(&[
        "bench",
        "--synthetic",
        "qwen2.5-0.5b:q4_k_m",
        "--host-only",
        "--cpu",
    ]);
    assert_exit(&out, 2, "cannot be used with");
}

/// `--host-only` runs the real decode plan on wgpu's noop device: the step is the one a GPU
/// gets (one pass, 8 dispatches a layer plus embedding, head and sampler), its host figures
/// are measured and split, and no GPU time is claimed.
#[test]
fn bench_host_only_measures_the_host_side_of_each_step() {
    let out = m1(&[
        "bench",
        "--synthetic",
        "qwen2.5-0.5b:q4_k_m",
        "--host-only",
        "--prompt-tokens",
        "4",
        "--gen-tokens",
        "6",
        "--ctx",
        "64",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = json_lines(&out);
    let b = &lines[0];
    let num = |k: &str| b[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {b}"));
    let device = b["device"].as_str().unwrap_or_default();
    assert!(device.contains("noop"), "device {device:?}");
    assert_eq!(b["layers"], 24);
    assert_eq!(num("passes_per_token"), 1.0);
    let dispatches = num("dispatches_per_token");
    assert!(
        (24.0 * 8.0..=24.0 * 8.0 + 24.0).contains(&dispatches),
        "{dispatches} dispatches a token"
    );
    let (host, encode) = (num("host_ms_per_token"), num("encode_ms_per_token"));
    assert!(
        encode > 0.0 && encode <= host,
        "encode {encode} of host {host} ms"
    );
    assert!(
        b.get("gpu_ms_per_token").is_none(),
        "noop has no GPU time: {b}"
    );
}

// ---------------------------------------------------------------- files: exit 3

#[test]
fn missing_model_exits_3() {
    let out = m1(&["ask", "--cpu", "-m", "/nonexistent/m1.gguf", "-q", "Q?"]);
    assert_exit(&out, 3, "m1: error: /nonexistent/m1.gguf: cannot open");
    assert!(
        !stderr(&out).contains("note:"),
        "no note before a file error"
    );
}

#[test]
fn directory_as_model_exits_3() {
    let dir = std::env::temp_dir();
    let out = m1(&["info", dir.to_str().unwrap()]);
    assert_exit(&out, 3, "is a directory");
}

#[test]
fn non_gguf_file_exits_3() {
    let f = TempFile::new(
        "notes.gguf",
        b"these are not the weights you are looking for\n",
    );
    let out = m1(&["info", f.path()]);
    assert_exit(&out, 3, "not a GGUF file");
    let out = m1(&["generate", "--cpu", "-m", f.path(), "-p", "hi"]);
    assert_exit(&out, 3, "not a GGUF file");
}

#[test]
fn empty_file_exits_3() {
    let f = TempFile::new("empty.gguf", b"");
    let out = m1(&["info", f.path()]);
    assert_exit(&out, 3, "truncated GGUF header");
}

#[test]
fn truncated_header_exits_3() {
    // Magic, version 3, 0 tensors, 1 metadata pair whose key length runs past the end.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    bytes.extend(20u64.to_le_bytes());
    bytes.extend(b"general.arch");
    let f = TempFile::new("cut.gguf", &bytes);
    let out = m1(&["info", f.path()]);
    assert_exit(&out, 3, "cut.gguf: truncated GGUF header");
}

#[test]
fn malformed_questions_file_exits_3() {
    let f = TempFile::new(
        "qs.jsonl",
        b"{\"question\":\"Q?\",\"options\":[\"a\",\"b\"],\"answer_idx\":\"A\"}\n{\"question\":\n",
    );
    let out = m1(&["ask", "--cpu", "-m", "m.gguf", "--questions", f.path()]);
    assert_exit(&out, 3, "qs.jsonl: line 2:");
    let out = m1(&[
        "ask",
        "--cpu",
        "-m",
        "m.gguf",
        "--questions",
        "/nonexistent/qs.jsonl",
    ]);
    assert_exit(&out, 3, "cannot open");
}

#[test]
fn real_model_cut_short_exits_3() {
    let Some(path) = test_model(QWEN) else { return };
    // Only the first 16 MB are needed, not the whole 491 MB file.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(&path).unwrap(), 16 << 20),
        &mut bytes,
    )
    .unwrap();
    // 1 MB ends inside the tokenizer's vocabulary; 16 MB inside the tensor data.
    let header_cut = TempFile::new("header-cut.gguf", &bytes[..1 << 20]);
    let out = m1(&["info", header_cut.path()]);
    assert_exit(&out, 3, "truncated GGUF header");
    let data_cut = TempFile::new("data-cut.gguf", &bytes[..16 << 20]);
    let out = m1(&["ask", "--cpu", "-m", data_cut.path(), "-q", "Q?"]);
    assert_exit(&out, 3, "past the end of the");
}

#[test]
fn unsupported_architecture_exits_3() {
    // A well-formed GGUF header naming an architecture we do not run.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    let key = b"general.architecture";
    bytes.extend((key.len() as u64).to_le_bytes());
    bytes.extend(key);
    bytes.extend(8u32.to_le_bytes()); // string
    bytes.extend(5u64.to_le_bytes());
    bytes.extend(b"mamba");
    let f = TempFile::new("mamba.gguf", &bytes);
    let out = m1(&["generate", "--cpu", "-m", f.path(), "-p", "hi"]);
    assert_exit(&out, 3, "unsupported architecture \"mamba\"");
    let out = m1(&["info", f.path()]);
    assert_exit(&out, 3, "unsupported architecture \"mamba\"");
    assert!(
        stdout(&out).contains("architecture  mamba"),
        "{}",
        stdout(&out)
    );
}

// ---------------------------------------------------------------- the real 0.5B model

#[test]
fn info_describes_qwen_0_5b() {
    let Some(path) = test_model(QWEN) else { return };
    let path = path.to_str().unwrap();
    let out = m1(&["info", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "architecture  qwen2",
        "layers 24 · embedding 896 · feed-forward 4864 · heads 14 (kv 2, dim 64)",
        "vocab 151936",
        "file type     Q4_K_M",
        "Q5_0",
        "tokenizer     gpt2 (pre qwen2), 151936 tokens",
        "eos 151645 \"<|im_end|>\"",
        "<|im_start|> 151644",
        "chat template (",
        "MB, GGUF v3)",
    ] {
        assert!(text.contains(needle), "info lacks {needle:?}:\n{text}");
    }

    let out = m1(&["info", "--json", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["architecture"], "qwen2");
    assert_eq!(v["model"]["layers"], 24);
    assert_eq!(v["tokenizer"]["vocab_size"], 151_936);
    assert_eq!(v["tokenizer"]["eos"]["id"], 151_645);
    assert_eq!(v["file_size"], std::fs::metadata(path).unwrap().len());
    let n_types: u64 = v["tensor_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tensors"].as_u64().unwrap())
        .sum();
    assert_eq!(Value::from(n_types), v["tensors"]);
}

/// llama.cpp's record for one prompt of the fixture, if the fixture exists.
fn reference(prompt: &str) -> Option<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures/llama_cpp_reference.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "note: {} absent; llama.cpp comparison skipped",
            path.display()
        );
        return None;
    };
    let v: Value = serde_json::from_str(&text).ok()?;
    let entry = v["models"][QWEN]["prompts"][prompt].clone();
    entry.is_object().then_some(entry)
}

/// The fixture's m1 prompt split back into question and options, if `m1_prompt` rebuilds
/// exactly the text llama.cpp tokenized (otherwise the ids cannot be compared).
fn fixture_question(reference: &Value) -> Option<Question> {
    let text = reference["text"].as_str()?;
    let user = text
        .split("<|im_start|>user\n")
        .nth(1)?
        .split("<|im_end|>")
        .next()?;
    let body = user.strip_suffix("\nReturn your final response within \\boxed{}.")?;
    let mut question = Vec::new();
    let mut options = Vec::new();
    for line in body.lines() {
        match line.split_once(". ") {
            Some((l, t)) if l.len() == 1 && l.chars().all(|c| c.is_ascii_uppercase()) => {
                options.push((l.to_string(), t.to_string()))
            }
            _ => question.push(line),
        }
    }
    let q = Question {
        question: question.join("\n"),
        context: None,
        options,
    };
    if m1_prompt(&q) == text {
        Some(q)
    } else {
        eprintln!("note: the fixture's m1 prompt is not m1_prompt's; id comparison skipped");
        None
    }
}

/// Our free-running greedy tokens equal llama.cpp's; at the first step where they differ,
/// ours must be one of llama.cpp's top 5 within its own batch-vs-incremental noise
/// (`self_noise`, the rule of cpu_model.rs), and the runs are compared no further, since
/// from there on the two continue from different text.
fn assert_greedy_prefix(ours: &[u32], reference: &Value) {
    let theirs = ids(&reference["greedy"]);
    let noise = reference["self_noise"]
        .as_f64()
        .expect("fixture records self_noise");
    let n = ours.len().min(theirs.len());
    let Some(i) = (0..n).find(|&i| ours[i] != theirs[i]) else {
        return;
    };
    let top5: Vec<(u64, f64)> = reference["top5"][i]
        .as_array()
        .expect("fixture records top5 per step")
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let gap = top5
        .iter()
        .find(|(t, _)| *t == u64::from(ours[i]))
        .map(|&(_, g)| g);
    assert!(
        gap.is_some_and(|g| g <= noise),
        "greedy token {i} differs from llama.cpp: ours {}, theirs {}; llama.cpp's top 5 (token, gap): {top5:?}, noise {noise}",
        ours[i],
        theirs[i]
    );
}

#[test]
fn ask_json_forces_the_budget() {
    let Some(path) = test_model(QWEN) else { return };
    let reference = reference("m1_medical_mcq");
    let from_fixture = reference.as_ref().and_then(fixture_question);
    // The llama.cpp ids only apply when the prompt is the one llama.cpp tokenized.
    let compare = reference.as_ref().filter(|_| from_fixture.is_some());
    let question = from_fixture.unwrap_or_else(|| Question {
        question: "Which vitamin deficiency causes scurvy?".into(),
        context: None,
        options: vec![
            ("A".into(), "Vitamin A".into()),
            ("B".into(), "Vitamin C".into()),
            ("C".into(), "Vitamin D".into()),
        ],
    });
    let option_args: Vec<String> = question
        .options
        .iter()
        .map(|(l, t)| format!("{l}={t}"))
        .collect();

    for budget in [16usize, 64] {
        let budget_arg = budget.to_string();
        let mut args = vec![
            "ask",
            "--cpu",
            "--json",
            "--model",
            path.to_str().unwrap(),
            "--question",
            &question.question,
            "--budget",
            &budget_arg,
            "--max-answer-tokens",
            "8",
        ];
        for o in &option_args {
            args.extend(["--option", o]);
        }
        let out = m1(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "budget {budget}: {}",
            stderr(&out)
        );
        let events = json_lines(&out);
        let kind = |e: &Value| e["event"].as_str().unwrap_or("").to_string();

        // prompt first, done last, and one object per line throughout.
        assert_eq!(kind(&events[0]), "prompt");
        let done = events.last().unwrap();
        assert_eq!(kind(done), "done");
        let prompt = ids(&events[0]["tokens"]);
        assert_eq!(done["prompt_tokens"], prompt.len());
        if let Some(r) = compare {
            assert_eq!(prompt, ids(&r["ids"]), "prompt ids differ from llama.cpp");
        }

        let thinks: Vec<&Value> = events.iter().filter(|e| kind(e) == "think").collect();
        let stop = done["stop"].as_str().unwrap();
        assert!(stop == "budget" || stop == "natural", "stop {stop}");
        assert_eq!(
            done["think_tokens"],
            thinks.len(),
            "think events vs think_tokens"
        );
        if stop == "budget" {
            assert_eq!(thinks.len(), budget);
        } else {
            assert!(thinks.len() < budget);
        }
        let think_ids: Vec<u32> = thinks
            .iter()
            .map(|e| e["id"].as_u64().unwrap() as u32)
            .collect();
        if let Some(r) = compare {
            assert_greedy_prefix(&think_ids, r);
        }

        // The forced answer prefix, after every think event and before every answer event.
        let prefix_at = events
            .iter()
            .position(|e| kind(e) == "answer_prefix")
            .expect("an answer_prefix event");
        let prefix = &events[prefix_at];
        let expected = if stop == "budget" {
            "<|im_start|>answer\nFinal Answer:"
        } else {
            "<|im_start|>answer"
        };
        assert_eq!(prefix["text"], expected);
        assert_eq!(prefix["budget_exhausted"], stop == "budget");
        assert!(events[..prefix_at].iter().all(|e| kind(e) != "answer"));
        assert!(events[prefix_at..].iter().all(|e| kind(e) != "think"));

        let answers: Vec<&Value> = events.iter().filter(|e| kind(e) == "answer").collect();
        assert_eq!(done["answer_tokens"], answers.len());
        assert!(answers.len() <= 8);
        let answer_stop = done["answer_stop"].as_str().unwrap();
        assert!(
            ["natural", "max_tokens"].contains(&answer_stop),
            "answer_stop {answer_stop}"
        );
        assert_eq!(done["answer_prefix"], expected);
        let thinking: String = thinks
            .iter()
            .map(|e| e["text"].as_str().unwrap())
            .chain([prefix["thinking_tail"].as_str().unwrap()])
            .collect();
        assert_eq!(done["thinking"], thinking);
        let answer: String = answers
            .iter()
            .map(|e| e["text"].as_str().unwrap())
            .collect();
        assert_eq!(done["answer"], answer);
        assert!(done.get("choice").is_some());
        eprintln!(
            "budget {budget}: stop {stop}, choice {}, decode {} tok/s",
            done["choice"], done["decode_tokens_per_s"]
        );
    }
}

#[test]
fn ask_text_output_separates_thinking_and_answer() {
    let Some(path) = test_model(QWEN) else { return };
    let out = m1(&[
        "ask",
        "--cpu",
        "-m",
        path.to_str().unwrap(),
        "-q",
        "Which vitamin deficiency causes scurvy?",
        "-o",
        "A=Vitamin A",
        "-o",
        "B=Vitamin C",
        "--budget",
        "8",
        "--max-answer-tokens",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let thinking = text.find("── thinking ── (prompt").expect(&text);
    let answer = text
        .find("── answer ── (8/8 thinking tokens, budget reached, answer forced)")
        .expect(&text);
    let done = text.find("── done ──").expect(&text);
    assert!(thinking < answer && answer < done, "{text}");
    assert!(text[answer..].contains("Final Answer:"), "{text}");
    assert!(!text.contains('\x1b'), "no ANSI codes when not a terminal");
    assert!(stderr(&out).contains("m1: loaded "), "{}", stderr(&out));
}

#[test]
fn ask_questions_file_reports_accuracy() {
    let Some(path) = test_model(QWEN) else { return };
    let records = concat!(
        r#"{"question":"Which vitamin deficiency causes scurvy?","options":{"A":"Vitamin A","B":"Vitamin C"},"answer_idx":"B"}"#,
        "\n\n",
        r#"{"question":"Which organ produces insulin?","options":["Liver","Pancreas","Kidney"],"answer":"Pancreas"}"#,
        "\n",
        r#"{"question":"not read","options":["x"]}"#,
        "\n",
    );
    let f = TempFile::new("batch.jsonl", records.as_bytes());
    let args = |json: bool| {
        let mut a = vec![
            "ask",
            "--cpu",
            "-m",
            path.to_str().unwrap(),
            "--questions",
            f.path(),
            "--limit",
            "2",
            "--budget",
            "4",
            "--max-answer-tokens",
            "6",
        ];
        if json {
            a.push("--json");
        }
        a
    };
    let out = m1(&args(true));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "two items and the accuracy: {lines:?}");
    assert_eq!(lines[0]["event"], "item");
    assert_eq!(lines[0]["index"], 0);
    assert_eq!(lines[0]["gold"], "B");
    assert_eq!(lines[1]["gold"], "B");
    assert_eq!(lines[0]["think_tokens"], 4);
    let correct = lines[..2].iter().filter(|l| l["correct"] == true).count();
    for l in &lines[..2] {
        assert_eq!(l["correct"], Value::Bool(l["choice"] == l["gold"]), "{l}");
    }
    let acc = &lines[2];
    assert_eq!(acc["event"], "accuracy");
    assert_eq!(acc["total"], 2);
    assert_eq!(acc["scored"], 2);
    assert_eq!(acc["correct"], correct);
    assert_eq!(acc["accuracy"].as_f64(), Some(correct as f64 / 2.0));

    let out = m1(&args(false));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("   1/2  chose"), "{text}");
    assert!(
        text.contains(&format!("accuracy: {correct}/2 = ")),
        "{text}"
    );
}

#[test]
fn generate_reproduces_llama_cpp_greedy_reply() {
    let Some(path) = test_model(QWEN) else { return };
    let out = m1(&[
        "generate",
        "--cpu",
        "--json",
        "-m",
        path.to_str().unwrap(),
        "-p",
        "What is the capital of France? Answer in one sentence.",
        "--max-tokens",
        "12",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events = json_lines(&out);
    let answers: Vec<u32> = events
        .iter()
        .filter(|e| e["event"] == "answer")
        .map(|e| e["id"].as_u64().unwrap() as u32)
        .collect();
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done");
    assert!(done["answer"].as_str().unwrap().contains("Paris"), "{done}");
    if let Some(r) = reference("chatml_capital") {
        assert_eq!(ids(&events[0]["tokens"]), ids(&r["ids"]));
        assert_greedy_prefix(&answers, &r);
        // llama.cpp's reply ends with <|im_end|> after 7 tokens; so does ours.
        assert_eq!(done["stop"], "natural");
    }
}

// ------------------------------------------------- the native run the browser must equal

/// The scurvy sample (app/src/samples.rs, index 2) on SmolLM2 with two "Wait"s: a 91-token
/// prompt (attention over more than one 64-key tile) and a dozen sampled tokens, small
/// enough for SwiftShader in the browser test (tests/e2e/parity.test.mjs).
const PARITY_FIXTURE: &str = "tests/fixtures/browser_parity.json";

/// Runs `m1 ask --json` on the GPU and checks it against the fixture the browser end-to-end
/// test compares the page with, so that test compares the page with the native run.
/// `M1_UPDATE_FIXTURES=1` rewrites the fixture from this run instead.
#[test]
fn browser_parity_fixture_is_the_native_gpu_run() {
    let Some(path) = test_model(SMOLLM) else {
        return;
    };
    let question = "Which vitamin deficiency causes scurvy, with bleeding gums, perifollicular hemorrhages and poor wound healing?";
    let options = ["A=Vitamin A", "B=Vitamin B12", "C=Vitamin C", "D=Vitamin D"];
    let (budget, wait, max_answer) = ("16", "2", "8");
    let mut args = vec![
        "ask",
        "--json",
        "--model",
        path.to_str().unwrap(),
        "--question",
        question,
        "--budget",
        budget,
        "--wait",
        wait,
        "--max-answer-tokens",
        max_answer,
    ];
    for o in &options {
        args.extend(["--option", o]);
    }
    let out = m1(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    if stderr(&out).contains("no usable GPU") {
        assert!(
            std::env::var("M1_REQUIRE_GPU").as_deref() != Ok("1"),
            "M1_REQUIRE_GPU=1 but the CLI fell back to the CPU:\n{}",
            stderr(&out)
        );
        eprintln!("SKIP: no GPU adapter; the fixture records the GPU path");
        return;
    }
    let events: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|e| e["event"] != "prompt")
        .collect();
    // What the page shows: the reasoning pieces in order, the answer text and the choice.
    let mut reasoning = Vec::new();
    for e in &events {
        match e["event"].as_str().unwrap_or("") {
            "think" => reasoning.push(format!("text:{}", e["text"].as_str().unwrap())),
            "wait" => reasoning.push(format!("wait:{}", e["index"])),
            "answer_prefix" => reasoning.push(format!("end:{}", e["budget_exhausted"])),
            _ => {}
        }
    }
    let done = events.last().unwrap();
    let tokens: Vec<u64> = events.iter().filter_map(|e| e["id"].as_u64()).collect();
    let got = serde_json::json!({
        "model": SMOLLM,
        "sample": 2,
        "budget": budget.parse::<u32>().unwrap(),
        "wait": wait.parse::<u32>().unwrap(),
        "max_answer": max_answer.parse::<u32>().unwrap(),
        "tokens": tokens,
        "reasoning": reasoning,
        "answer": done["answer"],
        "choice": done["choice"],
    });
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(PARITY_FIXTURE);
    if std::env::var("M1_UPDATE_FIXTURES").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        std::fs::write(&fixture, text).unwrap();
        eprintln!("wrote {}", fixture.display());
        return;
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(&fixture).unwrap_or_else(|e| panic!("{}: {e}", fixture.display())),
    )
    .unwrap();
    assert_eq!(
        got, want,
        "the native GPU run differs from {PARITY_FIXTURE}; if the engine's numerics changed on \
         purpose, rerun with M1_UPDATE_FIXTURES=1 and check the browser test still agrees"
    );
}

/// Too little GPU memory: the load stops at the first allocation the device refuses and the
/// message names that tensor, what was already placed and what the whole model needs.
///
/// Provoked for real rather than simulated: on a software Vulkan device (lavapipe, CI's
/// adapter) GPU memory is process memory, so capping the address space (RLIMIT_AS) makes
/// the driver refuse allocations part-way through the weights. The cap has to leave room
/// for the process itself (binary, driver, thread stacks), which varies by build and
/// machine, so it is stepped up until the failure lands inside the load. On a real GPU the
/// cap does not limit device memory and the test skips.
#[test]
fn too_little_gpu_memory_names_the_tensor_and_the_sizes() {
    let Some(path) = test_model(QWEN) else { return };
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIP: no prlimit (util-linux)");
        return;
    }
    let mut seen = Vec::new();
    for cap_mib in (800u64..=3000).step_by(100) {
        let out = Command::new("prlimit")
            .arg(format!("--as={}", cap_mib << 20))
            .arg(env!("CARGO_BIN_EXE_m1"))
            .args(["ask", "-m", path.to_str().unwrap(), "-q", "Q?"])
            .args(["--budget", "1", "--max-answer-tokens", "1", "--ctx", "512"])
            .env("NO_COLOR", "1")
            // Fixed thread counts keep the process's own address space the same everywhere.
            .env("LP_NUM_THREADS", "2")
            .env("MALLOC_ARENA_MAX", "2")
            .output()
            .expect("prlimit runs the m1 binary");
        let err = stderr(&out);
        assert!(
            !err.contains("panicked"),
            "a panic at a {cap_mib} MiB cap:\n{err}"
        );
        if err.contains("out of GPU memory") {
            eprintln!("{cap_mib} MiB cap: {}", err.trim());
            assert_exit(&out, 3, "out of GPU memory allocating ");
            // "... allocating blk.5.ffn_up.weight (3.05 MB) with 126 MB of the model's
            // 492 MB already on the GPU (486 MB of weights and a 6.29 MB KV cache for
            // 512 positions) ..."
            let sizes = sizes_in(&err);
            assert_eq!(sizes.len(), 5, "five sizes: {err}");
            let (placed, needed, weights, kv) = (sizes[1], sizes[2], sizes[3], sizes[4]);
            // The file holds 485.5 MB of tensor data; f32 norms and biases add a little.
            assert!(
                (484e6..493e6).contains(&weights),
                "weights {weights} bytes: {err}"
            );
            // 24 layers x 2 (K, V) x 512 positions x 2 KV heads x 64 x 2 or 4 bytes,
            // shown to three digits.
            assert!(
                (kv - 6_291_456.0).abs() < 5e3 || (kv - 12_582_912.0).abs() < 5e4,
                "KV cache {kv} bytes: {err}"
            );
            assert!((needed - weights - kv).abs() < 1.1e6, "{err}");
            assert!(placed < needed, "{err}");
            assert!(err.contains("for 512 positions"), "{err}");
            assert!(err.contains("--ctx N with a smaller N"), "{err}");
            return;
        }
        if err.contains("no usable GPU") {
            // The adapter itself could not be opened under this cap (the CLI fell back to
            // the CPU, which then failed or ran): the cap is still too low to reach the load.
            seen.push(format!("{cap_mib}: fell back to the CPU"));
            continue;
        }
        if out.status.success() {
            if seen.is_empty() {
                eprintln!("SKIP: the address-space cap does not limit this GPU's memory");
                return;
            }
            panic!(
                "the model loaded and answered at a {cap_mib} MiB cap without any cap \
                 before it failing inside the load; caps tried: {seen:?}"
            );
        }
        seen.push(format!(
            "{cap_mib}: exit {:?}, {}",
            out.status.code(),
            err.lines().last().unwrap_or("")
        ));
    }
    panic!("no cap up to 3000 MiB reached the load; caps tried: {seen:?}");
}

/// Every size in `text` as `fmt_bytes` writes them ("3.05 MB", "(486 MB", "6.29 kB)"), in
/// bytes, in order.
fn sizes_in(text: &str) -> Vec<f64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter_map(|w| {
            let scale = match w[1].trim_end_matches([')', ',', ';']) {
                "B" => 1.0,
                "kB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                _ => return None,
            };
            let value: f64 = w[0].trim_start_matches('(').parse().ok()?;
            Some(value * scale)
        })
        .collect()
}

/// A tensor type the GPU has no kernel for is named, and the CLI points to `--cpu`, which
/// then runs the same file.
#[test]
fn a_tensor_type_without_a_gpu_kernel_points_to_cpu() {
    use m1_engine::gguf::GgmlType;
    let Some(bytes) = common::retyped_smollm2("blk.3.ffn_down.weight", GgmlType::Q2K) else {
        return;
    };
    let file = TempFile::new("q2k.gguf", &bytes);
    let args = ["-q", "Q?", "--budget", "1", "--max-answer-tokens", "1"];
    let out = m1(&[&["ask", "-m", file.path()][..], &args].concat());
    if stderr(&out).contains("no usable GPU") {
        eprintln!("SKIP: no GPU adapter");
        return;
    }
    assert_exit(
        &out,
        3,
        "tensor \"blk.3.ffn_down.weight\" is Q2_K, which has no GPU kernel",
    );
    assert_exit(&out, 3, "--cpu runs this model on the CPU");
    let out = m1(&[&["ask", "--cpu", "-m", file.path()][..], &args].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

// ---------------------------------------------------------------- eval: the budget sweep

/// A JSONL record, its question and its options as `ask` takes them.
type EvalQuestion = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The eval test's questions; the second record has no id.
const EVAL_QUESTIONS: [EvalQuestion; 3] = [
    (
        r#"{"id":"scurvy","question":"Which vitamin deficiency causes scurvy?","options":{"A":"Vitamin A","B":"Vitamin C","C":"Vitamin D"},"answer_idx":"B"}"#,
        "Which vitamin deficiency causes scurvy?",
        &[("A", "Vitamin A"), ("B", "Vitamin C"), ("C", "Vitamin D")],
    ),
    (
        r#"{"question":"Which organ produces insulin?","options":["Liver","Pancreas","Kidney"],"answer":"Pancreas"}"#,
        "Which organ produces insulin?",
        &[("A", "Liver"), ("B", "Pancreas"), ("C", "Kidney")],
    ),
    (
        r#"{"id":7,"question":"What is the first-line treatment for anaphylaxis?","options":{"A":"Epinephrine","B":"Antihistamine"},"answer_idx":"A"}"#,
        "What is the first-line treatment for anaphylaxis?",
        &[("A", "Epinephrine"), ("B", "Antihistamine")],
    ),
];

/// A separate `m1 ask --json` at `budget`: (forced prefix, answer token ids, choice).
fn ask_once(
    model: &str,
    question: &str,
    options: &[(&str, &str)],
    budget: usize,
    extra: &[&str],
) -> (String, Vec<u32>, Value) {
    let budget = budget.to_string();
    let option_args: Vec<String> = options.iter().map(|(l, t)| format!("{l}={t}")).collect();
    let mut args = vec![
        "ask", "--cpu", "--json", "-m", model, "-q", question, "--budget", &budget,
    ];
    for o in &option_args {
        args.extend(["-o", o]);
    }
    args.extend(extra);
    let out = m1(&args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    let events = json_lines(&out);
    let prefix = events
        .iter()
        .find(|e| e["event"] == "answer_prefix")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .expect("an answer_prefix event");
    let answer = events
        .iter()
        .filter(|e| e["event"] == "answer")
        .map(|e| e["id"].as_u64().unwrap() as u32)
        .collect();
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done");
    (prefix, answer, done["choice"].clone())
}

/// On the real Qwen2.5-0.5B, for 3 questions and budgets 0, 8, 32 and 64, every budget's
/// forced prefix, answer tokens and choice from one `m1 eval` equal a separate `m1 ask` at
/// that budget, exactly; `extra` are the shared settings (waits, sampling).
fn assert_eval_equals_asks(extra: &[&str]) {
    let Some(path) = test_model(QWEN) else { return };
    let model = path.to_str().unwrap();
    let records: String = EVAL_QUESTIONS
        .iter()
        .map(|q| format!("{}\n", q.0))
        .collect();
    let f = TempFile::new("eval.jsonl", records.as_bytes());
    let budgets = [0usize, 8, 32, 64];
    let mut args = vec![
        "eval",
        "--cpu",
        "--json",
        "-m",
        model,
        "--questions",
        f.path(),
        // Any order, duplicates once: the sweep sorts them.
        "--budgets",
        "64,0,32,8,32",
        "--max-answer-tokens",
        "4",
    ];
    args.extend(extra);
    let out = m1(&args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    let lines = json_lines(&out);
    let items: Vec<&Value> = lines.iter().filter(|l| l["event"] == "item").collect();
    assert_eq!(items.len(), 3 * budgets.len(), "{lines:?}");
    for (i, (_, question, options)) in EVAL_QUESTIONS.iter().enumerate() {
        // The record's id, else its line number.
        let id = ["scurvy", "2", "7"][i];
        for budget in budgets {
            let item = items
                .iter()
                .find(|l| l["id"] == id && l["budget"] == budget)
                .unwrap_or_else(|| panic!("no item {id} at {budget}: {lines:?}"));
            let mut ask_extra = vec!["--max-answer-tokens", "4"];
            ask_extra.extend(extra);
            let (prefix, answer, choice) = ask_once(model, question, options, budget, &ask_extra);
            let ctx = format!("{extra:?}, question {id}, budget {budget}");
            assert_eq!(item["answer_prefix"], prefix, "{ctx}");
            assert_eq!(ids(&item["answer_tokens"]), answer, "{ctx}");
            assert_eq!(item["choice"], choice, "{ctx}");
            assert_eq!(
                item["correct"],
                Value::Bool(item["choice"] == item["gold"]),
                "{ctx}"
            );
            assert!(item["answer"].is_string(), "{ctx}");
        }
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary", "{lines:?}");
    let rows = summary["budgets"].as_array().unwrap();
    let listed: Vec<u64> = rows.iter().map(|r| r["budget"].as_u64().unwrap()).collect();
    assert_eq!(listed, [0, 8, 32, 64]);
    for r in rows {
        let correct = items
            .iter()
            .filter(|l| l["budget"] == r["budget"] && l["correct"] == true)
            .count();
        assert_eq!(r["n"], 3, "{r}");
        assert_eq!(r["correct"], correct, "{r}");
        let accuracy = correct as f64 / 3.0;
        assert_eq!(r["accuracy"].as_f64(), Some(accuracy), "{r}");
        let (low, high) = (r["low"].as_f64().unwrap(), r["high"].as_f64().unwrap());
        assert!(low <= accuracy && accuracy <= high, "{r}");
    }
    eprintln!("eval {extra:?}: {summary}");
}

// Each of these runs 12 separate asks and one eval on the CPU: minutes, not seconds, on a
// loaded two-core machine.
#[test]
fn eval_sweep_equals_separate_asks_greedy() {
    assert_eval_equals_asks(&[]);
}

#[test]
fn eval_sweep_equals_separate_asks_with_a_wait() {
    assert_eval_equals_asks(&["--wait", "1"]);
}

#[test]
fn eval_sweep_equals_separate_asks_with_seeded_top_p() {
    assert_eval_equals_asks(&["--temperature", "0.7", "--top-p", "0.9", "--seed", "7"]);
}

#[test]
fn eval_text_output_lists_accuracy_per_budget() {
    let Some(path) = test_model(QWEN) else { return };
    let f = TempFile::new(
        "eval-text.jsonl",
        format!("{}\n", EVAL_QUESTIONS[0].0).as_bytes(),
    );
    let out = m1(&[
        "eval",
        "--cpu",
        "-m",
        path.to_str().unwrap(),
        "--questions",
        f.path(),
        "--budgets",
        "4,0",
        "--max-answer-tokens",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("   1/1  scurvy  gold B "), "{text}");
    assert!(
        text.contains("budget      n  correct  accuracy  95% Wilson interval"),
        "{text}"
    );
    // Rows by budget, each with its count.
    let zero = text.find("\n     0      1  ").expect(&text);
    let four = text.find("\n     4      1  ").expect(&text);
    assert!(zero < four, "{text}");
}

#[test]
fn eval_argument_errors_exit_2() {
    let out = m1(&[
        "eval",
        "-m",
        "m.gguf",
        "--questions",
        "x.jsonl",
        "--budgets",
        "8,x",
    ]);
    assert_exit(&out, 2, "--budgets");
    let out = m1(&["eval", "-m", "m.gguf", "--budgets", "8"]);
    assert_exit(&out, 2, "--questions");
}
