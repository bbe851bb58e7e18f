//! The browser's byte-range sources for the engine's streaming loader: an HTTP URL (Range
//! requests for blocks read ahead of the loader, retried, so a dropped connection resumes
//! where it stopped), and a `Blob` (a picked or dropped file, or a file in the OPFS cache).
//! A download can be mirrored into the cache as it streams, so the model is read from the
//! network exactly once.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use m1_engine::gguf::{ByteSource, GgufError};
use m1_engine::units::fmt_bytes;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{AbortController, AbortSignal, Blob, Headers, Request, RequestInit, Response};

use super::cache::{CacheWriter, WriteFailed};
use super::helper::{bytes, failed, Helper};
use super::js::{await_promise, describe, now_ms, scope, sleep_ms};
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
    /// Progress in tenths of a percent last reported, and when: the UI hears of each 0.1%,
    /// at most every [`PROGRESS_MS`] (a 491 MB model loads in under 5 s: 1000 redraws of the
    /// progress bar were 200 a second), not of every chunk nor only every few seconds.
    last: Rc<Cell<(u64, f64)>>,
}

/// The least time between two progress reports, the end excepted.
const PROGRESS_MS: f64 = 50.0;

impl LoadControl {
    pub fn new(phase: Phase) -> Self {
        Self {
            cancelled: Rc::default(),
            phase,
            last: Rc::new(Cell::new((u64::MAX, f64::NEG_INFINITY))),
        }
    }

    pub fn advance(&self, done: u64, total: u64) {
        let permille = done.saturating_mul(1000).checked_div(total).unwrap_or(1000);
        let (last, at) = self.last.get();
        let now = now_ms();
        if permille != last && (permille == 1000 || now - at >= PROGRESS_MS) {
            self.last.set((permille, now));
            post(&Event::Progress {
                phase: self.phase,
                done,
                total,
            });
        }
    }
}

/// Tries per block: the first, then three more after 0.5 s, 1 s and 2 s.
const RETRIES: u32 = 4;

/// The unit the network is read, retried and cached in. The loader reads a header, hundreds
/// of small tensors and 8 MiB chunks; served from blocks, a model is a few dozen of them,
/// not one per tensor (and the fetch thread reads the blocks that follow one another from
/// one request).
const BLOCK: u64 = 8 << 20;

/// Blocks in flight ahead of the one the loader reads, so the network fills them while
/// the loader places the weights. Qwen2.5-0.5B (491 MB) from a local server in Chromium,
/// a request per block: 4.8-4.9 s with two ahead, 4.6-4.7 s with three (not measured
/// again since the fetch thread reads runs of blocks from one request).
const AHEAD: usize = 3;

/// A block of the file asked of the network before the loader needs it. Its bytes stay a
/// JS array until the loader copies them out: the worker's wasm memory holds the loader's
/// chunk, as without read-ahead, and not the blocks too.
struct Block {
    start: u64,
    end: u64,
    state: BlockState,
}

enum BlockState {
    /// The first try: resolves to the bytes (a `Uint8Array`) or rejects with the reason.
    InFlight {
        promise: js_sys::Promise,
        abort: Abort,
    },
    Ready(js_sys::Uint8Array),
}

impl Block {
    /// Asks for bytes `start..end`; the loader will want the bytes after them up to `until`,
    /// so the fetch thread reads them from one response.
    fn request(url: &str, start: u64, end: u64, until: u64) -> Self {
        let thread = FETCHER.with(|f| {
            f.as_ref().filter(|f| f.works()).map(|f| {
                let fields = [
                    ("url", url.into()),
                    ("start", (start as f64).into()),
                    ("end", (end as f64).into()),
                    ("until", (until as f64).into()),
                ];
                f.call(&fields, &[])
            })
        });
        let (promise, abort) = match thread {
            Some((promise, id)) => (promise, Abort::Thread(id)),
            None => {
                let abort = AbortController::new().ok();
                let signal = abort.as_ref().map(|a| a.signal());
                let url = url.to_string();
                // Spawned now: the request goes out while the loader works on earlier blocks.
                // It answers as the thread does: `{bytes}`, or the reason it failed.
                let promise = future_to_promise(async move {
                    let bytes = read_range(&url, start, end - start, signal.as_ref()).await?;
                    let answer = js_sys::Object::new();
                    js_sys::Reflect::set(&answer, &"bytes".into(), &bytes.buffer())?;
                    Ok(answer.into())
                });
                (promise, Abort::Here(abort))
            }
        };
        Self {
            start,
            end,
            state: BlockState::InFlight { promise, abort },
        }
    }

