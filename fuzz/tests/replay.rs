//! Replays the committed corpus (`fuzz/corpus/<target>/`) and every past crash
//! (`fuzz/regressions/<target>/`) through the same target functions libFuzzer runs, on
//! stable, under the same allocation cap: a regression fails `cargo test` without a fuzzer.

#![cfg(not(target_arch = "wasm32"))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use m1_fuzz::{target, CappedAlloc, MAX_INPUT};

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

/// The campaign's limit is 1 s an input (optimized, one process); the replay runs the
/// targets in parallel in the test profile, so it allows more before calling it a hang.
const SLOW: Duration = Duration::from_secs(5);

fn inputs(name: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
            continue;
        };
        files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(name: &str) {
    let t = target(name).expect("a target of that name");
    let files = inputs(name);
    assert!(
        !files.is_empty(),
        "{name}: no corpus under fuzz/corpus/{name}"
    );
    let start = Instant::now();
    let mut slowest = (Duration::ZERO, PathBuf::new());
    for path in &files {
        let data = std::fs::read(path).unwrap();
        assert!(
            data.len() <= MAX_INPUT,
            "{}: over the input limit",
            path.display()
        );
        let t0 = Instant::now();
        if catch_unwind(AssertUnwindSafe(|| (t.run)(&data))).is_err() {
            panic!("{name}: {} panicked (message above)", path.display());
        }
        let took = t0.elapsed();
        assert!(took < SLOW, "{name}: {} took {took:?}", path.display());
        if took > slowest.0 {
            slowest = (took, path.clone());
        }
    }
    eprintln!(
        "{name}: {} inputs in {:?} (slowest {:?}: {})",
        files.len(),
        start.elapsed(),
        slowest.0,
        slowest.1.display()
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_replayed() {
            let mut tested = [$(stringify!($name)),*];
            let mut all: Vec<&str> = m1_fuzz::TARGETS.iter().map(|t| t.name).collect();
            tested.sort();
            all.sort();
            assert_eq!(tested.to_vec(), all);
        }
    };
}

replay_tests!(
    gguf,
    tokenizer,
    tokenizer_text,
    safetensors,
    hf_folder,
    questions,
    protocol,
    cache_index,
);
