//! `cargo xtask test`: everything CI checks, in the order that fails fastest.
//! Every step runs even after a failure, so one run reports all that is wrong;
//! the exit code is non-zero if any step failed.

use std::time::Instant;

use crate::serve::{self, Site};
use crate::sh::{self, cmd};
use crate::{dist, models, root, step, tools};

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("test: unknown option `{a}`"));
    }
    let t0 = Instant::now();
    tools::ensure_build_tools()?;
    tools::ensure_test_system_packages()?;
    tools::ensure_test_npm()?;
    let model_dir = models::fetch_test_models()?;
    models::ensure_default_model()?;
    println!("set-up took {:.0} s", t0.elapsed().as_secs_f64());

    let mut results: Vec<(&str, Result<(), String>, f64)> = Vec::new();
    let mut stage = |name: &'static str, f: &dyn Fn() -> Result<(), String>| {
        step(name);
        let t = Instant::now();
        let r = f();
        results.push((name, r, t.elapsed().as_secs_f64()));
    };
    stage("cargo fmt --check", &|| {
        sh::run("cargo", &["fmt", "--all", "--check"])?;
        sh::run(
            "cargo",
            &["fmt", "--manifest-path", "xtask/Cargo.toml", "--check"],
        )
    });
    stage("cargo clippy (native)", &|| {
        sh::run(
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        )?;
        sh::run(
            "cargo",
            &[
                "clippy",
                "--manifest-path",
                "xtask/Cargo.toml",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        )
    });
    stage("cargo clippy (wasm32)", &|| {
        sh::run(
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--target",
                tools::WASM_TARGET,
                "--",
                "-D",
                "warnings",
            ],
        )
    });
    stage("cargo test (native; GPU tests on lavapipe)", &|| {
        let models = model_dir.to_string_lossy().to_string();
        let mut c = cmd("cargo", &["test", "--workspace", "--no-fail-fast"]);
        // GPU tests skip where no adapter exists; here they must not, so a broken
        // Vulkan install fails the run instead of silently passing.
        c.env("M1_TEST_MODELS", &models).env("M1_REQUIRE_GPU", "1");
        status(c, "cargo test --workspace --no-fail-fast")?;
        sh::run("cargo", &["test", "--manifest-path", "xtask/Cargo.toml"])
    });
    // engine/webdriver.json gives the flags; SwiftShader compiles ~40 pipelines in ~20 s,
    // past the runner's default timeout.
    stage("kernels in Chromium's WebGPU (wasm-bindgen-test)", &|| {
        wasm_test(
            &["gpu_browser"],
            &[
                ("CHROMEDRIVER", "/usr/bin/chromedriver"),
                ("WASM_BINDGEN_TEST_TIMEOUT", "600"),
            ],
        )
    });
    // Both models' prompts, free-running and teacher-forced: ~3.5 min in Node here; then the
    // CPU kernels' own tests with simd128 (seconds).
    let models = model_dir.to_string_lossy().to_string();
    stage(
        "CPU path and kernels in wasm32, vs llama.cpp (Node)",
        &|| {
            wasm_test(
                &["cpu_wasm", "cpu_kernels"],
                &[
                    ("M1_TEST_MODELS", models.as_str()),
                    ("M1_REQUIRE_MODELS", "1"),
                    ("WASM_BINDGEN_TEST_TIMEOUT", "1200"),
                ],
            )
        },
    );
    stage("wasm build (trunk build --release)", &serve::build_app);
    stage(
        "browser tests (Playwright in headless Chromium with WebGPU)",
        &|| browser_tests(&model_dir),
    );
    // The wasm build's output again, as `cargo xtask dist --no-build` writes it: no second build.
    stage(
        "dist folder on a plain static server (http-server)",
        &|| dist_test(&model_dir),
    );

    println!("\n==> summary");
    let mut failed = 0;
    for (name, r, secs) in &results {
        match r {
            Ok(()) => println!("  ok    {name} ({secs:.0} s)"),
            Err(e) => {
                failed += 1;
                println!("  FAIL  {name} ({secs:.0} s): {e}");
            }
        }
    }
    println!("total {:.0} s", t0.elapsed().as_secs_f64());
    println!("stages: {} passed, {failed} failed", results.len() - failed);
    if failed > 0 {
        return Err(format!("{failed} of {} stages failed", results.len()));
    }
    Ok(())
}

fn browser_tests(model_dir: &std::path::Path) -> Result<(), String> {
    // The app's own folder first, then the test model cache, as the page would see them.
    let site = Site::new(vec![root().join("www/models"), model_dir.to_path_buf()]);
    let port = free_port()?;
    serve::start(&site, port)?;
    let mut c = cmd(
        "node",
        &[
            "--test",
            "--test-concurrency=1",
            "--test-reporter=spec",
            "e2e/",
        ],
    );
    c.current_dir(root().join("tests"))
        .env("M1_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("M1_ARTIFACTS", root().join("tests/artifacts"));
    status(c, "node --test e2e/")
}

fn dist_test(model_dir: &std::path::Path) -> Result<(), String> {
    let out = root().join("target/e2e-dist");
    let model = model_dir.join(models::SMOLLM2_135M.file);
    dist::assemble(&root().join("dist"), &out, &[model])?;
    let mut c = cmd(
        "node",
        &["--test", "--test-reporter=spec", "e2e/dist.test.mjs"],
    );
    c.current_dir(root().join("tests"))
        .env("M1_DIST_DIR", &out)
        .env("M1_DIST_MODEL", models::SMOLLM2_135M.file)
        .env("M1_ARTIFACTS", root().join("tests/artifacts"));
    status(c, "node --test e2e/dist.test.mjs")
}

/// Engine test files built for wasm32 and run by wasm-bindgen-test-runner (in Chromium
/// when a file asks for a browser, else in Node).
fn wasm_test(tests: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let mut args = vec!["test", "-p", "m1-engine", "--target", tools::WASM_TARGET];
    for t in tests {
        args.extend(["--test", t]);
    }
    let mut c = cmd("cargo", &args);
    c.envs(env.iter().copied());
    status(c, &format!("cargo {}", args.join(" ")))
}

fn status(mut c: std::process::Command, what: &str) -> Result<(), String> {
    println!("$ {what}");
    let s = c
        .status()
        .map_err(|e| format!("could not start `{what}`: {e}"))?;
    if s.success() {
        Ok(())
    } else {
        Err(format!("`{what}` failed ({s})"))
    }
}

fn free_port() -> Result<u16, String> {
    let l =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}
