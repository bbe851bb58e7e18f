//! Installs the toolchain pieces that are missing, and nothing else.
//! Versions are pinned: the wasm-bindgen CLI must equal the crate in Cargo.lock, and
//! Trunk must find binaries of exactly these versions or it tries to download them.

use crate::sh::{output, run, run_in};
use crate::{root, step};

pub const WASM_BINDGEN: &str = "0.2.130";
pub const TRUNK: &str = "0.21.14";
pub const BINARYEN: &str = "132";
/// The browser target the engine and the app are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The nightly toolchain of the threaded worker (`build-std`) and of the fuzzers
/// (cargo-fuzz): pinned, so a new nightly cannot break a build that passed.
pub const NIGHTLY: &str = "nightly-2026-05-20";
const APT_PACKAGES: &[&str] = &[
    "chromium",
    "chromium-driver",
    "mesa-vulkan-drivers",
    "libvulkan1",
];

/// What `serve` needs: the wasm target, the pinned nightly with std's source (the threaded
/// worker), wasm-bindgen, Trunk and wasm-opt.
pub fn ensure_build_tools() -> Result<(), String> {
    step("checking build tools");
    let targets = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !targets.lines().any(|t| t == WASM_TARGET) {
        run("rustup", &["target", "add", WASM_TARGET])?;
    }
    ensure_nightly(&["rust-src"])?;
    let wb = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if !wb.contains(WASM_BINDGEN) {
        // Not --locked: its lockfile pins a crate version the registry no longer serves.
        run(
            "cargo",
            &["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN],
        )?;
    }
    let trunk = output("trunk", &["--version"]).unwrap_or_default();
    if !trunk.contains(TRUNK) {
        run(
            "cargo",
            &["install", "trunk", "--version", TRUNK, "--locked"],
        )?;
    }
    let opt = output("wasm-opt", &["--version"]).unwrap_or_default();
    if !opt.contains(&format!("version {BINARYEN}")) {
        // Debian's binaryen (108) emits wasm that current Chromium rejects; npm's 132 works.
        let dir = root().join(".cache/tools");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        run_in(
            &dir,
            "npm",
            &[
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                ".",
                &format!("binaryen@{BINARYEN}"),
            ],
        )?;
    }
    println!(
        "{NIGHTLY} (rust-src), wasm-bindgen {WASM_BINDGEN}, trunk {TRUNK}, wasm-opt {BINARYEN}: ready"
    );
    Ok(())
}

/// [`NIGHTLY`] with `components`, installed (minimal profile) where missing.
pub fn ensure_nightly(components: &[&str]) -> Result<(), String> {
    let toolchain = format!("+{NIGHTLY}");
    let installed = output("rustup", &[&toolchain, "component", "list", "--installed"]);
    let have = installed.unwrap_or_default();
    if components
        .iter()
        .all(|c| have.lines().any(|l| l.starts_with(c)))
        && !have.is_empty()
    {
        return Ok(());
    }
    let mut args = vec!["toolchain", "install", NIGHTLY, "--profile", "minimal"];
    for c in components {
        args.extend(["--component", c]);
    }
    run("rustup", &args)
}

/// What the test suite needs beyond the build tools: Chromium, its driver and Mesa's
/// software Vulkan (lavapipe), so GPU tests run on a machine without a GPU.
pub fn ensure_test_system_packages() -> Result<(), String> {
    step("checking system packages (chromium, chromedriver, lavapipe)");
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output("dpkg-query", &["-W", "-f=${Status}", p])
                .map(|s| !s.contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        println!("all present");
        return Ok(());
    }
    let sudo = output("id", &["-u"]).as_deref() != Some("0");
    let (prog, mut pre): (&str, Vec<&str>) = if sudo {
        ("sudo", vec!["apt-get"])
    } else {
        ("apt-get", vec![])
    };
    let mut update = pre.clone();
    update.extend(["update", "-q"]);
    run(prog, &update)?;
    pre.extend(["install", "-y", "-q", "--no-install-recommends"]);
    pre.extend(missing.iter().copied());
    run(prog, &pre)
}

/// The npm packages of the browser tests (playwright-core, never its browser downloads;
/// http-server, the plain static server a dist folder is tested on; wllama, the peer of
/// the browser benchmark).
pub fn ensure_test_npm() -> Result<(), String> {
    step("checking npm packages of tests/");
    let dir = root().join("tests");
    if ["playwright-core", "http-server", "@wllama/wllama"]
        .iter()
        .all(|p| dir.join(format!("node_modules/{p}/package.json")).exists())
    {
        println!("present");
        return Ok(());
    }
    run_in(&dir, "npm", &["ci", "--no-audit", "--no-fund"])
}
