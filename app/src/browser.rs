//! Browser bridges the UI (main thread) and the worker both use: a JS exception as text, a
//! promise awaited, cross-origin isolation, and the one OPFS call web-sys does not wrap, a
//! folder's listing.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::FileSystemDirectoryHandle;

/// Whether this page (or the worker's page) is cross-origin isolated, the one state in which
/// workers may share memory.
pub fn cross_origin_isolated() -> bool {
    Reflect::get(&js_sys::global(), &"crossOriginIsolated".into())
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// A JS exception as readable text (`Error.message` where there is one).
pub fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

/// A JS promise's value, its rejection as text.
pub async fn await_promise(p: Promise) -> Result<JsValue, String> {
    JsFuture::from(p).await.map_err(|e| describe(&e))
}

/// The names in a folder, through its async iterator (`keys()`).
pub async fn names(d: &FileSystemDirectoryHandle) -> Result<Vec<String>, String> {
    let keys: Function = Reflect::get(d, &"keys".into())
        .map_err(|e| describe(&e))?
        .dyn_into()
        .map_err(|_| "this browser cannot list OPFS folders")?;
    let iter = keys.call0(d).map_err(|e| describe(&e))?;
    let next: Function = Reflect::get(&iter, &"next".into())
        .map_err(|e| describe(&e))?
        .dyn_into()
        .map_err(|_| "OPFS keys() gave no iterator")?;
    let mut out = Vec::new();
    loop {
        let step: Promise = next
            .call0(&iter)
            .map_err(|e| describe(&e))?
            .unchecked_into();
        let step = await_promise(step).await?;
        if Reflect::get(&step, &"done".into())
            .ok()
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            return Ok(out);
        }
        if let Some(name) = Reflect::get(&step, &"value".into())
            .ok()
            .and_then(|v| v.as_string())
        {
            out.push(name);
        }
    }
}
