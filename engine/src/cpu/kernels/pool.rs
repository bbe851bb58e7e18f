//! A small fixed pool of worker threads for the matrix products: `run(n, f)` calls `f(0)`
//! .. `f(n - 1)` once each, on the caller and the workers, and returns when all are done.
//!
//! Which thread runs a task never changes a result: a task writes its own outputs, each
//! computed in a fixed order. Workers poll for the next job for a while (a model's
//! products come every few tens of microseconds while it runs; waking a parked thread costs
//! about as much) and then park.
//!
//! Natively the workers are std threads. A browser has no `std::thread::spawn`: the page
//! starts Web Workers that share the wasm memory and hands the pool a [`Spawn`] that runs a
//! worker's body on one of them ([`Pool::with_spawner`]). Where nothing can be spawned (a
//! wasm build without atomics, a page that is not cross-origin isolated) the pool is the
//! caller alone and `run` calls the tasks in order.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

use crate::clock::now_ms;

/// Most threads a pool starts by default: past this, the products are bound by memory
/// bandwidth on the machines we know, and each thread adds polling.
pub const MAX_DEFAULT_THREADS: usize = 16;

/// How long an idle worker polls before it parks, in ms.
const POLL_MS: f64 = 0.5;

/// The cursor packs the job's generation, task count and next task: a worker can only claim
/// a task of the job it read, never one of the next job with the last one's closure.
const IDX_BITS: u32 = 22;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;
const MAX_TASKS: usize = IDX_MASK as usize;

type Task<'a> = &'a (dyn Fn(usize) + Sync);

/// Runs one worker's body on a new thread: natively a std thread; in a browser a Web Worker
/// that the page starts on the same module and memory.
pub type Spawn<'a> = &'a dyn Fn(Box<dyn FnOnce() + Send>) -> Result<(), String>;

struct Shared {
    /// gen << 2 * IDX_BITS | tasks << IDX_BITS | next.
    cursor: AtomicU64,
    /// The current job's closure (a pointer to the caller's `&dyn Fn`), valid while any of
    /// its tasks is unfinished.
    job: AtomicPtr<Task<'static>>,
    done: AtomicUsize,
    /// Set by a worker about to park; the caller unparks it.
    sleeping: Vec<AtomicBool>,
    /// Each worker's handle, set by the worker itself once it runs (a Web Worker starts
    /// some time after it is spawned; until then the other threads do its share).
    threads: Vec<OnceLock<Thread>>,
    /// Workers that have returned (after `stop`).
    exited: AtomicUsize,
    stop: AtomicBool,
    panicked: AtomicBool,
}

pub struct Pool {
    shared: Arc<Shared>,
    /// Workers spawned (some may not run yet).
    spawned: usize,
    /// One job at a time; holds the generation.
    call: Mutex<u64>,
}

static GLOBAL: OnceLock<Arc<Pool>> = OnceLock::new();

