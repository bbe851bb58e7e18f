//! `load`: a model from a URL (downloaded into the cache as it streams), the cache or a
//! picked file, through the engine's loader onto the device the probe chose.

use m1_engine::backend::{self, LoadError, LoadErrorKind, LoadOptions};
use m1_engine::gguf::{read_header, ByteSource};
use web_sys::{Blob, File};

use super::js::{now_ms, wasm_memory_bytes};
use super::session::Session;
use super::source::{BlobSource, Failure, HttpSource, LoadControl};
use super::{cache, device, post, post_error, with_state};
use crate::protocol::{
    DeviceInfo, ErrorKind, Event, GpuMemory, LoadSource, ModelInfo, Phase, WorkerMemory,
};

pub async fn load(source: LoadSource, file: Option<File>, context: u32) {
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
    let result = match device::for_load().await {
        Ok(device) => load_from(source, file, device, context as usize).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((session, name, file_bytes, cached_as)) => {
            // wgpu's web backend leaves the adapter name empty; use the probe's label.
            let device = match (session.device_name(), with_state(|s| s.device.clone())) {
                (n, Some(DeviceInfo::WebGpu { adapter })) if n.is_empty() => adapter.name,
                (n, _) => n,
            };
            let model = &session.model;
            let info = ModelInfo {
                name,
                architecture: format!("{:?}", model.config.architecture).to_lowercase(),
                is_m1: model.is_m1,
                file_bytes,
                n_layers: model.config.n_layer as u32,
                context: m1_engine::backend::Backend::context_len(&model.backend) as u32,
                device,
                load_ms: now_ms() - t0,
                cached_as: cached_as.clone(),
                worker_memory: WorkerMemory {
                    before_load: memory_before,
                    after_load: wasm_memory_bytes(),
                },
                gpu_memory: model.backend.as_gpu().map(|b| GpuMemory {
                    weights: b.model().weight_bytes(),
                    state: b.model().state_bytes(),
                }),
            };
            with_state(|s| s.session = Some(session));
            post(&Event::Loaded { model: info });
            if cached_as.is_some() {
                cache::post_list(Vec::new()).await;
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

async fn load_from(
    source: LoadSource,
    file: Option<File>,
    device: backend::Device,
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
                    Err(cache::CacheError::InUse(m)) => cache::post_list(vec![m]).await,
                    // No OPFS (private mode, old browser): still load, just not for offline use.
                    Err(e) => {
                        web_sys::console::warn_1(&format!("model cache unavailable: {e}").into())
                    }
                },
            }
            // The download's own progress is the network's (HttpSource reports it).
            let session = match read_model(&mut src, device, context, |_, _| {}).await {
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
                            return Err(abandon(&mut src, e.into()).await);
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
                                cache::CacheError::InUse(_) | cache::CacheError::Other(_) => {
                                    ErrorKind::Internal
                                }
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
            let session = read_blob(blob.into(), device, context).await?;
            Ok((session, name.clone(), entry.size, Some(name)))
        }
        LoadSource::Picked { name } => {
            let file = file.ok_or((
                ErrorKind::Protocol,
                "a picked model arrived without its file".to_string(),
            ))?;
            let size = file.size() as u64;
            let session = read_blob(file.into(), device, context).await?;
            Ok((session, name, size, None))
        }
    }
}

/// A model from disk (the cache or a picked file); progress is the weights placed.
async fn read_blob(
    blob: Blob,
    device: backend::Device,
    context: usize,
) -> Result<Session, (ErrorKind, String)> {
    let control = LoadControl::new(Phase::Read);
    with_state(|s| s.loading = Some(control.clone()));
    let mut src = BlobSource::new(blob, control.clone());
    read_model(&mut src, device, context, |d, t| control.advance(d, t))
        .await
        .map_err(|e| explain(e, src.failure.clone()))
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

/// Header, then the engine's loader; `progress` hears of the weights placed.
async fn read_model<S: ByteSource>(
    src: &mut S,
    device: backend::Device,
    context: usize,
    progress: impl FnMut(u64, u64),
) -> Result<Session, LoadError> {
    let header = read_header(src).await?;
    let options = LoadOptions {
        context: Some(context),
        ..LoadOptions::default()
    };
    let model = backend::load(&header, src, device, options, progress).await?;
    Ok(Session { model })
}

fn failure(f: Failure) -> (ErrorKind, String) {
    match f {
        Failure::Network(m) => (ErrorKind::Network, m),
        Failure::Cancelled => (ErrorKind::Cancelled, "loading was cancelled".into()),
        Failure::Cache(m) => (ErrorKind::Quota, m),
    }
}

/// The protocol's error kind and the message for a failed load: what the source recorded
/// (network, cancel, full store) comes first, since the engine only saw a failed read.
fn explain(e: LoadError, fail: Option<Failure>) -> (ErrorKind, String) {
    if let Some(f) = fail {
        return failure(f);
    }
    match (e.kind(), &e) {
        (LoadErrorKind::Read, _) => (ErrorKind::Network, e.to_string()),
        (LoadErrorKind::BadModel, LoadError::Gguf(_)) => (
            ErrorKind::BadModel,
            format!("this file is not a usable GGUF model: {e}"),
        ),
        (LoadErrorKind::BadModel, _) => (
            ErrorKind::BadModel,
            format!("this model cannot run here: {e}"),
        ),
        (LoadErrorKind::Unsupported, _) => (
            ErrorKind::BadModel,
            format!(
                "this model cannot run here: {e}. The CPU path reads every GGUF tensor type: \
                 add ?cpu=1 to the address to use it."
            ),
        ),
        (LoadErrorKind::OutOfMemory, LoadError::Cpu(inner)) => (
            ErrorKind::OutOfMemory,
            format!(
                "this model is too large for the CPU path in a browser: {inner}. \
                 It runs on WebGPU: use a browser with WebGPU on a GPU."
            ),
        ),
        (LoadErrorKind::OutOfMemory, LoadError::Gpu(inner)) => (
            ErrorKind::OutOfMemory,
            format!("the model does not fit in this GPU's memory: {inner}"),
        ),
        (LoadErrorKind::OutOfMemory, _) => (ErrorKind::OutOfMemory, e.to_string()),
        (LoadErrorKind::DeviceLost, _) => (ErrorKind::DeviceLost, e.to_string()),
        (LoadErrorKind::Internal, _) => (ErrorKind::Internal, e.to_string()),
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
