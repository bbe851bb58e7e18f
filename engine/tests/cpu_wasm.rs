//! The CPU path as the browser runs it (candle-core compiled to wasm32 with SIMD128), held to
//! the same llama.cpp check as natively (common/llama_parity.rs). This is the path a visitor
//! gets without a hardware WebGPU adapter; its SIMD kernels and float order differ from the
//! native build's, so it is checked on its own rather than assumed equal.
//!
//! Runs in Node (no browser needed), reading the models with Node's `fs`:
//! `M1_TEST_MODELS=$PWD/.cache/models cargo test -p m1-engine --target wasm32-unknown-unknown
//! --test cpu_wasm` (`cargo xtask test` does).
#![cfg(target_arch = "wasm32")]

use m1_engine::cpu::{CpuModel, CpuOptions};
use m1_engine::gguf::{read_header, SliceSource};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{console_log, wasm_bindgen_test};

mod common;
use common::{llama_parity, QWEN, SMOLLM};

#[wasm_bindgen(module = "fs")]
extern "C" {
    #[wasm_bindgen(js_name = readFileSync, catch)]
    fn read_file_sync(path: &str) -> Result<Vec<u8>, JsValue>;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(thread_local_v2, js_namespace = ["process", "env"], js_name = M1_TEST_MODELS)]
    static MODELS_DIR: Option<String>;
    #[wasm_bindgen(thread_local_v2, js_namespace = ["process", "env"], js_name = M1_REQUIRE_MODELS)]
    static REQUIRE_MODELS: Option<String>;
}

const FIXTURE: &str = include_str!("fixtures/llama_cpp_reference.json");

/// The model file's bytes (the whole file in wasm memory: at most 491 MB here, and the
/// loader reads it through the same byte-range interface as an HTTP body or OPFS file).
fn model_bytes(name: &str) -> Option<Vec<u8>> {
    let dir = MODELS_DIR
        .with(Option::clone)
        .unwrap_or_else(|| format!("{}/../.cache/models", env!("CARGO_MANIFEST_DIR")));
    match read_file_sync(&format!("{dir}/{name}")) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            assert!(
                REQUIRE_MODELS.with(Option::is_none),
                "M1_REQUIRE_MODELS is set but {dir}/{name} cannot be read: {e:?}"
            );
            console_log!("SKIP: test model {dir}/{name} not found (set M1_TEST_MODELS)");
            None
        }
    }
}

async fn check(name: &str) {
    let Some(bytes) = model_bytes(name) else {
        return;
    };
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    let header = read_header(&mut SliceSource::new(&bytes))
        .await
        .expect("header");
    let mut model = CpuModel::load(&header, SliceSource::new(&bytes), CpuOptions::default())
        .await
        .expect("CPU load");
    let result = llama_parity::check(name, &mut model, &fixture, &|line| console_log!("{line}"));
    if let Err(failures) = result {
        panic!("{name} in wasm32:\n{failures}");
    }
}

#[wasm_bindgen_test]
async fn qwen2_greedy_matches_llama_cpp_in_wasm() {
    check(QWEN).await;
}

#[wasm_bindgen_test]
async fn smollm2_greedy_matches_llama_cpp_in_wasm() {
    check(SMOLLM).await;
}
