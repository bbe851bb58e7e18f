//! The engine side of the app: runs in a dedicated Web Worker so that loading a model and
//! decoding never block the UI thread. Receives [`Request`]s, answers with [`Event`]s.
//!
//! Handlers are async tasks on the worker's event loop. State lives in a thread-local and is
//! never borrowed across an await: a long task takes what it needs out (the session) and
//! puts it back, so Stop and CancelLoad are handled while an answer or a load runs.

mod cache;
mod js;
mod session;
mod source;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use m1_engine::backend::EngineError;
use m1_engine::gguf::{read_header, ByteSource, GgufError};
use m1_engine::gpu::{Gpu, GpuOptions};
use wasm_bindgen::prelude::*;
use web_sys::{File, MessageEvent};

use crate::protocol::{
    AskSettings, DeviceInfo, ErrorKind, Event, GpuMemory, LoadSource, ModelInfo, Phase, Request,
    WorkerMemory,
};
use js::{now_ms, scope, wasm_memory_bytes};
use session::{Borrowed, LoadError, Session};
use source::{BlobSource, Failure, HttpSource, LoadControl};

#[derive(Default)]
struct State {
    device: Option<DeviceInfo>,
    session: Option<Session>,
    /// Set while a load runs; CancelLoad flips its flag.
    loading: Option<LoadControl>,
    /// An answer or a load is running (the session is taken out of the state meanwhile).
    busy: bool,
    stop: Rc<Cell<bool>>,
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
    post(&Event::Started {});
}

async fn handle(req: Request, file: Option<File>) {
    match req {
        Request::Init {
            force_cpu,
            force_gpu,
        } => {
            let device = probe_device(force_cpu, force_gpu).await;
            with_state(|s| s.device = Some(device.clone()));
            post(&Event::Ready { device });
        }
        Request::Load { source, context } => load(source, file, context).await,
        Request::CancelLoad {} => {
            if let Some(c) = with_state(|s| s.loading.clone()) {
                c.cancelled.set(true);
            }
        }
        Request::Ask { question, settings } => answer(question, Run::Ask(settings)).await,
        Request::Chat {
            question,
            max_tokens,
            sampling,
        } => answer(question, Run::Chat(max_tokens, sampling)).await,
        Request::Stop {} => with_state(|s| s.stop.set(true)),
        Request::ListCache {} => post_cache().await,
        Request::DeleteCached { file } => {
            if let Err(e) = cache::delete(&file).await {
                post_error(ErrorKind::Internal, format!("could not delete {file}: {e}"));
            }
            post_cache().await;
        }
    }
}

async fn post_cache() {
    let entries = cache::list().await;
    let (usage, quota) = cache::estimate().await;
    post(&Event::Cache {
        entries,
        usage,
        quota,
    });
}

enum Run {
    Ask(AskSettings),
    Chat(u32, m1_engine::backend::Sampling),
}