thread_local! {
    /// Set while this thread runs a pool task: a nested `run` runs inline.
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Pool {
    /// A pool of `threads` threads in all, the caller included (at least 1), on std
    /// threads (on wasm32 that is the caller alone: std cannot start a thread there).
    pub fn new(threads: usize) -> Self {
        Self::with_spawner(threads, &|body| {
            std::thread::Builder::new()
                .name("m1-cpu".into())
                .spawn(body)
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    /// A pool of `threads` threads in all, the caller included, whose workers `spawn`
    /// starts. A worker that cannot be spawned leaves a smaller pool, whose results are
    /// the same.
    pub fn with_spawner(threads: usize, spawn: Spawn<'_>) -> Self {
        let workers = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            cursor: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            sleeping: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            threads: (0..workers).map(|_| OnceLock::new()).collect(),
            exited: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        });
        let mut spawned = 0;
        for i in 0..workers {
            let shared = Arc::clone(&shared);
            if spawn(Box::new(move || worker(&shared, i))).is_err() {
                break;
            }
            spawned += 1;
        }
        Self {
            shared,
            spawned,
            call: Mutex::new(0),
        }
    }

    /// The pool every model shares unless its options ask for its own: `M1_THREADS`
    /// threads, or one per logical CPU up to [`MAX_DEFAULT_THREADS`].
    pub fn global() -> Arc<Pool> {
        Arc::clone(GLOBAL.get_or_init(|| Arc::new(Pool::new(default_threads()))))
    }

    /// Makes `pool` the one [`Pool::global`] returns (the browser's, on Web Workers);
    /// gives it back if a global pool exists already.
    pub fn set_global(pool: Pool) -> Result<(), Pool> {
        let mut pool = Some(pool);
        GLOBAL.get_or_init(|| Arc::new(pool.take().expect("taken once")));
        pool.map_or(Ok(()), Err)
    }

    /// Threads in all, the caller included.
    pub fn threads(&self) -> usize {
        self.spawned + 1
    }

    /// Workers running now: a Web Worker counts once it has started.
    pub fn started(&self) -> usize {
        self.shared
            .threads
            .iter()
            .filter(|t| t.get().is_some())
            .count()
    }

    /// Calls `f(i)` for every `i` in `0..tasks`, spread over the pool; returns when all
    /// have returned. Panics if a task panicked.
    pub fn run(&self, tasks: usize, f: Task<'_>) {
        if tasks == 0 {
            return;
        }
        if self.spawned == 0 || tasks == 1 || IN_TASK.with(|t| t.get()) {
            (0..tasks).for_each(f);
            return;
        }
        assert!(tasks <= MAX_TASKS, "{tasks} tasks in one job");
        let mut gen = self.call.lock().unwrap_or_else(|e| e.into_inner());
        *gen = (*gen + 1) & ((1 << (64 - 2 * IDX_BITS)) - 1);
        let s = &*self.shared;
        s.done.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        // The closure reference lives on this frame until every task has finished.
        let job: *const Task<'_> = &f;
        s.job.store(job as *mut Task<'static>, Ordering::Relaxed);
        s.cursor.store(
            *gen << (2 * IDX_BITS) | (tasks as u64) << IDX_BITS,
            Ordering::SeqCst,
        );
        for (flag, thread) in s.sleeping.iter().zip(&s.threads) {
            if flag.swap(false, Ordering::SeqCst) {
                // A worker sets its flag only after its handle.
                if let Some(t) = thread.get() {
                    t.unpark();
                }
            }
        }
        IN_TASK.with(|t| t.set(true));
        let own = work(s, *gen);
        IN_TASK.with(|t| t.set(false));
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) < tasks {
            spins += 1;
            if spins < 1 << 16 {
                std::hint::spin_loop();
            } else {
                // A descheduled worker (a busy machine): stop burning the core it needs.
                std::thread::yield_now();
            }
        }
        if s.panicked.load(Ordering::Relaxed) || own.is_err() {
            panic!("a CPU kernel task panicked");
        }
    }
}

/// Claims and runs tasks of job `gen` until none is left; Err if one panicked.
fn work(s: &Shared, gen: u64) -> Result<(), ()> {
    let mut result = Ok(());
    loop {
        let v = s.cursor.load(Ordering::Acquire);
        let (tasks, next) = ((v >> IDX_BITS) & IDX_MASK, v & IDX_MASK);
        if v >> (2 * IDX_BITS) != gen || next >= tasks {
            return result;
        }
        if s.cursor
            .compare_exchange_weak(v, v + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // SAFETY: a claimed task keeps its job unfinished, so the caller's frame (and the
        // closure the pointer names) is alive until `done` counts this task.
        let f = unsafe { *s.job.load(Ordering::Acquire) };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(next as usize)));
        if ran.is_err() {
            s.panicked.store(true, Ordering::Relaxed);
            result = Err(());
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

fn worker(s: &Shared, index: usize) {
    IN_TASK.with(|t| t.set(true));
    let _ = s.threads[index].set(std::thread::current());
    let mut seen = 0u64;
    loop {
        let start = now_ms();
        let mut polls = 0u32;
        let gen = loop {
            if s.stop.load(Ordering::Relaxed) {
                s.exited.fetch_add(1, Ordering::Release);
                return;
            }
            let gen = s.cursor.load(Ordering::Acquire) >> (2 * IDX_BITS);
            if gen != seen {
                break gen;
            }
            polls += 1;
            if !polls.is_multiple_of(64) || now_ms() - start < POLL_MS {
                std::hint::spin_loop();
                continue;
            }
            s.sleeping[index].store(true, Ordering::SeqCst);
            if s.cursor.load(Ordering::SeqCst) >> (2 * IDX_BITS) == seen
                && !s.stop.load(Ordering::SeqCst)
            {
                std::thread::park();
            }
            s.sleeping[index].store(false, Ordering::SeqCst);
        };
        seen = gen;
        let _ = work(s, gen);
    }
}

impl Drop for Pool {
    /// Stops the workers and waits for those that run (one not started yet returns at
    /// once when it does: it finds `stop` set).
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::SeqCst);
        loop {
            let running = s.threads.iter().filter_map(OnceLock::get);
            let started = running.clone().count();
            running.for_each(Thread::unpark);
            if s.exited.load(Ordering::Acquire) >= started {
                return;
            }
            std::thread::yield_now();
        }
    }
}

/// `M1_THREADS`, or one thread per logical CPU up to [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    std::env::var("M1_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(MAX_DEFAULT_THREADS)
        })
}

/// A mutable slice that tasks write disjoint parts of.
pub(crate) struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: tasks only touch disjoint ranges (each `range` caller promises it).
unsafe impl<T: Send> Sync for SharedMut<T> {}
unsafe impl<T: Send> Send for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub fn new(slice: &mut [T]) -> Self {
        Self {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
        }
    }

    /// SAFETY: no other live reference overlaps `r` (the tasks' ranges are disjoint).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, r: std::ops::Range<usize>) -> &mut [T] {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "range {r:?} of {}",
            self.len
        );
        // SAFETY: in bounds (asserted); exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.end - r.start) }
    }

    /// SAFETY: no other task writes element `i`.
    pub unsafe fn write(&self, i: usize, v: T) {
        assert!(i < self.len, "index {i} of {}", self.len);
        // SAFETY: in bounds (asserted); exclusivity is the caller's promise.
        unsafe { self.ptr.add(i).write(v) }
    }
}
