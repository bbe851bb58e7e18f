//! The browser's byte-range sources for the engine's streaming loader: an HTTP URL (Range
//! requests, retried, so a dropped connection resumes where it stopped), and a `Blob`
//! (a picked or dropped file, or a file in the OPFS cache). A download can be mirrored into
//! the cache as it streams, so the model is read from the network exactly once.

use std::cell::Cell;
use std::rc::Rc;

use m1_engine::gguf::{ByteSource, GgufError};
use m1_engine::units::fmt_bytes;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, Headers, Request, RequestInit, Response};

use super::cache::CacheWriter;
use super::js::{await_promise, scope, sleep_ms};
use super::post;
use crate::protocol::{Event, Phase};

/// Why a read failed, beyond the engine's error: lets the worker tell the user "network"
/// (retry resumes) from "cancelled" from "quota".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Network(String),
    Cancelled,
    Cache(String),
}

/// Progress and cancellation shared between a source and the worker.
#[derive(Clone)]
pub struct LoadControl {
    pub cancelled: Rc<Cell<bool>>,
    phase: Phase,
    /// Progress in tenths of a percent last reported: the UI hears of each 0.1%, not of
    /// every 8 MiB chunk of a small model nor only every few seconds of a large one.
    last: Rc<Cell<u64>>,
}

impl LoadControl {
    pub fn new(phase: Phase) -> Self {
        Self {
            cancelled: Rc::default(),
            phase,
            last: Rc::new(Cell::new(u64::MAX)),
        }
    }

    pub fn advance(&self, done: u64, total: u64) {
        let permille = done.saturating_mul(1000).checked_div(total).unwrap_or(1000);
        if self.last.get() != permille {
            self.last.set(permille);
            post(&Event::Progress {
                phase: self.phase,
                done,
                total,
            });
        }
    }
}

const RETRIES: u32 = 4;

pub struct HttpSource {
    url: String,
    size: u64,
    control: LoadControl,
    cache: Option<CacheWriter>,
    pub failure: Option<Failure>,
}

impl HttpSource {
    /// Learns the size with a one-byte Range request (`Content-Range: bytes 0-0/SIZE`);
    /// `expected` (from models.json) is the fallback for servers that hide the header.
    pub async fn open(
        url: &str,
        expected: Option<u64>,
        control: LoadControl,
    ) -> Result<Self, Failure> {
        let resp = fetch_range(url, 0, 1).await.map_err(Failure::Network)?;
        let total = resp
            .headers()
            .get("Content-Range")
            .ok()
            .flatten()
            .and_then(|v| {
                v.rsplit('/')
                    .next()
                    .and_then(|t| t.trim().parse::<u64>().ok())
            });
        let size = match (resp.status(), total, expected) {
            (206, Some(t), _) => t,
            (206, None, Some(e)) => e,
            (200, _, _) => {
                return Err(Failure::Network(format!(
                    "{url}: the server ignores HTTP Range requests, which streaming a multi-GB model needs"
                )))
            }
            (404, _, _) => return Err(Failure::Network(format!("{url}: not found (HTTP 404)"))),
            (s, _, _) => return Err(Failure::Network(format!("{url}: HTTP {s}"))),
        };
        Ok(Self {
            url: url.to_string(),
            size,
            control,
            cache: None,
            failure: None,
        })
    }

    pub fn mirror_into(&mut self, cache: CacheWriter) {
        self.cache = Some(cache);
    }

