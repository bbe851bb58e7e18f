//! The UI's handle on the engine worker: sends [`Request`]s, turns worker messages into
//! [`Event`]s for the components. A dead worker (a panic, a failed load) becomes an
//! error event, never a silent stall.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker};

use crate::protocol::{ErrorKind, Event, Request};

/// Trunk builds the worker binary with this loader shim (see index.html).
const WORKER_URL: &str = "./worker_loader.js";
/// The same worker built with atomics (`cargo xtask` builds it after Trunk): its memory is
/// shared, which a browser allows only on a cross-origin isolated page, where it is the one
/// whose CPU path runs on several threads.
const THREADED_WORKER_URL: &str = "./worker-mt_loader.js";

/// The threaded engine where the page may share memory, else the single-threaded one.
fn worker_url() -> &'static str {
    if crate::browser::cross_origin_isolated() {
        THREADED_WORKER_URL
    } else {
        WORKER_URL
    }
}

/// Cloneable and `Send` so Leptos closures may hold it; the wrapper's thread check is
/// moot in the browser's single-threaded main thread.
#[derive(Clone)]
pub struct EngineHandle {
    worker: send_wrapper::SendWrapper<Rc<Worker>>,
}

impl EngineHandle {
    /// Starts the worker; `on_event` receives every event, including startup failures.
    pub fn spawn(on_event: impl Fn(Event) + 'static) -> Result<Self, String> {
        let worker = Worker::new(worker_url())
            .map_err(|e| format!("the engine worker could not start: {e:?}"))?;
        let on_event = Rc::new(on_event);
        let sink = on_event.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let event = match ev
                .data()
                .as_string()
                .map(|t| serde_json::from_str::<Event>(&t))
            {
                Some(Ok(e)) => e,
                Some(Err(e)) => Event::Error {
                    kind: ErrorKind::Protocol,
                    message: format!("the UI could not read a message from the engine: {e}"),
                },
                None => Event::Error {
                    kind: ErrorKind::Protocol,
                    message: "the engine sent a message that is not JSON text".into(),
                },
            };
            sink(event);
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let sink = on_event;
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |ev: ErrorEvent| {
            sink(Event::Error {
                kind: ErrorKind::Internal,
                message: format!("the engine worker stopped: {}", ev.message()),
            });
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        Ok(Self {
            worker: send_wrapper::SendWrapper::new(Rc::new(worker)),
        })
    }

    pub fn send(&self, req: &Request) {
        let _ = self.worker.post_message(&JsValue::from_str(&req.to_json()));
    }

    /// A request with a picked `File` beside it: the browser clones the handle, not the
    /// bytes, so a multi-GB file costs nothing to send.
    pub fn send_with_file(&self, req: &Request, file: &web_sys::File) {
        let msg = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&msg, &"json".into(), &JsValue::from_str(&req.to_json()));
        let _ = js_sys::Reflect::set(&msg, &"file".into(), file);
        let _ = self.worker.post_message(&msg);
    }
}
