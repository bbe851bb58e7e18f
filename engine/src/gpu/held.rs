//! What the engine holds on the device: every buffer it makes is a [`GpuBuffer`], counted
//! while any clone of it lives, so a leak across questions shows as growth of
//! [`Gpu::held`](super::Gpu::held) on every target (wgpu's own counters exist natively
//! only). When the last clone drops, the buffer is destroyed: on the web a dropped wgpu
//! buffer is freed only when the garbage collector gets to its small JS object, which may be
//! long after a multi-GB model was let go for another. The recordings that bind a buffer
//! hold a clone of it, so none is destroyed while it can still be replayed.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Buffers the engine holds on a device, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub buffers: u64,
    pub bytes: u64,
}

/// The live counts of one device, shared by its [`Gpu`](super::Gpu) clones and buffers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    buffers: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn held(&self) -> Held {
        Held {
            buffers: self.buffers.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// A buffer the engine made on its device (`Gpu::create_buffer`); derefs to the wgpu buffer.
#[derive(Debug, Clone)]
pub struct GpuBuffer(Arc<Counted>);

#[derive(Debug)]
struct Counted {
    raw: wgpu::Buffer,
    counters: Arc<Counters>,
}

impl GpuBuffer {
    // wgpu's web buffers are neither Send nor Sync (the device lives on one worker), its
    // native ones are both: one Arc serves both targets.
    #[allow(clippy::arc_with_non_send_sync)]
    pub(crate) fn new(raw: wgpu::Buffer, counters: &Arc<Counters>) -> Self {
        counters.buffers.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(raw.size(), Ordering::Relaxed);
        Self(Arc::new(Counted {
            raw,
            counters: counters.clone(),
        }))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // Work already submitted that uses it still completes: WebGPU and wgpu free its memory
        // after that work is done.
        self.raw.destroy();
        self.counters.buffers.fetch_sub(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_sub(self.raw.size(), Ordering::Relaxed);
    }
}

impl Deref for GpuBuffer {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        &self.0.raw
    }
}
