//! The engine side of the app: runs in a dedicated Web Worker so that loading a model and
//! decoding never block the UI thread. Receives [`Request`]s, answers with [`Event`]s. This
//! file holds the state and the dispatch; loading (`load.rs`), the device (`device.rs`) and
//! the model cache (`cache.rs`) have their own.
//!
//! Handlers are async tasks on the worker's event loop. State lives in a thread-local and is
//! never borrowed across an await: a long task takes what it needs out (the session) and
//! puts it back, so Stop and CancelLoad are handled while an answer or a load runs.

mod cache;
mod device;
mod hash;
mod helper;
mod js;
mod load;
mod session;
mod source;
mod threads;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use m1_engine::backend::EngineError;
use m1_engine::gpu::{Gpu, GpuError};
use m1_engine::reason::Question;
use wasm_bindgen::prelude::*;
use web_sys::{File, MessageEvent};

use crate::protocol::{AskSettings, DeviceInfo, ErrorKind, Event, Request, SweepSettings};
use js::scope;
use session::Session;
use source::LoadControl;

#[derive(Default)]
struct State {
    device: Option<DeviceInfo>,
    /// The probe's GPU, which every load uses; `None` on the CPU path and after the device
    /// was lost (the next load opens a new one).
    gpu: Option<Gpu>,
    session: Option<Session>,
    /// Set while a load runs; CancelLoad flips its flag.
    loading: Option<LoadControl>,
    /// An answer or a load is running (the session is taken out of the state meanwhile).
    busy: bool,
    stop: Rc<Cell<bool>>,
    /// The cache was checked and repaired (once per page, at the first listing).
    cache_checked: bool,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Sends one event to the UI. Failure here means the page is gone; nothing to tell.
pub fn post(event: &Event) {
    if let Some(s) = scope() {
        let _ = s.post_message(&JsValue::from_str(&event.to_json()));
    }
}

fn post_error(kind: ErrorKind, message: impl Into<String>) {
    post(&Event::Error {
        kind,
        message: message.into(),
    });
}

/// Installs the message handler. Called once by the worker binary.
pub fn start() {
    let Some(s) = scope() else {
        web_sys::console::error_1(&"m1 worker: not running in a dedicated worker".into());
        return;
    };
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let data = ev.data();
        // A request is either JSON text, or {json, file} when a picked File rides along.
        let (text, file) = match data.as_string() {
            Some(t) => (Some(t), None),
            None => {
                let get = |k: &str| js_sys::Reflect::get(&data, &k.into()).ok();
                let text = get("json").and_then(|v| v.as_string());
                let file = get("file").and_then(|f| f.dyn_into::<File>().ok());
                (text, file)
            }
        };
        let Some(text) = text else {
            post_error(
                ErrorKind::Protocol,
                "the worker received a message without a request",
            );
            return;
        };
        match serde_json::from_str::<Request>(&text) {
            Ok(req) => wasm_bindgen_futures::spawn_local(handle(req, file)),
            Err(e) => post_error(
                ErrorKind::Protocol,
                format!("the worker could not read a request: {e}"),
            ),
        }
    });
    s.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    js::stage("started, waiting for init");
    post(&Event::Started {});
}

async fn handle(req: Request, file: Option<File>) {
    match req {
        Request::Init {
            force_cpu,
            force_gpu,
            threads,
        } => {
            let device = device::probe(force_cpu, force_gpu, threads).await;
            with_state(|s| s.device = Some(device.clone()));
            js::stage("ready");
            post(&Event::Ready { device });
        }
        Request::Load { source, context } => load::load(source, file, context).await,
        Request::CancelLoad {} => {
            if let Some(c) = with_state(|s| s.loading.clone()) {
                c.cancelled.set(true);
            }
        }
        Request::Ask { question, settings } => ask(question, settings).await,
        Request::Sweep { question, settings } => sweep(question, settings).await,
        Request::Stop {} => with_state(|s| s.stop.set(true)),
        Request::ListCache {} => {
            let first = with_state(|s| !std::mem::replace(&mut s.cache_checked, true));
            let notes = if first {
                cache::repair().await
            } else {
                Vec::new()
            };
            cache::post_list(notes).await
        }
        Request::DeleteCached { file } => {
            if let Err(e) = cache::delete(&file).await {
                post_error(ErrorKind::Internal, format!("could not delete {file}: {e}"));
            }
            cache::post_list(Vec::new()).await;
        }
    }
}

async fn ask(question: Question, settings: AskSettings) {
    let Some((mut session, stop)) = take_session(&question) else {
        return;
    };
    let emit = |event| post(&Event::Reason { event });
    let result = session.ask(&question, &settings, stop, emit).await;
    finish(session, result);
}

async fn sweep(question: Question, settings: SweepSettings) {
    if settings.budgets.is_empty() {
        return post_error(ErrorKind::BadRequest, "Give at least one thinking budget.");
    }
    let Some((mut session, stop)) = take_session(&question) else {
        return;
    };
    let emit = |event| post(&Event::Sweep { event });
    let result = session.sweep(&question, &settings, stop, emit).await;
    finish(session, result);
}

/// The loaded session, taken out of the state for one run (with a fresh Stop flag), or
/// `None` after telling the UI why there is none to run.
fn take_session(question: &Question) -> Option<(Session, Rc<Cell<bool>>)> {
    if question.question.trim().is_empty() {
        post_error(ErrorKind::BadRequest, "Type a question first.");
        return None;
    }
    let taken = with_state(|s| {
        if s.busy {
            return Err(
                "the engine is busy: wait for the current answer or load to finish, or press Stop",
            );
        }
        let session = s
            .session
            .take()
            .ok_or("no model is loaded: choose a model first")?;
        s.busy = true;
        s.stop = Rc::new(Cell::new(false));
        Ok((session, s.stop.clone()))
    });
    taken.map_err(|m| post_error(ErrorKind::BadRequest, m)).ok()
}

/// Puts the session back after a run and reports what the run cost, or its error.
fn finish(session: Session, result: Result<crate::protocol::RunStats, EngineError>) {
    with_state(|s| {
        s.session = Some(session);
        s.busy = false;
    });
    match result {
        Ok(stats) => post(&Event::RunStats { stats }),
        Err(e) => report(e),
    }
}

/// A run's error, as the kind the UI picks a remedy by.
fn report(e: EngineError) {
    let kind = match e {
        EngineError::ContextTooSmall { .. } | EngineError::BadSampling { .. } => {
            ErrorKind::BadRequest
        }
        EngineError::Gpu(GpuError::DeviceLost(_)) => ErrorKind::DeviceLost,
        EngineError::Gpu(GpuError::OutOfMemory { .. }) => ErrorKind::OutOfMemory,
        _ => ErrorKind::Internal,
    };
    post_error(kind, e.to_string());
}
