//! The threaded engine worker, `worker-mt`: the worker binary built again with atomics, so
//! that its memory can be shared with the CPU path's thread workers (app/src/worker/threads.rs).
//! Trunk builds one variant of a binary, and std itself must be rebuilt with atomics
//! (nightly's `build-std`), so this is a step of its own after Trunk's, writing beside its
//! output. The page starts this build only where it is cross-origin isolated.

use std::fs;
use std::path::Path;

use crate::sh;
use crate::tools::{NIGHTLY, WASM_TARGET};
use crate::{root, step};

/// Added to the wasm32 flags of .cargo/config.toml for every crate (cargo merges
/// `--config` arrays with the file's): std and all code compiled with atomics.
const RUSTFLAGS: &str = r#"target.wasm32-unknown-unknown.rustflags=["-C", "target-feature=+atomics,+bulk-memory,+mutable-globals"]"#;

/// The link of the worker itself: a shared memory, imported (the pool threads instantiate
/// the module on the engine worker's), and the TLS symbols wasm-bindgen's thread support
/// sets up each thread with. The memory may grow to wasm32's 4 GiB: a shared memory
/// declares its maximum up front.
const LINK_ARGS: [&str; 7] = [
    "--shared-memory",
    "--import-memory",
    "--max-memory=4294967296",
    "--export=__wasm_init_tls",
    "--export=__tls_size",
    "--export=__tls_align",
    "--export=__tls_base",
];

/// Builds `worker-mt.js`, `worker-mt_bg.wasm` into `dist`; `worker-mt_loader.js` and
/// `cpu_thread.js` come with the rest of www/.
pub fn build(dist: &Path) -> Result<(), String> {
    step("building the threaded engine worker (worker-mt: atomics, build-std)");
    let target_dir = root().join("target/wasm-mt");
    let target_dir = target_dir.to_string_lossy();
    let toolchain = format!("+{NIGHTLY}");
    let mut args = vec![
        toolchain.as_str(),
        "rustc",
        "--release",
        "--quiet",
        "-p",
        "m1-app",
        "--bin",
        "worker",
        "--target",
        WASM_TARGET,
        "--target-dir",
        &target_dir,
        "-Z",
        "build-std=std,panic_abort",
        "--config",
        RUSTFLAGS,
        "--",
    ];
    let link: Vec<String> = LINK_ARGS.iter().map(|a| format!("link-arg={a}")).collect();
    for a in &link {
        args.extend(["-C", a]);
    }
    sh::run("cargo", &args)?;
    let wasm = format!("{target_dir}/{WASM_TARGET}/release/worker.wasm");
    let out = dist.to_string_lossy();
    // The loader shim's form, as Trunk builds the single-threaded worker.
    sh::run(
        "wasm-bindgen",
        &[
            "--target",
            "no-modules",
            "--no-typescript",
            "--out-dir",
            &out,
            "--out-name",
            "worker-mt",
            &wasm,
        ],
    )?;
    let bg = dist.join("worker-mt_bg.wasm");
    let bg = bg.to_string_lossy();
    // -O2 as index.html asks of Trunk for the other builds; wasm-opt takes the features
    // (threads, SIMD) from the module's own target_features section.
    sh::run("wasm-opt", &["-O2", &bg, "-o", &bg])?;
    for f in ["worker-mt_loader.js", "cpu_thread.js"] {
        if !dist.join(f).exists() {
            return Err(format!("{f} is missing from {out}: is it in index.html?"));
        }
    }
    let size = fs::metadata(dist.join("worker-mt_bg.wasm")).map_or(0, |m| m.len());
    println!("worker-mt_bg.wasm: {:.1} MB", size as f64 / 1e6);
    Ok(())
}
