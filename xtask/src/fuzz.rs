//! `cargo xtask fuzz`: libFuzzer campaigns over the readers of untrusted bytes.
//!
//! The targets' bodies live in the stable crate `fuzz/` (the replay test of `cargo test`
//! runs the committed corpus through them); `fuzz/libfuzzer` wraps them for cargo-fuzz,
//! which needs nightly. A campaign grows a working corpus in `.cache/fuzz/corpus/<target>`
//! from the committed seeds, and copies any crash into `fuzz/regressions/<target>/`, where
//! the replay test fails on it until the reader is fixed.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sh::{cmd, output, run};
use crate::tools::{self, NIGHTLY};
use crate::{root, step};

const USAGE: &str = "\
usage: cargo xtask fuzz [TARGET]... [--seconds N] [--minimize] [--report]

  TARGET       one or more of the targets (default: all), see fuzz/libfuzzer/fuzz_targets
  --seconds N  time per target (default 60)
  --minimize   instead of fuzzing: merge the working corpus into fuzz/corpus/<target>,
               keeping only inputs that add coverage
  --report     print the executions and coverage recorded by past campaigns
";

/// The bounds: inputs under 1 MB, no hang over 1 s, no allocation over 256 MB.
/// The allocation cap itself is the harness's allocator (libFuzzer's `-malloc_limit_mb`
/// needs a sanitizer). `-rss_limit_mb` bounds the whole process, corpus and all, over the
/// whole campaign; at 256 it stopped the tokenizer campaign after 90K executions, and the
/// growth behind it was a leak (tokenizers' per-thread word cache outliving each
/// tokenizer: engine/tests/tokenizer_memory.rs), so a growing process is a finding. 2048
/// is libFuzzer's default.
const LIBFUZZER_LIMITS: &[&str] = &["-timeout=1", "-rss_limit_mb=2048", "-malloc_limit_mb=256"];

/// Inputs under 1 MB, except where a smaller input is as hostile and the executions matter
/// more (the `max_len` of each target in fuzz/src/lib.rs).
fn max_len(target: &str) -> usize {
    match target {
        // Building a tokenizer costs in proportion to its vocabulary; a few thousand tokens
        // are as hostile as 100k.
        "tokenizer" => 64 << 10,
        // One byte choosing the vocabulary, then at most 1 KB of text.
        "tokenizer_text" => 1 + 1024,
        _ => 1 << 20,
    }
}

pub fn run_cli(args: &[String]) -> Result<(), String> {
    let mut targets = Vec::new();
    let mut seconds = 60u64;
    let (mut minimize, mut report) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds needs a number")?
            }
            "--minimize" => minimize = true,
            "--report" => report = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            t if !t.starts_with('-') => targets.push(t.to_string()),
            other => return Err(format!("fuzz: unknown option `{other}`\n\n{USAGE}")),
        }
    }
    let all = all_targets()?;
    if targets.is_empty() {
        targets = all.clone();
    }
    if let Some(t) = targets.iter().find(|t| !all.contains(t)) {
        return Err(format!(
            "fuzz: no target `{t}` (targets: {})",
            all.join(", ")
        ));
    }
    if report {
        return print_report(&targets);
    }
    ensure_fuzz_tools()?;
    forward_ctrl_c();
    let mut failed = Vec::new();
    for t in &targets {
        if STOPPED.load(Ordering::Relaxed) {
            failed.push(format!("{t} (not run: interrupted)"));
            continue;
        }
        let r = if minimize {
            minimize_corpus(t)
        } else {
            campaign(t, seconds)
        };
        if let Err(e) = r {
            eprintln!("xtask: fuzz {t}: {e}");
            failed.push(t.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz: {} failed", failed.join(", ")))
    }
}

/// The process group of the libFuzzer run in progress (0: none). It has a group of its own
/// so the watchdog can kill cargo-fuzz and the fuzzer together; a terminal's Ctrl-C reaches
/// only xtask's group, so xtask hands it on.
static FUZZER_GROUP: AtomicI32 = AtomicI32::new(0);
/// Ctrl-C was pressed: the remaining targets are not run.
static STOPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(sig: libc::c_int) {
    STOPPED.store(true, Ordering::Relaxed);
    let group = FUZZER_GROUP.load(Ordering::Relaxed);
    if group > 0 {
        // SAFETY: kill is async-signal-safe; the group is one we started.
        unsafe { libc::kill(-group, sig) };
    }
}

/// From here on Ctrl-C stops the running campaign (libFuzzer then reports "interrupted")
/// and the ones after it, instead of leaving the fuzzer running without xtask.
fn forward_ctrl_c() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only touches atomics and calls kill.
    unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz/libfuzzer")
}

