//! What the integration tests that read real model files share: where the models and the
//! llama.cpp fixture are, and the SKIP message when they are absent (`cargo xtask test`
//! fetches them first, so CI never skips).

// Each test crate includes this module and uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

pub mod decode_step;
pub mod llama_parity;
#[cfg(not(target_arch = "wasm32"))]
pub mod m1_shape;

pub const QWEN: &str = "qwen2.5-coder-0.5b-instruct.gguf";
pub const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";

/// `$M1_TEST_MODELS/<name>` (default `<workspace>/.cache/models`), or None with a printed
/// reason.
pub fn test_model(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("M1_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models"));
    let path = dir.join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIP: test model {} not found (set M1_TEST_MODELS or run `cargo xtask fetch-models`)",
            path.display()
        );
        None
    }
}

/// The default GPU adapter, or None with a printed SKIP where there is none; with
/// `M1_REQUIRE_GPU=1` (as CI sets it) a missing adapter fails the test instead.
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu_or_skip() -> Option<m1_engine::gpu::Gpu> {
    use m1_engine::gpu::{Gpu, GpuOptions};
    match futures::executor::block_on(Gpu::new(GpuOptions::default())) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            assert!(
                std::env::var("M1_REQUIRE_GPU").as_deref() != Ok("1"),
                "M1_REQUIRE_GPU=1 but no GPU adapter: {e}"
            );
            println!("SKIP: no GPU adapter ({e})");
            None
        }
    }
}

/// The model at `path` loaded onto `gpu` through `backend::load`, with room for 256
/// positions (the GPU tests' questions are short).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_on_gpu(path: &std::path::Path, gpu: m1_engine::gpu::Gpu) -> m1_engine::backend::Loaded {
    use futures::executor::block_on;
    use m1_engine::backend::{load, Device, LoadOptions};
    use m1_engine::gguf::{read_header, FileSource};
    let mut src = FileSource::open(path).expect("open");
    let header = block_on(read_header(&mut src)).expect("header");
    let options = LoadOptions {
        context: Some(256),
        ..LoadOptions::default()
    };
    block_on(load(&header, src, Device::Gpu(gpu), options, |_, _| {})).expect("load")
}

/// A fixture's JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of token ids")
        .iter()
        .map(|x| x.as_u64().expect("a token id") as u32)
        .collect()
}

/// llama.cpp's reference tokens (scripts/llama_reference.py), or None with a printed reason.
pub fn fixture() -> Option<Value> {
    json_fixture("llama_cpp_reference.json", "scripts/llama_reference.py")
}

/// `tests/fixtures/<file>`, or None with a printed reason naming the script that writes it.
pub fn json_fixture(file: &str, script: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(serde_json::from_str(&s).expect("fixture is valid JSON")),
        Err(_) => {
            eprintln!("SKIP: fixture {} not found (run {script})", path.display());
            None
        }
    }
}

/// SmolLM2's header with one matrix re-typed, and zeroed tensor data: a well-formed GGUF
/// of about 100 MB, built in memory.
#[cfg(not(target_arch = "wasm32"))]
pub fn retyped_smollm2(tensor: &str, ty: m1_engine::gguf::GgmlType) -> Option<Vec<u8>> {
    use futures::executor::block_on;
    use m1_engine::gguf::{read_header, FileSource, Layout, TensorSpec};
    let path = test_model(SMOLLM)?;
    let mut src = FileSource::open(&path).expect("open");
    let header = block_on(read_header(&mut src)).expect("header");
    let metadata: Vec<(String, m1_engine::gguf::Value)> = header
        .metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let specs: Vec<TensorSpec> = header
        .tensors
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ggml_type: if t.name == tensor { ty } else { t.ggml_type },
        })
        .collect();
    let layout = Layout::new(&metadata, specs).expect("layout");
    let mut w = layout.start(Vec::new()).expect("start");
    for i in 0..layout.tensors().len() {
        w.write(i, &vec![0u8; layout.tensor_size(i) as usize])
            .expect("write");
    }
    Some(w.finish().expect("finish"))
}
