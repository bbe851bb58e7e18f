//! The engine worker's helper threads written in JS (`www/fetch_thread.js`,
//! `www/cache_thread.js`): workers of this worker that answer each message `{id, ...}` with
//! `{id, ...}`, or `{id, error}` when it failed, so the engine awaits an answer as a promise
//! while its own event loop goes on placing weights.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, Worker, WorkerOptions};

use super::js::describe;

/// A request's resolve and reject.
type Settle = (js_sys::Function, js_sys::Function);

pub struct Helper {
    worker: Worker,
    next: Cell<u32>,
    /// Requests not yet answered, by id.
    waiting: Rc<RefCell<HashMap<u32, Settle>>>,
    /// Why the thread stopped (its script failed to load or threw): every request waiting
    /// and every later one is refused with it, never left unanswered.
    broken: Rc<RefCell<Option<String>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl Helper {
    /// Starts `script` (beside the worker's own); `None` where this worker cannot start one.
    pub fn start(script: &str, name: &str) -> Option<Self> {
        let options = WorkerOptions::new();
        options.set_name(name);
        let worker = Worker::new_with_options(script, &options).ok()?;
        let waiting: Rc<RefCell<HashMap<u32, Settle>>> = Rc::default();
        let answers = waiting.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            let Some(id) = field(&data, "id").as_f64() else {
                return;
            };
            let Some((resolve, reject)) = answers.borrow_mut().remove(&(id as u32)) else {
                return;
            };
            let _ = if field(&data, "error").is_undefined() {
                resolve.call1(&JsValue::NULL, &data)
            } else {
                reject.call1(&JsValue::NULL, &data)
            };
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let broken: Rc<RefCell<Option<String>>> = Rc::default();
        let (refused, why, script) = (waiting.clone(), broken.clone(), script.to_string());
        // A script that failed to load fires a plain Event, one that threw an ErrorEvent.
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            let reason = match field(&e, "message").as_string() {
                Some(m) => format!("{script} stopped: {m}"),
                None => format!("{script} could not be started"),
            };
            for (_, (_, reject)) in refused.borrow_mut().drain() {
                let _ = reject.call1(&JsValue::NULL, &reason.as_str().into());
            }
            *why.borrow_mut() = Some(reason);
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Some(Self {
            worker,
            next: Cell::new(0),
            waiting,
            broken,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Sends `fields` under a new id, moving the buffers in `transfer` (no copy): the id and
    /// the promise of the answer, which rejects with it when it carries `error`.
    pub fn call(&self, fields: &[(&str, JsValue)], transfer: &[JsValue]) -> (js_sys::Promise, u32) {
        let id = self.next.get();
        self.next.set(id.wrapping_add(1));
        let promise = js_sys::Promise::new(&mut |resolve, reject| {
            if let Some(why) = self.broken.borrow().as_deref() {
                let _ = reject.call1(&JsValue::NULL, &why.into());
                return;
            }
            self.waiting
                .borrow_mut()
                .insert(id, (resolve, reject.clone()));
            let sent = message(fields).and_then(|m| {
                js_sys::Reflect::set(&m, &"id".into(), &id.into())?;
                let moved: js_sys::Array = transfer.iter().collect();
                self.worker.post_message_with_transfer(&m, &moved)
            });
            if let Err(e) = sent {
                self.waiting.borrow_mut().remove(&id);
                let _ = reject.call1(&JsValue::NULL, &describe(&e).into());
            }
        });
        (promise, id)
    }

    /// Whether the thread still answers (its script loaded and has not thrown).
    pub fn works(&self) -> bool {
        self.broken.borrow().is_none()
    }

    /// Stops waiting for request `id`; whether it was still waiting.
    pub fn forget(&self, id: u32) -> bool {
        self.waiting.borrow_mut().remove(&id).is_some()
    }

    /// Sends `fields` with no answer awaited, moving the buffers in `transfer`.
    pub fn tell(&self, fields: &[(&str, JsValue)], transfer: &[JsValue]) {
        if let Ok(m) = message(fields) {
            let moved: js_sys::Array = transfer.iter().collect();
            let _ = self.worker.post_message_with_transfer(&m, &moved);
        }
    }
}

fn message(fields: &[(&str, JsValue)]) -> Result<js_sys::Object, JsValue> {
    let m = js_sys::Object::new();
    for (k, v) in fields {
        js_sys::Reflect::set(&m, &(*k).into(), v)?;
    }
    Ok(m)
}

/// Field `k` of an answer (undefined when absent).
pub fn field(data: &JsValue, k: &str) -> JsValue {
    js_sys::Reflect::get(data, &k.into()).unwrap_or_default()
}

/// The bytes an answer carries: the first `len` of its buffer `bytes` (buffers are
/// recycled, so one may be longer than what it holds).
pub fn bytes(answer: &JsValue) -> Result<js_sys::Uint8Array, String> {
    let buffer: js_sys::ArrayBuffer = field(answer, "bytes")
        .dyn_into()
        .map_err(|_| "the answer carried no bytes".to_string())?;
    let len = field(answer, "len")
        .as_f64()
        .map_or(buffer.byte_length(), |n| n as u32);
    if len > buffer.byte_length() {
        return Err(format!(
            "the answer claims {len} bytes in a buffer of {}",
            buffer.byte_length()
        ));
    }
    Ok(js_sys::Uint8Array::new_with_byte_offset_and_length(
        &buffer, 0, len,
    ))
}

/// What a failed request says: the answer's `error`, or whatever else the promise rejected
/// with.
pub fn failed(e: &JsValue) -> String {
    field(e, "error")
        .as_string()
        .or_else(|| e.as_string())
        .unwrap_or_else(|| describe(e))
}