    /// Lets go of the block once the loader is past it (or jumped elsewhere, failed or was
    /// cancelled): a request still in flight is stopped, its bytes would never be read;
    /// bytes that came go back to the fetch thread, which reads the next block into them.
    fn retire(self) {
        FETCHER.with(|f| match (self.state, f) {
            (
                BlockState::InFlight {
                    promise,
                    abort: Abort::Here(Some(a)),
                },
                _,
            ) => {
                a.abort();
                // Its rejection is the abort: expected, not an unhandled one to report.
                EXPECTED.with(|ignore| {
                    let _ = promise.catch(ignore);
                });
            }
            (
                BlockState::InFlight {
                    abort: Abort::Thread(id),
                    ..
                },
                Some(f),
            ) if f.forget(id) => f.tell(&[("abort", id.into())], &[]),
            (BlockState::Ready(bytes), Some(f)) => {
                let buffer = bytes.buffer();
                f.tell(&[("recycle", buffer.clone().into())], &[buffer.into()]);
            }
            _ => {}
        })
    }
}

/// How a block's request is stopped.
enum Abort {
    /// Fetched on this worker.
    Here(Option<AbortController>),
    /// Fetched by the fetch thread, under this id.
    Thread(u32),
}

thread_local! {
    /// Takes the rejection of a request stopped on purpose.
    static EXPECTED: Closure<dyn FnMut(JsValue)> = Closure::new(|_| {});

    /// The fetch thread (`www/fetch_thread.js`): a worker that fetches the blocks on its own
    /// event loop. A response body is read by the loop of the thread that fetched it, and
    /// this worker's loop is busy placing weights between its awaits: fetched here, the
    /// network waited for it. `None` where the worker cannot start one (then blocks are
    /// fetched here).
    static FETCHER: Option<Helper> = Helper::start("./fetch_thread.js", "m1 fetch thread");
}

pub struct HttpSource {
    url: String,
    size: u64,
    control: LoadControl,
    cache: Option<CacheWriter>,
    /// Blocks in file order: the one the loader reads first, then those in flight.
    ahead: VecDeque<Block>,
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
        let resp = fetch_range(url, 0, 1, None)
            .await
            .map_err(Failure::Network)?;
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
            ahead: VecDeque::new(),
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

    /// Drops every block: a read outside them, a failure, or the end of the load.
    fn drop_blocks(&mut self) {
        for b in self.ahead.drain(..) {
            b.retire();
        }
    }

    /// Asks for blocks from the end of the last one (or `at`) until [`AHEAD`] are in
    /// flight, stopping at the end of the file or at bytes the cache copy already holds.
    fn request_ahead(&mut self, at: u64) {
        let mut next = self.ahead.back().map_or(at, |b| b.end);
        let in_flight = |q: &VecDeque<Block>| {
            q.iter()
                .filter(|b| matches!(b.state, BlockState::InFlight { .. }))
                .count()
        };
        while in_flight(&self.ahead) < AHEAD && next < self.size {
            let limit = match &self.cache {
                Some(c) => match c.run_at(next, self.size) {
                    (false, end) => end,
                    (true, _) => break,
                },
                None => self.size,
            };
            let end = (next + BLOCK).min(limit);
            self.ahead
                .push_back(Block::request(&self.url, next, end, limit));
            next = end;
        }
    }

