//! Quantize-and-write with bounded memory: tensors are cut into row chunks of about
//! [`CHUNK_ELEMENTS`] values; worker threads take chunks in file order, read and quantize
//! them, and the calling thread writes results strictly in order. A worker may run at most
//! `window` chunks ahead of the writer, so at most `window` chunks (source bytes, f32
//! copy, quantized bytes) are in memory at once, whatever the model's size.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use m1_engine::gguf::{GgmlType, Layout, WriteError};
use m1_engine::quantize::encode;

use super::safetensors::Checkpoint;
use super::{PlannedTensor, QuantizeError};

/// Values per chunk: 16 MiB as f32. Large enough that per-chunk overhead is noise, small
/// enough that a 152k x 3584 embedding (545M values) never exists as f32 in full.
pub const CHUNK_ELEMENTS: u64 = 4 << 20;

/// One unit of work: rows `start..end` (in output order) of tensor `tensor`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    tensor: usize,
    start: u64,
    end: u64,
}

fn chunks(tensors: &[PlannedTensor]) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        let rows = t.source.rows();
        // Whole rows per chunk: blocks never span rows.
        let per = (CHUNK_ELEMENTS / t.source.row_len().max(1)).max(1);
        let mut start = 0;
        while start < rows {
            let end = (start + per).min(rows);
            out.push(Chunk {
                tensor: i,
                start,
                end,
            });
            start = end;
        }
    }
    out
}

/// Reads and converts one chunk.
fn convert(ck: &Checkpoint, t: &PlannedTensor, c: Chunk) -> Result<Vec<u8>, QuantizeError> {
    let rows: Vec<u64> = match &t.row_order {
        Some(perm) => perm[c.start as usize..c.end as usize].to_vec(),
        None => (c.start..c.end).collect(),
    };
    let row_len = t.source.row_len() as usize;
    let mut values = Vec::with_capacity(rows.len() * row_len);
    ck.read_rows(&t.source, &rows, &mut values)?;
    encode(t.spec.ggml_type, values, row_len).map_err(|why| QuantizeError::Quantize {
        tensor: t.spec.name.clone(),
        why,
    })
}

/// What the writer reports after each tensor.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub index: usize,
    pub count: usize,
    pub name: &'a str,
    pub ggml_type: GgmlType,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Writes `layout`'s header and every tensor of `tensors` (in layout order) to `out`, with
/// `threads` workers and at most `window` chunks in flight.
pub fn run<W: Write>(
    ck: &Checkpoint,
    layout: &Layout,
    tensors: &[PlannedTensor],
    out: W,
    threads: usize,
    window: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<W, QuantizeError> {
    let work = chunks(tensors);
    let threads = threads.clamp(1, work.len().max(1));
    let window = window.max(threads);
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    // How many chunks the writer has consumed: a worker may start chunk i only when
    // i < written + window.
    let written = Mutex::new(0usize);
    let advanced = Condvar::new();
    let mut writer = layout.start(out).map_err(QuantizeError::from_write)?;

    std::thread::scope(|s| -> Result<(), QuantizeError> {
        let (tx, rx) = mpsc::channel::<(usize, Result<Vec<u8>, QuantizeError>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (work, next, abort, written, advanced) =
                (&work, &next, &abort, &written, &advanced);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= work.len() {
                    return;
                }
                {
                    let mut w = written.lock().unwrap_or_else(|p| p.into_inner());
                    while i >= *w + window && !abort.load(Ordering::SeqCst) {
                        w = advanced.wait(w).unwrap_or_else(|p| p.into_inner());
                    }
                }
                if abort.load(Ordering::SeqCst) {
                    return;
                }
                let c = work[i];
                let r = convert(ck, &tensors[c.tensor], c);
                if tx.send((i, r)).is_err() {
                    return;
                }
            });
        }
        drop(tx);

        let result = (|| {
            let mut pending: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
            let mut done = 0usize;
            let total = layout.file_size();
            while done < work.len() {
                let (i, r) = rx.recv().map_err(|_| QuantizeError::Quantize {
                    tensor: tensors[work[done].tensor].spec.name.clone(),
                    why: "a worker thread stopped without a result".into(),
                })?;
                pending.insert(i, r?);
                while let Some(bytes) = pending.remove(&done) {
                    let c = work[done];
                    writer
                        .write(c.tensor, &bytes)
                        .map_err(QuantizeError::from_write)?;
                    done += 1;
                    *written.lock().unwrap_or_else(|p| p.into_inner()) = done;
                    advanced.notify_all();
                    if c.end == tensors[c.tensor].source.rows() {
                        let t = &tensors[c.tensor];
                        progress(Progress {
                            index: c.tensor,
                            count: tensors.len(),
                            name: &t.spec.name,
                            ggml_type: t.spec.ggml_type,
                            bytes_done: writer.bytes_written(),
                            bytes_total: total,
                        });
                    }
                }
            }
            Ok(())
        })();
        if result.is_err() {
            // Wake waiting workers so the scope can join them.
            abort.store(true, Ordering::SeqCst);
            let _guard = written.lock().unwrap_or_else(|p| p.into_inner());
            advanced.notify_all();
        }
        result
    })?;
    writer.finish().map_err(QuantizeError::from_write)
}

impl QuantizeError {
    fn from_write(e: WriteError) -> Self {
        match e {
            WriteError::Io(source) => QuantizeError::Output { source },
            other => QuantizeError::Layout(other),
        }
    }
}