async fn answer(question: m1_engine::reason::Question, run: Run) {
    if question.question.trim().is_empty() {
        post_error(ErrorKind::BadRequest, "Type a question first.");
        return;
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
    let (mut session, stop) = match taken {
        Ok(t) => t,
        Err(m) => return post_error(ErrorKind::BadRequest, m),
    };
    let emit = |event| post(&Event::Reason { event });
    let result = match &run {
        Run::Ask(settings) => session.ask(&question, settings, stop, emit).await,
        Run::Chat(max, sampling) => session.chat(&question, *max, sampling, stop, emit).await,
    };
    with_state(|s| {
        s.session = Some(session);
        s.busy = false;
    });
    if let Err(e) = result {
        let kind = match e {
            EngineError::ContextTooSmall { .. } | EngineError::BadSampling { .. } => {
                ErrorKind::BadRequest
            }
            EngineError::Gpu(m1_engine::gpu::GpuError::DeviceLost(_)) => ErrorKind::DeviceLost,
            EngineError::Gpu(m1_engine::gpu::GpuError::OutOfMemory { .. }) => {
                ErrorKind::OutOfMemory
            }
            _ => ErrorKind::Internal,
        };
        post_error(kind, e.to_string());
    }
}

async fn load(source: LoadSource, file: Option<File>, context: u32) {
    let started = with_state(|s| {
        if s.busy {
            return false;
        }
        // The old model's memory is released before the new one is read.
        s.session = None;
        s.busy = true;
        true
    });
    if !started {
        return post_error(
            ErrorKind::BadRequest,
            "the engine is busy: wait or press Stop first",
        );
    }
    let t0 = now_ms();
    let memory_before = wasm_memory_bytes();
    let result = load_inner(source, file, context as usize).await;
    match result {
        Ok((session, name, file_bytes, cached_as)) => {
            // wgpu's web backend leaves the adapter name empty; use the probe's label.
            let device = match (session.device_name(), with_state(|s| s.device.clone())) {
                (n, Some(DeviceInfo::WebGpu { adapter })) if n.is_empty() => adapter.name,
                (n, _) => n,
            };
            let info = ModelInfo {
                name,
                architecture: format!("{:?}", session.config.architecture).to_lowercase(),
                is_m1: session.is_m1,
                file_bytes,
                n_layers: session.config.n_layer as u32,
                context: m1_engine::backend::Backend::context_len(&session.backend) as u32,
                device,
                load_ms: now_ms() - t0,
                cached_as: cached_as.clone(),
                worker_memory: WorkerMemory {
                    before_load: memory_before,
                    after_load: wasm_memory_bytes(),
                },
                gpu_memory: session.backend.as_gpu().map(|b| GpuMemory {
                    weights: b.model().weight_bytes(),
                    state: b.model().state_bytes(),
                }),
            };
            if let Some(b) = session.backend.as_gpu() {
                b.model().gpu().on_device_lost(|message| {
                    post_error(
                        ErrorKind::DeviceLost,
                        format!("The GPU device was lost ({message})."),
                    )
                });
            }
            with_state(|s| s.session = Some(session));
            post(&Event::Loaded { model: info });
            if cached_as.is_some() {
                post_cache().await;
            }
        }
        Err((kind, message)) => post_error(kind, message),
    }
    with_state(|s| {
        s.busy = false;
        s.loading = None;
    });
}

/// The session, its name, its size, and the cache file it can be loaded from again.
type Loaded = (Session, String, u64, Option<String>);

async fn load_inner(
    source: LoadSource,
    file: Option<File>,
    context: usize,
) -> Result<Loaded, (ErrorKind, String)> {
    match source {
        LoadSource::Url {
            url,
            name,
            size,
            sha256,
        } => {
            let control = LoadControl::new(Phase::Download);
            with_state(|s| s.loading = Some(control.clone()));
            // Offline: a partial copy stays recorded for the next try.
            let mut src = HttpSource::open(&url, size, control.clone())
                .await
                .map_err(failure)?;
            let total = src.size();
            let cache_name = file_name(&name, &url);
            // A download the network broke off earlier (in this page or a closed one)
            // resumes from the bytes its copy holds.
            match cache::CacheWriter::resume(&cache_name, &url, total).await {
                Some(w) => src.mirror_into(w),
                None => match cache::CacheWriter::create(&cache_name, &url, total).await {
                    Ok(w) => src.mirror_into(w),
                    Err(cache::CacheError::Quota(m)) => return Err((ErrorKind::Quota, m)),
                    // No OPFS (private mode, old browser): still load, just not for offline use.
                    Err(e) => {
                        web_sys::console::warn_1(&format!("model cache unavailable: {e}").into())
                    }
                },
            }
            let session = read_model(&mut src, context).await;
            let session = match session {
                Ok(s) => s,
                Err(e) => return Err(abandon(&mut src, e).await),
            };
            // Bytes the loader skipped (padding) complete the cache copy before verifying.
            let mut cached_as = None;
            if let Some(w) = src.take_cache() {
                let gaps = w.gaps();
                src.mirror_into(w);
                let mut buf = vec![0u8; 8 << 20];
                for (start, end) in gaps {
                    let mut at = start;
                    while at < end {
                        let n = ((end - at) as usize).min(buf.len());
                        if let Err(e) = src.read_at(at, &mut buf[..n]).await {
                            return Err(abandon(&mut src, LoadError::Read(e)).await);
                        }
                        at += n as u64;
                    }
                }
                if let Some(w) = src.take_cache() {
                    let verify = LoadControl::new(Phase::Verify);
                    match w
                        .finish(sha256.as_deref(), |d, t| verify.advance(d, t))
                        .await
                    {
                        Ok(entry) => cached_as = Some(entry.file),
                        Err(e) => {
                            let kind = match e {
                                cache::CacheError::Quota(_) => ErrorKind::Quota,
                                cache::CacheError::Corrupt(_) => ErrorKind::BadModel,
                                cache::CacheError::Other(_) => ErrorKind::Internal,
                            };
                            return Err((kind, e.to_string()));
                        }
                    }
                }
            }
            Ok((session, name, total, cached_as))
        }
        LoadSource::Cached { file: name } => {
            let entry = cache::entry(&name).await.ok_or((
                ErrorKind::BadRequest,
                format!("{name} is not in the model cache (or its copy is incomplete)"),
            ))?;
            let blob = cache::open(&name)
                .await
                .map_err(|e| (ErrorKind::Internal, e))?;
            let control = LoadControl::new(Phase::Read);
            with_state(|s| s.loading = Some(control.clone()));
            let mut src = BlobSource::new(blob.into(), control);
            let session = read_model(&mut src, context)
                .await
                .map_err(|e| explain(e, src.failure.clone()))?;
            Ok((session, name.clone(), entry.size, Some(name)))
        }
        LoadSource::Picked { name } => {
            let file = file.ok_or((
                ErrorKind::Protocol,
                "a picked model arrived without its file".to_string(),
            ))?;
            let size = file.size() as u64;
            let control = LoadControl::new(Phase::Read);
            with_state(|s| s.loading = Some(control.clone()));
            let mut src = BlobSource::new(file.into(), control);
            let session = read_model(&mut src, context)
                .await
                .map_err(|e| explain(e, src.failure.clone()))?;
            Ok((session, name, size, None))
        }
    }
}

/// A download the network broke off keeps its partial cache copy, recorded in the index,
/// so loading the same URL again (Retry, or later from a new page) resumes from the bytes
/// stored; any other failure (cancel, bad model, full storage) drops the copy, so nothing
/// half-written is ever trusted.
async fn abandon(src: &mut HttpSource, e: LoadError) -> (ErrorKind, String) {
    let fail = src.failure.clone();
    if let Some(writer) = src.take_cache() {
        if matches!(fail, Some(Failure::Network(_))) {
            if let Err(e) = writer.suspend().await {
                web_sys::console::warn_1(&format!("could not keep the partial copy: {e}").into());
            }
        } else {
            writer.abandon().await;
        }
    }
    explain(e, fail)
}

async fn read_model<S: ByteSource>(src: &mut S, context: usize) -> Result<Session, LoadError> {
    let header = read_header(src).await.map_err(LoadError::Read)?;
    let use_gpu = with_state(|s| matches!(s.device, Some(DeviceInfo::WebGpu { .. })));
    let gpu = session::open_gpu(use_gpu).await;
    Session::load(&header, Borrowed(src), context, gpu).await
}

fn failure(f: Failure) -> (ErrorKind, String) {
    match f {
        Failure::Network(m) => (ErrorKind::Network, m),
        Failure::Cancelled => (ErrorKind::Cancelled, "loading was cancelled".into()),
        Failure::Cache(m) => (ErrorKind::Quota, m),
    }
}

fn explain(e: LoadError, fail: Option<Failure>) -> (ErrorKind, String) {
    if let Some(f) = fail {
        return failure(f);
    }
    match e {
        LoadError::Read(g @ GgufError::Io { .. }) => (ErrorKind::Network, g.to_string()),
        LoadError::Read(g) => (
            ErrorKind::BadModel,
            format!("this file is not a usable GGUF model: {g}"),
        ),
        LoadError::BadModel(m) => (
            ErrorKind::BadModel,
            format!("this model cannot run here: {m}"),
        ),
        LoadError::OutOfMemory(m) => (ErrorKind::OutOfMemory, m),
    }
}

/// The cache file name: the list's file name, else the URL's last segment.
fn file_name(name: &str, url: &str) -> String {
    let from_url = url
        .rsplit('/')
        .next()
        .unwrap_or("")
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let base = if from_url.ends_with(".gguf") {
        from_url
    } else {
        name
    };
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// WebGPU where the browser offers it, else the CPU path with the reason.
async fn probe_device(force_cpu: bool, force_gpu: bool) -> DeviceInfo {
    if force_cpu {
        return DeviceInfo::Cpu {
            reason: "the CPU path was requested".into(),
            adapter: None,
        };
    }
    if !has_navigator_gpu() {
        return DeviceInfo::Cpu {
            reason: "this browser does not offer WebGPU (navigator.gpu is missing)".into(),
            adapter: None,
        };
    }
    // Chromium answers requestAdapter with null while its GPU process is (re)starting, so
    // one miss is retried before the page settles on the CPU for the whole visit.
    let gpu = match Gpu::new(GpuOptions::default()).await {
        Err(m1_engine::gpu::GpuError::NoAdapter(_)) => {
            js::sleep_ms(1000).await;
            Gpu::new(GpuOptions::default()).await
        }
        first => first,
    };
    match gpu {
        Ok(gpu) => {
            let mut adapter = gpu.report.clone();
            if adapter.name.is_empty() {
                adapter.name = browser_adapter_label()
                    .await
                    .unwrap_or_else(|| "unnamed adapter".into());
            }
            // Measured: on SwiftShader/llvmpipe the wasm CPU path decodes 6-20x faster than
            // our kernels on the software adapter, so a fallback adapter is passed over.
            if adapter.device_type == "Cpu" && !force_gpu {
                let reason = format!(
                    "the only WebGPU adapter is a software one ({}), slower than the CPU path; add ?gpu=1 to use it anyway",
                    adapter.name
                );
                return DeviceInfo::Cpu {
                    reason,
                    adapter: Some(adapter),
                };
            }
            DeviceInfo::WebGpu { adapter }
        }
        Err(e) => DeviceInfo::Cpu {
            reason: e.to_string(),
            adapter: None,
        },
    }
}

fn has_navigator_gpu() -> bool {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"navigator".into())
        .and_then(|nav| js_sys::Reflect::get(&nav, &"gpu".into()))
        .map(|gpu| !gpu.is_undefined() && !gpu.is_null())
        .unwrap_or(false)
}

/// wgpu maps only `GPUAdapterInfo.description`, which browsers usually leave empty for
/// privacy; vendor and architecture are still given, so name the adapter from those.
async fn browser_adapter_label() -> Option<String> {
    let get = |o: &JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).ok();
    let gpu = get(&js_sys::global(), "navigator").and_then(|n| get(&n, "gpu"))?;
    let request = get(&gpu, "requestAdapter")?
        .dyn_into::<js_sys::Function>()
        .ok()?;
    let promise = request
        .call0(&gpu)
        .ok()?
        .dyn_into::<js_sys::Promise>()
        .ok()?;
    let adapter = js::await_promise(promise).await.ok()?;
    let info = get(&adapter, "info")?;
    let field = |k: &str| {
        get(&info, k)
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let fallback = get(&info, "isFallbackAdapter")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let label = [field("description"), field("vendor"), field("architecture")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let software = if fallback { " (software fallback)" } else { "" };
    (!label.is_empty()).then(|| format!("{label}{software}"))
}