    /// The first block, once its bytes are here: the request made ahead, then up to
    /// [`RETRIES`] tries in all at the same offset. Its bytes go into the cache copy.
    async fn settle_first(&mut self) -> Result<(), String> {
        let block = self.ahead.front_mut().ok_or("no block was requested")?;
        let (start, end) = (block.start, block.end);
        let mut last = match &block.state {
            BlockState::Ready(_) => return Ok(()),
            BlockState::InFlight { promise, .. } => match JsFuture::from(promise.clone()).await {
                Ok(v) => bytes(&v).and_then(|b| whole(b, end - start)),
                Err(e) => Err(failed(&e)),
            },
        };
        for attempt in 1..RETRIES {
            if last.is_ok() {
                break;
            }
            if self.control.cancelled.get() {
                self.failure = Some(Failure::Cancelled);
                return Err("cancelled".into());
            }
            // 0.5 s, 1 s, 2 s: rides out a flaky connection without hammering it.
            sleep_ms(500 << (attempt - 1)).await;
            last = read_range(&self.url, start, end - start, None).await;
        }
        let bytes = match last {
            Ok(bytes) => bytes,
            Err(e) => {
                let message = format!(
                    "The download stopped: the network failed at {} of {} after {RETRIES} tries ({e}). \
                     Retry resumes from there.",
                    fmt_bytes(start),
                    fmt_bytes(self.size)
                );
                self.failure = Some(Failure::Network(message.clone()));
                return Err(message);
            }
        };
        let stored = match &mut self.cache {
            Some(cache) => cache.write_block(start, &bytes).await,
            None => Ok(()),
        };
        stored.map_err(|e| self.refused(e))?;
        if let Some(block) = self.ahead.front_mut() {
            block.state = BlockState::Ready(bytes);
        }
        Ok(())
    }

    /// Waits for the cache copy's write in flight, if any: a store that filled up stops the
    /// download before another block is asked for.
    async fn written(&mut self) -> Result<(), String> {
        let stored = match &mut self.cache {
            Some(cache) => cache.written().await,
            None => Ok(()),
        };
        stored.map_err(|e| self.refused(e))
    }

    /// The failure to report for a write the cache refused. Chromium's estimate() reports a
    /// fixed quota, so a full store may first show here.
    fn refused(&mut self, e: WriteFailed) -> String {
        let message = format!(
            "This model won't fit in this site's storage: saving it failed at {} of {} ({}). \
             Free disk space or delete cached models, then load it again.",
            fmt_bytes(e.at),
            fmt_bytes(self.size),
            e.reason
        );
        self.failure = Some(Failure::Cache(message.clone()));
        message
    }

    /// Copies what the first block, once here, holds from `at` into the start of `buf`;
    /// the bytes copied (none when it does not hold `at`). The cache copy holds them too,
    /// but reading them back from the file would be a second copy.
    fn copy_from_first_block(&self, at: u64, buf: &mut [u8]) -> u64 {
        let Some(Block {
            start,
            end,
            state: BlockState::Ready(bytes),
        }) = self.ahead.front()
        else {
            return 0;
        };
        if at < *start || at >= *end {
            return 0;
        }
        let n = (end - at).min(buf.len() as u64);
        let from = (at - start) as u32;
        bytes
            .subarray(from, from + n as u32)
            .copy_to(&mut buf[..n as usize]);
        n
    }

    /// Keeps [`AHEAD`] blocks asked for from `pos` (once the cache copy's write in flight
    /// has landed) and waits for the first.
    async fn advance(&mut self, pos: u64) -> Result<(), String> {
        self.written().await?;
        self.request_ahead(pos);
        self.settle_first().await
    }

    /// Fills `piece` (bytes from `at` the cache copy does not hold) from the blocks, asking
    /// for them when the loader reads outside those requested.
    async fn read_network(&mut self, at: u64, piece: &mut [u8]) -> Result<(), String> {
        let end = at + piece.len() as u64;
        let mut pos = at;
        while pos < end {
            while self.ahead.front().is_some_and(|b| b.end <= pos) {
                if let Some(b) = self.ahead.pop_front() {
                    b.retire();
                }
            }
            if self.ahead.front().is_some_and(|b| b.start > pos) {
                self.drop_blocks();
            }
            if let Err(e) = self.advance(pos).await {
                self.drop_blocks();
                return Err(e);
            }
            pos += self.copy_from_first_block(pos, &mut piece[(pos - at) as usize..]);
        }
        Ok(())
    }
}