fn work_dir() -> PathBuf {
    root().join(".cache/fuzz")
}

/// The targets, named by their harness files.
fn all_targets() -> Result<Vec<String>, String> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// A nightly toolchain and cargo-fuzz, installed only when missing.
fn ensure_fuzz_tools() -> Result<(), String> {
    step("checking fuzz tools (nightly, cargo-fuzz)");
    tools::ensure_nightly(&[])?;
    if output("cargo", &[&format!("+{NIGHTLY}"), "fuzz", "--version"]).is_none() {
        run("cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    println!("ready");
    Ok(())
}

fn cargo_fuzz(subcommand: &str, target: &str) -> Vec<String> {
    let fuzz_dir = fuzz_dir().to_string_lossy().into_owned();
    // No sanitizer: the code is safe Rust, where ASan finds little and costs half the
    // executions; bounds come from the harness's allocator and libFuzzer's RSS limit.
    // cargo-fuzz's default build keeps debug assertions, so integer overflow panics.
    let toolchain = format!("+{NIGHTLY}");
    [
        toolchain.as_str(),
        "fuzz",
        subcommand,
        "--fuzz-dir",
        &fuzz_dir,
        "--sanitizer",
        "none",
        target,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn campaign(target: &str, seconds: u64) -> Result<(), String> {
    step(&format!("fuzzing {target} for {seconds} s"));
    let work = work_dir().join("corpus").join(target);
    let artifacts = work_dir().join("artifacts").join(target);
    for d in [&work, &artifacts] {
        fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let seeds = root().join("fuzz/corpus").join(target);
    let regressions = root().join("fuzz/regressions").join(target);
    let mut args = cargo_fuzz("run", target);
    // New inputs go to the first folder; the committed ones are read, never written.
    args.push(work.to_string_lossy().into_owned());
    for d in [&seeds, &regressions] {
        if d.is_dir() {
            args.push(d.to_string_lossy().into_owned());
        }
    }
    args.push("--".into());
    args.extend(LIBFUZZER_LIMITS.iter().map(|s| s.to_string()));
    args.push(format!("-max_len={}", max_len(target)));
    args.push(format!("-max_total_time={seconds}"));
    args.push(format!("-artifact_prefix={}/", artifacts.display()));
    args.push("-print_final_stats=1".into());
    let before: Vec<PathBuf> = list(&artifacts);
    let t0 = Instant::now();
    let (end, stats) = run_libfuzzer(&args, Some(seconds + STALL_GRACE_S))?;
    let secs = t0.elapsed().as_secs_f64();
    let (mut crashes, mut spurious) = (Vec::new(), 0);
    for c in list(&artifacts).into_iter().filter(|p| !before.contains(p)) {
        if is_slow(&c) && !hangs_again(target, &c)? {
            println!(
                "{target}: {} ran in time when replayed: its slowness was the machine's load (or a pause), not the input",
                c.display()
            );
            fs::remove_file(&c).map_err(|e| e.to_string())?;
            spurious += 1;
            continue;
        }
        crashes.push(c);
    }
    // libFuzzer stops at a timeout; one that was the load ends the run cleanly.
    let end = match end {
        _ if !crashes.is_empty() => End::Failed,
        End::Failed if spurious > 0 => End::Clean,
        end => end,
    };
    record(target, secs, &stats, end.word())?;
    match end {
        End::Clean => {
            println!(
                "{target}: {} executions, cov {} ft {}, working corpus {} inputs",
                stats.execs,
                stats.cov,
                stats.ft,
                list(&work).len()
            );
            return Ok(());
        }
        End::Interrupted | End::Stalled => {
            return Err(format!(
                "{target}: {} after {} executions, nothing found",
                end.word(),
                stats.execs
            ))
        }
        End::Failed if crashes.is_empty() => {
            return Err(format!("{target}: libFuzzer failed and left no input"))
        }
        End::Failed => {}
    }
    fs::create_dir_all(&regressions).map_err(|e| e.to_string())?;
    for c in &crashes {
        let name = c.file_name().unwrap_or_default();
        fs::copy(c, regressions.join(name)).map_err(|e| e.to_string())?;
        println!(
            "{target}: {} copied to {}: fix the reader, then `cargo test -p m1-fuzz --test replay {target}` passes",
            c.display(),
            regressions.display()
        );
    }
    Err("libFuzzer found a failing input".into())
}

/// A timeout, or a unit libFuzzer reported as slow (over 10 s, as when the campaign was
/// paused): both are wall-clock verdicts, to be replayed before they count.
fn is_slow(artifact: &Path) -> bool {
    artifact.file_name().is_some_and(|n| {
        let n = n.to_string_lossy();
        n.starts_with("timeout-") || n.starts_with("slow-unit-")
    })
}

/// libFuzzer's timeout is wall-clock time: on a loaded machine (a niced campaign beside
/// builds) a fast input can miss it. A hang misses it every time, so an input that runs
/// in time once in three tries was the load.
fn hangs_again(target: &str, input: &Path) -> Result<bool, String> {
    for _ in 0..3 {
        let mut args = cargo_fuzz("run", target);
        args.push(input.to_string_lossy().into_owned());
        args.push("--".into());
        args.push("-timeout=1".into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let s = cmd("cargo", &argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
        if s.success() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Merges the working corpus into the committed one, keeping the inputs that add coverage.
fn minimize_corpus(target: &str) -> Result<(), String> {
    step(&format!("minimizing the {target} corpus"));
    let seeds = root().join("fuzz/corpus").join(target);
    let work = work_dir().join("corpus").join(target);
    let merged = work_dir().join("merged").join(target);
    let _ = fs::remove_dir_all(&merged);
    fs::create_dir_all(&merged).map_err(|e| e.to_string())?;
    let mut args = cargo_fuzz("run", target);
    args.push(merged.to_string_lossy().into_owned());
    for d in [&seeds, &work] {
        if d.is_dir() {
            args.push(d.to_string_lossy().into_owned());
        }
    }
    args.push("--".into());
    args.extend(LIBFUZZER_LIMITS.iter().map(|s| s.to_string()));
    args.push(format!("-max_len={}", max_len(target)));
    args.push("-merge=1".into());
    let (end, _) = run_libfuzzer(&args, None)?;
    if end != End::Clean {
        return Err(format!("the merge did not finish: {}", end.word()));
    }
    let kept = list(&merged);
    if kept.is_empty() {
        return Err("the merge kept nothing; the committed corpus is left as it was".into());
    }
    for old in list(&seeds) {
        fs::remove_file(&old).map_err(|e| e.to_string())?;
    }
    fs::create_dir_all(&seeds).map_err(|e| e.to_string())?;
    for f in &kept {
        fs::copy(f, seeds.join(f.file_name().unwrap_or_default())).map_err(|e| e.to_string())?;
    }
    let bytes: u64 = kept
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{target}: fuzz/corpus/{target} now holds {} inputs, {} KB",
        kept.len(),
        bytes / 1024
    );
    Ok(())
}

/// How a libFuzzer run ended, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Clean,
    /// An input failed (or libFuzzer itself did).
    Failed,
    /// Stopped by a signal (Ctrl-C): libFuzzer says "run interrupted" and exits 72.
    Interrupted,
    /// Killed by the watchdog, long past its time.
    Stalled,
}

impl End {
    fn of(success: bool, interrupted: bool, killed: bool) -> Self {
        match (success, interrupted, killed) {
            (_, _, true) => End::Stalled,
            (true, _, _) => End::Clean,
            (false, true, _) => End::Interrupted,
            (false, false, _) => End::Failed,
        }
    }

    fn word(self) -> &'static str {
        match self {
            End::Clean => "clean",
            End::Failed => "crash",
            End::Interrupted => "interrupted",
            End::Stalled => "stalled",
        }
    }
}

/// libFuzzer's line when a signal stops it (it then exits with `-interrupted_exitcode`).
const INTERRUPTED: &str = "libFuzzer: run interrupted";

#[derive(Default)]
struct Stats {
    execs: u64,
    cov: u64,
    ft: u64,
}

/// Runs cargo-fuzz, echoing libFuzzer's output but only every 16th status line, and
/// picks the figures out of it.
/// Seconds past its `-max_total_time` after which a campaign counts as stalled and is
/// killed (its build included). libFuzzer's timeout handler writes the input from a
/// signal handler: when the alarm lands inside malloc it deadlocks on malloc's lock (a
/// tokenizer_text campaign beside builds sat so until killed, 16 min past its end), and the
/// campaign would never end.
const STALL_GRACE_S: u64 = 600;

fn run_libfuzzer(args: &[String], limit_s: Option<u64>) -> Result<(End, Stats), String> {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    println!("$ cargo {}", argv.join(" "));
    // A group of its own, so the watchdog kills the fuzzer that cargo started too.
    let mut child = cmd("cargo", &argv)
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
    FUZZER_GROUP.store(child.id() as i32, Ordering::Relaxed);
    if STOPPED.load(Ordering::Relaxed) {
        // Ctrl-C came while it was starting: hand it on now.
        on_sigint(libc::SIGINT);
    }
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    if let Some(limit) = limit_s {
        let (done, killed, group) = (done.clone(), killed.clone(), child.id());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if t0.elapsed() > Duration::from_secs(limit) {
                    eprintln!("xtask fuzz: no end after {limit} s: the fuzzer stalled; killing it");
                    killed.store(true, Ordering::Relaxed);
                    let _ = cmd("kill", &["-KILL", &format!("-{group}")]).status();
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    let mut stats = Stats::default();
    let mut status_lines = 0u64;
    let mut interrupted = false;
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let status = line.starts_with('#');
            if status {
                // A run killed before its final stats counted at least this many.
                if let Some(n) = line[1..].split_whitespace().next() {
                    stats.execs = n.parse().unwrap_or(stats.execs);
                }
                if let Some(v) = field(&line, "cov:") {
                    stats.cov = v;
                }
                if let Some(v) = field(&line, "ft:") {
                    stats.ft = v;
                }
                status_lines += 1;
            }
            interrupted |= line.contains(INTERRUPTED);
            if let Some(v) = line
                .strip_prefix("stat::number_of_executed_units:")
                .and_then(|v| v.trim().parse().ok())
            {
                stats.execs = v;
            }
            if !status || status_lines.is_multiple_of(16) || line.contains("DONE") {
                eprintln!("{line}");
            }
        }
    }
    let s = child.wait().map_err(|e| e.to_string())?;
    FUZZER_GROUP.store(0, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    // A Ctrl-C that stopped cargo-fuzz before libFuzzer ran leaves no line of libFuzzer's.
    let interrupted = interrupted || STOPPED.load(Ordering::Relaxed);
    let end = End::of(s.success(), interrupted, killed.load(Ordering::Relaxed));
    Ok((end, stats))
}

/// The number after `key` in a libFuzzer status line (`#123 NEW cov: 456 ft: 789 ...`).
fn field(line: &str, key: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()?.parse().ok()
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file());
    v.sort();
    v
}

fn stats_file() -> PathBuf {
    work_dir().join("stats.tsv")
}

/// Appends one campaign's figures: `--report` sums them per target.
fn record(target: &str, secs: f64, s: &Stats, end: &str) -> Result<(), String> {
    let path = stats_file();
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(
        f,
        "{target}\t{secs:.0}\t{}\t{}\t{}\t{end}",
        s.execs, s.cov, s.ft,
    )
    .map_err(|e| e.to_string())
}

fn print_report(targets: &[String]) -> Result<(), String> {
    let text = fs::read_to_string(stats_file()).unwrap_or_default();
    println!(
        "{:<16} {:>8} {:>14} {:>7} {:>7} {:>8}",
        "target", "runs", "executions", "cov", "ft", "seconds"
    );
    for t in targets {
        let (mut runs, mut execs, mut cov, mut ft, mut secs) = (0, 0u64, 0, 0, 0.0);
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() >= 6 && f[0] == t {
                runs += 1;
                secs += f[1].parse::<f64>().unwrap_or(0.0);
                execs += f[2].parse::<u64>().unwrap_or(0);
                cov = f[3].parse().unwrap_or(cov);
                ft = f[4].parse().unwrap_or(ft);
            }
        }
        println!("{t:<16} {runs:>8} {execs:>14} {cov:>7} {ft:>7} {secs:>8.0}");
    }
    println!("(cov and ft: the last campaign's final figures)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Ctrl-C'd or stalled campaign that left no input is not recorded as a finding.
    #[test]
    fn a_run_ends_as_its_signs_say() {
        assert_eq!(End::of(true, false, false), End::Clean);
        assert_eq!(End::of(false, false, false), End::Failed);
        assert_eq!(End::of(false, true, false), End::Interrupted);
        assert_eq!(End::of(false, false, true), End::Stalled);
        assert_eq!(End::of(false, true, true), End::Stalled);
        // libFuzzer's own words on SIGINT (compiler-rt FuzzerLoop.cpp, StaticInterruptCallback).
        assert!("==4242== libFuzzer: run interrupted; exiting".contains(INTERRUPTED));
        assert_eq!(End::Failed.word(), "crash");
    }
}