    pub fn take_cache(&mut self) -> Option<CacheWriter> {
        self.cache.take()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    async fn read_once(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        let resp = fetch_range(&self.url, offset, buf.len() as u64).await?;
        if resp.status() != 206 {
            return Err(format!("HTTP {} for a Range request", resp.status()));
        }
        let ab = await_promise(resp.array_buffer().map_err(|e| super::js::describe(&e))?).await?;
        copy_exact(&ab, buf)
    }
}

impl HttpSource {
    /// One network read with retries; the bytes also go into the cache copy.
    async fn fetch_retrying(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..RETRIES {
            if self.control.cancelled.get() {
                self.failure = Some(Failure::Cancelled);
                return Err("cancelled".into());
            }
            match self.read_once(offset, buf).await {
                Ok(()) => {
                    if let Some(cache) = &mut self.cache {
                        if let Err(e) = cache.write_at(offset, buf) {
                            // Chromium's estimate() reports a fixed quota, so a full
                            // store may first show here.
                            let message = format!(
                                "This model won't fit in this site's storage: saving it failed at {} of {} ({e}). \
                                 Free disk space or delete cached models, then load it again.",
                                fmt_bytes(offset),
                                fmt_bytes(self.size)
                            );
                            self.failure = Some(Failure::Cache(message.clone()));
                            return Err(message);
                        }
                    }
                    return Ok(());
                }
                Err(e) => last = e,
            }
            // 0.5 s, 1 s, 2 s: rides out a flaky connection without hammering it.
            if attempt + 1 < RETRIES {
                sleep_ms(500 << attempt).await;
            }
        }
        let message = format!(
            "The download stopped: the network failed at {} of {} after {RETRIES} tries ({last}). \
             Retry resumes from there.",
            fmt_bytes(offset),
            fmt_bytes(self.size)
        );
        self.failure = Some(Failure::Network(message.clone()));
        Err(message)
    }
}

/// Starts a read of `len` bytes at `offset`: the error to report it failed with, or the
/// cancellation (recorded in `failure`) once the user pressed Cancel.
fn begin_read(
    control: &LoadControl,
    failure: &mut Option<Failure>,
    offset: u64,
    len: u64,
) -> Result<impl Fn(String) -> GgufError + Copy, GgufError> {
    let io = move |message: String| GgufError::Io {
        offset,
        len,
        message,
    };
    if control.cancelled.get() {
        *failure = Some(Failure::Cancelled);
        return Err(io("cancelled".into()));
    }
    Ok(io)
}

impl ByteSource for HttpSource {
    fn size(&self) -> u64 {
        self.size
    }

    /// Bytes already in the cache copy (a resumed download) are read from there; only the
    /// rest crosses the network.
    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        let len = buf.len() as u64;
        let io = begin_read(&self.control, &mut self.failure, offset, len)?;
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let (cached, run_end) = match &self.cache {
                Some(c) => c.run_at(at, end),
                None => (false, end),
            };
            let piece = &mut buf[(at - offset) as usize..(run_end - offset) as usize];
            match (&self.cache, cached) {
                (Some(c), true) => c.read_at(at, piece).map_err(io)?,
                _ => self.fetch_retrying(at, piece).await.map_err(io)?,
            }
            at = run_end;
        }
        self.control.advance(end, self.size);
        Ok(())
    }
}

async fn fetch_range(url: &str, offset: u64, len: u64) -> Result<Response, String> {
    let s = scope().ok_or("not in a worker")?;
    let headers = Headers::new().map_err(|e| super::js::describe(&e))?;
    let end = offset + len.max(1) - 1;
    headers
        .set("Range", &format!("bytes={offset}-{end}"))
        .map_err(|e| super::js::describe(&e))?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_headers_headers(&headers);
    // The model's bytes go to OPFS ourselves; the HTTP cache would keep a second copy.
    init.set_cache(web_sys::RequestCache::NoStore);
    let req = Request::new_with_str_and_init(url, &init).map_err(|e| super::js::describe(&e))?;
    let resp = await_promise(s.fetch_with_request(&req)).await?;
    resp.dyn_into::<Response>()
        .map_err(|_| "fetch returned no Response".to_string())
}

/// A `File` or OPFS file, read by slices: never whole into wasm memory. Its `control`
/// cancels; the progress of a read from disk is the engine loader's (weights placed).
pub struct BlobSource {
    blob: Blob,
    size: u64,
    control: LoadControl,
    pub failure: Option<Failure>,
}

impl BlobSource {
    pub fn new(blob: Blob, control: LoadControl) -> Self {
        let size = blob.size() as u64;
        Self {
            blob,
            size,
            control,
            failure: None,
        }
    }
}

impl ByteSource for BlobSource {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        let len = buf.len() as u64;
        let io = begin_read(&self.control, &mut self.failure, offset, len)?;
        let slice = self
            .blob
            .slice_with_f64_and_f64(offset as f64, (offset + len) as f64)
            .map_err(|e| io(super::js::describe(&e)))?;
        let ab = await_promise(slice.array_buffer()).await.map_err(io)?;
        copy_exact(&ab, buf).map_err(io)?;
        Ok(())
    }
}

/// Copies a fetched `ArrayBuffer` into the caller's buffer; a short answer is an error, never
/// silently zero-filled bytes in a model.
fn copy_exact(ab: &JsValue, buf: &mut [u8]) -> Result<(), String> {
    let bytes = js_sys::Uint8Array::new(ab);
    if bytes.length() as usize != buf.len() {
        return Err(format!(
            "asked for {} bytes, got {}",
            buf.len(),
            bytes.length()
        ));
    }
    bytes.copy_to(buf);
    Ok(())
}