impl Drop for HttpSource {
    fn drop(&mut self) {
        self.drop_blocks();
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
            let held = self.copy_from_first_block(at, &mut buf[(at - offset) as usize..]);
            if held > 0 {
                at += held;
                continue;
            }
            let (cached, run_end) = match &self.cache {
                Some(c) => c.run_at(at, end),
                None => (false, end),
            };
            let piece = &mut buf[(at - offset) as usize..(run_end - offset) as usize];
            match (&self.cache, cached) {
                (Some(c), true) => c.read_at(at, piece).await.map_err(io)?,
                _ => self.read_network(at, piece).await.map_err(io)?,
            }
            at = run_end;
        }
        self.control.advance(end, self.size);
        Ok(())
    }
}

/// One try at `len` bytes at `offset`: a 206 answer of exactly that length.
async fn read_range(
    url: &str,
    offset: u64,
    len: u64,
    signal: Option<&AbortSignal>,
) -> Result<js_sys::Uint8Array, String> {
    let resp = fetch_range(url, offset, len, signal).await?;
    if resp.status() != 206 {
        return Err(format!("HTTP {} for a Range request", resp.status()));
    }
    let ab = await_promise(resp.array_buffer().map_err(|e| describe(&e))?).await?;
    whole(js_sys::Uint8Array::new(&ab), len)
}

/// `bytes` when they are the `len` asked for: a short answer is an error, never silently
/// missing bytes in a model.
fn whole(bytes: js_sys::Uint8Array, len: u64) -> Result<js_sys::Uint8Array, String> {
    match u64::from(bytes.length()) {
        got if got == len => Ok(bytes),
        got => Err(format!("asked for {len} bytes, got {got}")),
    }
}

async fn fetch_range(
    url: &str,
    offset: u64,
    len: u64,
    signal: Option<&AbortSignal>,
) -> Result<Response, String> {
    let s = scope().ok_or("not in a worker")?;
    let headers = Headers::new().map_err(|e| describe(&e))?;
    let end = offset + len.max(1) - 1;
    headers
        .set("Range", &format!("bytes={offset}-{end}"))
        .map_err(|e| describe(&e))?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_headers_headers(&headers);
    // The model's bytes go to OPFS ourselves; the HTTP cache would keep a second copy.
    init.set_cache(web_sys::RequestCache::NoStore);
    if let Some(signal) = signal {
        init.set_signal(Some(signal));
    }
    let req = Request::new_with_str_and_init(url, &init).map_err(|e| describe(&e))?;
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
        let io = begin_read(&self.control, &mut self.failure, offset, buf.len() as u64)?;
        read_blob(&self.blob, offset, buf)
            .await
            .map_err(|e| io(e.into_message()))
    }
}

/// Why reading a `Blob` (a picked file, a cached copy) failed.
pub enum BlobError {
    /// The browser refused or failed the read.
    Read(String),
    /// Fewer bytes came than asked for: the file is shorter than it was said to be.
    Short(String),
}

impl BlobError {
    pub fn into_message(self) -> String {
        match self {
            Self::Read(m) | Self::Short(m) => m,
        }
    }
}

/// Reads `buf.len()` bytes of `blob` from `offset` into `buf`; fewer is an error, never bytes
/// of a model silently left as they were.
pub async fn read_blob(blob: &Blob, offset: u64, buf: &mut [u8]) -> Result<(), BlobError> {
    let end = offset + buf.len() as u64;
    let slice = blob
        .slice_with_f64_and_f64(offset as f64, end as f64)
        .map_err(|e| BlobError::Read(describe(&e)))?;
    let ab = await_promise(slice.array_buffer())
        .await
        .map_err(BlobError::Read)?;
    let bytes = whole(js_sys::Uint8Array::new(&ab), buf.len() as u64)
        .map_err(|e| BlobError::Short(format!("{e} at byte {offset}")))?;
    bytes.copy_to(buf);
    Ok(())
}
