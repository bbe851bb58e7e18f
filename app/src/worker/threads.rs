//! The engine worker's threads in the browser: the CPU path's pool, and the thread that
//! hashes downloads on either path. `std` cannot start a thread in wasm: this module starts
//! Web Workers on the engine worker's own module and memory (`www/cpu_thread.js` runs the
//! glue, then [`m1_cpu_thread`] with a worker's body) and hands them to the engine's pool as
//! its spawner. Memory is shared only in the threaded build (`worker-mt`,
//! built with atomics) and only on a cross-origin isolated page, which is when the UI
//! starts that build; anywhere else the CPU path runs on this one thread, and says why.

use std::cell::RefCell;

use m1_engine::cpu::kernels::pool::{Pool, MAX_DEFAULT_THREADS};
use wasm_bindgen::prelude::*;
use web_sys::{Worker, WorkerOptions};

use super::js::{self, describe, scope};
use crate::protocol::CpuThreads;

/// The pool threads' script, beside the engine worker's.
const THREAD_SCRIPT: &str = "./cpu_thread.js";

/// How long the threads get to start: each loads the glue and compiles the module (shared
/// by the engine worker: milliseconds), so only a broken page takes this long.
const START_DEADLINE_MS: f64 = 10_000.0;

type Body = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The threads' Worker objects, kept for the page's life.
    static WORKERS: RefCell<Vec<Worker>> = const { RefCell::new(Vec::new()) };
}

/// Starts one thread per core (up to the native cap, and to `limit` where the page sets
/// one) as the engine's global pool, waits for them to run, and reports how many do.
pub async fn start(limit: Option<usize>) -> CpuThreads {
    let isolated = crate::browser::cross_origin_isolated();
    if !cfg!(target_feature = "atomics") {
        return one(if isolated {
            "this build of the engine has no threads"
        } else {
            "the page is not cross-origin isolated (its server sends no COOP and COEP \
             headers), and only then may threads share memory"
        });
    }
    let cores = scope()
        .map(|s| s.navigator().hardware_concurrency() as usize)
        .unwrap_or(1);
    let want = cores.clamp(1, MAX_DEFAULT_THREADS);
    let want = limit.map_or(want, |l| want.min(l.max(1)));
    if want == 1 {
        return one(if limit == Some(1) {
            "the page asked for one (?threads=1)"
        } else {
            "the browser reports one core"
        });
    }
    js::stage(&format!("starting {want} CPU threads"));
    let pool = Pool::with_spawner(want, &spawn);
    js::poll_until(5, START_DEADLINE_MS, || {
        pool.started() + 1 >= pool.threads()
    })
    .await;
    let running = pool.started() + 1;
    start_hashing();
    let note = (running < want).then(|| {
        format!("{running} of {want} threads started (the browser refused or delayed the rest)")
    });
    if Pool::set_global(pool).is_err() {
        // A CPU model was built before the threads: it keeps the one-thread pool.
        return one("the engine's pool was made before its threads started");
    }
    CpuThreads {
        threads: running,
        note,
    }
}

/// Downloads hash their blocks on a thread of their own, off the load's critical path, on
/// either device; without shared memory (or if the thread fails to start) they hash on the
/// engine worker.
pub fn start_hashing() {
    if !cfg!(target_feature = "atomics") {
        return;
    }
    if let Err(e) = spawn(Box::new(super::hash::thread_body())) {
        web_sys::console::warn_1(&format!("no hashing thread: {e}").into());
    }
}

fn one(why: &str) -> CpuThreads {
    CpuThreads {
        threads: 1,
        note: Some(why.to_string()),
    }
}

/// Starts a Web Worker and sends it the module, the shared memory and the body to run.
fn spawn(body: Body) -> Result<(), String> {
    let options = WorkerOptions::new();
    options.set_name("m1 CPU thread");
    let worker = Worker::new_with_options(THREAD_SCRIPT, &options).map_err(|e| describe(&e))?;
    let body = Box::into_raw(Box::new(body));
    let message = js_sys::Array::of3(
        &wasm_bindgen::module(),
        &wasm_bindgen::memory(),
        &JsValue::from(body as usize),
    );
    if let Err(e) = worker.post_message(&message) {
        // SAFETY: the message was not sent, so the box is still ours alone.
        drop(unsafe { Box::from_raw(body) });
        worker.terminate();
        return Err(describe(&e));
    }
    WORKERS.with_borrow_mut(|w| w.push(worker));
    Ok(())
}

/// A pool thread's entry, called by `cpu_thread.js` once the module runs on that thread.
#[wasm_bindgen]
pub fn m1_cpu_thread(body: usize) {
    // SAFETY: `spawn` boxed the body and posted its address to this thread alone, once.
    let body = unsafe { Box::from_raw(body as *mut Body) };
    body();
}
