//! The sha256 of a download, fed its blocks in order as they arrive, so a copy written
//! front to back needs no second pass to verify. Where the worker has threads (the threaded
//! build, on a cross-origin isolated page; GPU or CPU path), the hashing runs on a thread of
//! its own, off the load's critical path: on the worker itself it took 1.4 s of a 5.8 s load
//! of a 491 MB model in Chromium.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use super::js::poll_until;

/// Blocks that may wait for the hashing thread: the download waits for it beyond them
/// rather than hold more of the file in memory (from a local server the network outruns
/// sha256 in wasm, ~200 MB/s).
const QUEUE: usize = 4;

/// How long the download waits for a place in the queue, or a finished download for the
/// thread's digest (it is a block or two behind: milliseconds), before giving up on the
/// thread and reading the copy back instead.
const DEADLINE_MS: f64 = 30_000.0;

/// One download's hashing, handed to the thread: its blocks, where the digest goes, and
/// the count of blocks sent and not yet hashed.
type Job = (Receiver<Vec<u8>>, Sender<[u8; 32]>, Arc<AtomicUsize>);

/// The hashing thread's queue of downloads, once it runs (a download that starts before
/// it does hashes on the worker).
static THREAD: OnceLock<Sender<Job>> = OnceLock::new();

/// The body of the hashing thread (`threads::start` starts it beside the pool's): hashes
/// one download at a time, for the page's life.
pub fn thread_body() -> impl FnOnce() + Send {
    move || {
        let (jobs, queue) = mpsc::channel::<Job>();
        if THREAD.set(jobs).is_err() {
            return;
        }
        while let Ok((blocks, digest, queued)) = queue.recv() {
            let mut hasher = Sha256::new();
            while let Ok(block) = blocks.recv() {
                hasher.update(&block);
                queued.fetch_sub(1, Ordering::Relaxed);
            }
            let _ = digest.send(hasher.finalize().into());
        }
    }
}

enum State {
    Here(Sha256),
    Thread {
        blocks: Sender<Vec<u8>>,
        digest: Receiver<[u8; 32]>,
        queued: Arc<AtomicUsize>,
    },
    /// The hashing thread stopped answering: the copy is read back instead.
    Lost,
}

pub struct StreamHash {
    state: State,
    /// Bytes fed so far, from the file's start.
    len: u64,
}

impl StreamHash {
    pub fn new() -> Self {
        let thread = THREAD.get().and_then(|jobs| {
            let (blocks, from) = mpsc::channel();
            let (to, digest) = mpsc::channel();
            let queued = Arc::new(AtomicUsize::new(0));
            jobs.send((from, to, queued.clone())).ok()?;
            Some(State::Thread {
                blocks,
                digest,
                queued,
            })
        });
        Self {
            state: thread.unwrap_or_else(|| State::Here(Sha256::new())),
            len: 0,
        }
    }

    /// Where the next byte fed must be in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Feeds the next block (a JS array, copied into wasm memory for the hash).
    pub async fn update(&mut self, bytes: &js_sys::Uint8Array) {
        let len = bytes.length();
        self.len += u64::from(len);
        match &mut self.state {
            State::Here(hasher) => {
                // In pieces: the worker's memory holds 1 MiB for this, not the block.
                let mut piece = vec![0u8; (1 << 20).min(len as usize)];
                let mut at = 0u32;
                while at < len {
                    let n = (len - at).min(piece.len() as u32);
                    bytes.subarray(at, at + n).copy_to(&mut piece[..n as usize]);
                    hasher.update(&piece[..n as usize]);
                    at += n;
                }
            }
            State::Thread { blocks, queued, .. } => {
                // The thread counts each block off once hashed.
                if !poll_until(1, DEADLINE_MS, || queued.load(Ordering::Relaxed) < QUEUE).await {
                    self.state = State::Lost;
                    return;
                }
                queued.fetch_add(1, Ordering::Relaxed);
                if blocks.send(bytes.to_vec()).is_err() {
                    self.state = State::Lost;
                }
            }
            State::Lost => {}
        }
    }

    /// The digest of the bytes fed, or `None` when it was lost (read the copy back).
    pub async fn finish(self) -> Option<[u8; 32]> {
        match self.state {
            State::Here(hasher) => Some(hasher.finalize().into()),
            State::Lost => None,
            State::Thread { blocks, digest, .. } => {
                drop(blocks);
                let mut got = None;
                poll_until(2, DEADLINE_MS, || match digest.try_recv() {
                    Ok(d) => {
                        got = Some(d);
                        true
                    }
                    Err(TryRecvError::Disconnected) => true,
                    Err(TryRecvError::Empty) => false,
                })
                .await;
                got
            }
        }
    }
}
