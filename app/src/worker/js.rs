//! Small bridges from JS promises and globals to Rust, shared by the worker's modules.

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::DedicatedWorkerGlobalScope;

pub fn scope() -> Option<DedicatedWorkerGlobalScope> {
    js_sys::global()
        .dyn_into::<DedicatedWorkerGlobalScope>()
        .ok()
}

/// A JS exception as readable text (`Error.message` where there is one).
pub fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

pub async fn await_promise(p: js_sys::Promise) -> Result<JsValue, String> {
    JsFuture::from(p).await.map_err(|e| describe(&e))
}

/// Milliseconds from the worker's monotonic clock.
pub fn now_ms() -> f64 {
    scope()
        .and_then(|s| s.performance())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Bytes of the worker's WebAssembly memory. It only grows, so this is also the peak.
pub fn wasm_memory_bytes() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65_536
}

/// Lets the worker's event loop run (so a Stop message gets through) between compute steps
/// that never suspend on their own (the CPU backend).
pub async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(s) = scope() {
            let _ = s.set_timeout_with_callback(&resolve);
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Waits `ms` milliseconds (retry back-off).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(s) = scope() {
            let _ = s.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}
