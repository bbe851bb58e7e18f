//! Storage buffers: f32 activations, u32 token ids, weights laid out for the kernels (split
//! by rows across buffers when one binding cannot hold them), and async readback.

use std::marker::PhantomData;

use bytemuck::Pod;
use futures::channel::oneshot;

use super::quant::{
    has_kernel, kernel_block, layout, part_bytes, repack, unpack, word_aligned, Layout,
};
use super::{Gpu, GpuBuffer, GpuError};
use crate::gguf::GgmlType;

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

/// A weight part may not exceed 2 GiB: kernels address bytes with u32 and words with i32-safe
/// indices, whatever larger binding a device offers.
pub(crate) const MAX_PART_BYTES: u64 = 1 << 31;

fn storage_buffer(gpu: &Gpu, label: &str, bytes: u64) -> Result<GpuBuffer, GpuError> {
    // Zero-sized bindings are invalid; one word keeps empty tensors bindable.
    let size = bytes.max(4).next_multiple_of(4);
    if size > gpu.max_binding() {
        return Err(GpuError::BindingTooLarge {
            what: label.to_string(),
            bytes: size,
            max_binding: gpu.max_binding(),
        });
    }
    Ok(gpu.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: STORAGE,
        mapped_at_creation: false,
    }))
}

/// A storage buffer of `len` elements of `T` (f32 or u32, WGSL's 4-byte scalars).
#[derive(Debug, Clone)]
pub struct TypedBuffer<T> {
    pub(crate) buffer: GpuBuffer,
    len: usize,
    element: PhantomData<T>,
}

/// Activations ([T, dim] row-major), norm weights, biases, logits.
pub type F32Buffer = TypedBuffer<f32>;
/// Token ids in, the sampled token out.
pub type U32Buffer = TypedBuffer<u32>;

impl<T: Pod> TypedBuffer<T> {
    const SIZE: u64 = std::mem::size_of::<T>() as u64;

    pub fn zeros(gpu: &Gpu, label: &str, len: usize) -> Result<Self, GpuError> {
        Ok(Self {
            buffer: storage_buffer(gpu, label, len as u64 * Self::SIZE)?,
            len,
            element: PhantomData,
        })
    }

    pub fn from_slice(gpu: &Gpu, label: &str, data: &[T]) -> Result<Self, GpuError> {
        let b = Self::zeros(gpu, label, data.len())?;
        b.write(&gpu.queue, 0, data);
        Ok(b)
    }

    /// Queues a write of `data` at element `offset` (applied before the next submit's work).
    pub fn write(&self, queue: &wgpu::Queue, offset: usize, data: &[T]) {
        if !data.is_empty() {
            let at = offset as u64 * Self::SIZE;
            queue.write_buffer(&self.buffer, at, bytemuck::cast_slice(data));
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Reads the whole buffer back (tests, logits inspection); never blocks on the web.
    pub async fn read(&self, gpu: &Gpu) -> Result<Vec<T>, GpuError> {
        read_elements(gpu, &self.buffer, 0, self.len).await
    }
}

impl F32Buffer {
    /// From little-endian f32 bytes as stored in a GGUF file (norm weights, biases).
    pub fn from_le_bytes(gpu: &Gpu, label: &str, bytes: &[u8]) -> Result<Self, GpuError> {
        if !bytes.len().is_multiple_of(4) {
            return Err(GpuError::NotMultiple {
                op: "F32Buffer::from_le_bytes",
                what: "byte length",
                value: bytes.len() as u64,
                multiple: 4,
            });
        }
        let b = Self::zeros(gpu, label, bytes.len() / 4)?;
        if !bytes.is_empty() {
            gpu.queue.write_buffer(&b.buffer, 0, bytes);
        }
        Ok(b)
    }
}

/// Rows `first_row..first_row + rows` of a weight, in one buffer.
#[derive(Debug, Clone)]
pub(crate) struct WeightPart {
    pub buffer: GpuBuffer,
    pub first_row: u32,
    pub rows: u32,
}

/// A 2-D GGUF weight on the GPU: `rows` = ne1 (output features), `cols` = ne0 (input
/// features, contiguous). Its blocks are laid out for the kernels (`quant::layout`: the file's
/// blocks, or each field of the blocks in its own region), from the same bytes. When they
/// exceed one binding it is split by rows into near-equal parts, each holding whole rows and
/// padded only to 16 bytes; ops dispatch once per part with the part's first row as offset.
#[derive(Debug)]
pub struct WeightTensor {
    name: String,
    ty: GgmlType,
    rows: u32,
    cols: u32,
    row_bytes: u64,
    pub(crate) parts: Vec<WeightPart>,
}

impl WeightTensor {
    /// Allocates the parts for a `rows` x `cols` tensor of type `ty`; fill with [`Self::writer`].
    pub fn new(
        gpu: &Gpu,
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
    ) -> Result<Self, GpuError> {
        Self::with_max_part_bytes(gpu, name, ty, rows, cols, gpu.max_binding())
    }

    /// As [`Self::new`] with a smaller cap on each part (tests use it to force splitting).
    pub fn with_max_part_bytes(
        gpu: &Gpu,
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        max_part_bytes: u64,
    ) -> Result<Self, GpuError> {
        let too_big = |what: &'static str, value: usize| GpuError::OutOfRange {
            op: "WeightTensor::new",
            what,
            value: value as u64,
            min: 1,
            max: u64::from(u32::MAX),
        };
        let rows32 = u32::try_from(rows).map_err(|_| too_big("rows", rows))?;
        let cols32 = u32::try_from(cols).map_err(|_| too_big("cols", cols))?;
        if rows32 == 0 {
            return Err(too_big("rows", rows));
        }
        if !has_kernel(ty) {
            return Err(GpuError::UnsupportedType(ty));
        }
        // Rows are whole kernel blocks (16-element groups for the float types).
        let (block_elems, block_bytes) = kernel_block(ty);
        if cols32 == 0 || !cols32.is_multiple_of(block_elems) {
            return Err(GpuError::NotMultiple {
                op: "WeightTensor::new",
                what: "row length (cols)",
                value: cols as u64,
                multiple: u64::from(block_elems),
            });
        }
        let row_bytes = u64::from(cols32 / block_elems) * u64::from(block_bytes);
        let cap = max_part_bytes.min(gpu.max_binding()).min(MAX_PART_BYTES);
        // Room for the up-to-15 padding bytes that end each part.
        let rows_per_part = cap.saturating_sub(15) / row_bytes;
        if rows_per_part == 0 {
            return Err(GpuError::RowTooLarge {
                what: name.to_string(),
                row_bytes,
                max_binding: cap,
            });
        }
        let n_parts = u64::from(rows32).div_ceil(rows_per_part);
        let per = u64::from(rows32).div_ceil(n_parts) as u32;
        let nb = u64::from(cols32 / block_elems);
        let mut parts = Vec::new();
        let mut first_row = 0u32;
        while first_row < rows32 {
            let n = per.min(rows32 - first_row);
            let label = format!("{name}[{first_row}..{}]", first_row + n);
            let buffer = storage_buffer(gpu, &label, part_bytes(ty, u64::from(n) * nb))?;
            parts.push(WeightPart {
                buffer,
                first_row,
                rows: n,
            });
            first_row += n;
        }
        Ok(Self {
            name: name.to_string(),
            ty,
            rows: rows32,
            cols: cols32,
            row_bytes,
            parts,
        })
    }

    /// Allocates and uploads a tensor whose bytes are all in memory.
    pub fn upload(
        gpu: &Gpu,
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self, GpuError> {
        let w = Self::new(gpu, name, ty, rows, cols)?;
        let mut writer = w.writer();
        writer.write(gpu, bytes)?;
        writer.finish()?;
        Ok(w)
    }

    /// A streaming writer: feed the tensor's bytes (the file's layout) in order, in chunks
    /// of any size.
    pub fn writer(&self) -> WeightWriter<'_> {
        WeightWriter {
            tensor: self,
            part: 0,
            accepted: 0,
            flushed: 0,
            carry: Vec::new(),
            total: 0,
            expected: self.byte_len(),
            unflushed: 0,
        }
    }

    /// A writer of rows `first..first + rows` only (one member of a fused weight). The rows
    /// must start and end where the layout's regions hold whole words (or at the end of the
    /// part): the queue writes whole words, and a word shared with a neighbour would
    /// overwrite its bytes.
    pub fn writer_at(&self, first: u32, rows: u32) -> Result<WeightWriter<'_>, GpuError> {
        let end = u64::from(first) + u64::from(rows);
        if end > u64::from(self.rows) {
            return Err(GpuError::OutOfRange {
                op: "WeightTensor::writer_at",
                what: "last row",
                value: end,
                min: 0,
                max: u64::from(self.rows),
            });
        }
        let part = self
            .parts
            .iter()
            .position(|p| first < p.first_row + p.rows)
            .unwrap_or(self.parts.len());
        let (start, aligned) = match self.parts.get(part) {
            Some(p) => {
                let nb = self.blocks_per_row();
                let last = u64::from(p.first_row + p.rows);
                let block = |row: u64| (row - u64::from(p.first_row)) * nb;
                let ends_aligned = end >= last || word_aligned(self.ty, block(end));
                (
                    u64::from(first - p.first_row) * self.row_bytes,
                    word_aligned(self.ty, block(u64::from(first))) && ends_aligned,
                )
            }
            None => (0, true),
        };
        if !aligned {
            return Err(GpuError::NotMultiple {
                op: "WeightTensor::writer_at",
                what: "first and last row (whole words of every region)",
                value: u64::from(first),
                multiple: 4,
            });
        }
        Ok(WeightWriter {
            tensor: self,
            part,
            accepted: start,
            flushed: start,
            carry: Vec::new(),
            total: 0,
            expected: u64::from(rows) * self.row_bytes,
            unflushed: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    pub fn rows(&self) -> u32 {
        self.rows
    }

    pub fn cols(&self) -> u32 {
        self.cols
    }

    /// Bytes of one row in the file.
    pub fn row_bytes(&self) -> u64 {
        self.row_bytes
    }

    /// Kernel blocks per row (16-element groups for the float types).
    pub(crate) fn blocks_per_row(&self) -> u64 {
        u64::from(self.cols / kernel_block(self.ty).0)
    }

    /// Bytes in the file.
    pub fn byte_len(&self) -> u64 {
        u64::from(self.rows) * self.row_bytes
    }

    /// Bytes allocated on the GPU (the file bytes plus at most 15 per part).
    pub fn gpu_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.buffer.size()).sum()
    }

    pub fn n_parts(&self) -> usize {
        self.parts.len()
    }

    /// The tensor's bytes read back from the GPU and returned to the file's layout (tests:
    /// what the kernels read is what was written).
    pub async fn read_back(&self, gpu: &Gpu) -> Result<Vec<u8>, GpuError> {
        let nb = self.blocks_per_row();
        let mut out = Vec::with_capacity(self.byte_len() as usize);
        for p in &self.parts {
            let bytes = read_bytes(gpu, &p.buffer, 0, p.buffer.size()).await?;
            out.extend(unpack(self.ty, u64::from(p.rows) * nb, &bytes));
        }
        Ok(out)
    }
}

/// Streams a weight's bytes into its parts. `queue.write_buffer` needs 4-byte multiples:
/// blocks kept in the file's layout stream through with up to 3 bytes carried between chunks;
/// blocks split into fields are repacked a run of whole blocks at a time, each run ending
/// where every region holds whole words (the rest waits in `carry` for the next chunk). Each
/// part's tail is zero-padded. Every [`FLUSH_BYTES`] written it submits an empty batch (and
/// natively polls), so the queue's staging copies are recycled while a multi-GB model streams
/// in.
#[derive(Debug)]
pub struct WeightWriter<'a> {
    tensor: &'a WeightTensor,
    part: usize,
    /// Bytes of the current part received so far (whole blocks, for a repacked layout).
    accepted: u64,
    /// Bytes of the current part already handed to the queue (a multiple of 4).
    flushed: u64,
    carry: Vec<u8>,
    total: u64,
    /// Bytes this writer takes (the whole tensor, or its rows).
    expected: u64,
    unflushed: u64,
}

/// Bytes queued between staging flushes (see [`WeightWriter`]).
pub const FLUSH_BYTES: u64 = 64 << 20;

impl WeightWriter<'_> {
    pub fn write(&mut self, gpu: &Gpu, data: &[u8]) -> Result<(), GpuError> {
        let queue = &gpu.queue;
        self.unflushed += data.len() as u64;
        if self.unflushed >= FLUSH_BYTES {
            self.unflushed = 0;
            queue.submit(std::iter::empty());
            #[cfg(not(target_arch = "wasm32"))]
            gpu.device
                .poll(wgpu::PollType::Poll)
                .map_err(|e| GpuError::Validation {
                    what: "staging flush".to_string(),
                    message: e.to_string(),
                })?;
        }
        match layout(self.tensor.ty) {
            Layout::Blocks => self.write_bytes(queue, data),
            Layout::Fields(_) => self.write_blocks(queue, data),
        }
    }

    /// The file's layout: bytes go where they are, words completed across chunks.
    fn write_bytes(&mut self, queue: &wgpu::Queue, mut data: &[u8]) -> Result<(), GpuError> {
        while !data.is_empty() {
            let t = self.tensor;
            let part = match t.parts.get(self.part) {
                Some(part) if self.total < self.expected => part,
                _ => return Err(self.too_many(data.len())),
            };
            let part_len = u64::from(part.rows) * t.row_bytes;
            let take = (part_len - self.accepted)
                .min(self.expected - self.total)
                .min(data.len() as u64) as usize;
            let (mut head, rest) = data.split_at(take);
            self.accepted += take as u64;
            self.total += take as u64;
            if !self.carry.is_empty() {
                let fill = (4 - self.carry.len()).min(head.len());
                self.carry.extend_from_slice(&head[..fill]);
                head = &head[fill..];
                if self.carry.len() == 4 {
                    queue.write_buffer(&part.buffer, self.flushed, &self.carry);
                    self.flushed += 4;
                    self.carry.clear();
                }
            }
            let aligned = head.len() / 4 * 4;
            if aligned > 0 {
                queue.write_buffer(&part.buffer, self.flushed, &head[..aligned]);
                self.flushed += aligned as u64;
            }
            self.carry.extend_from_slice(&head[aligned..]);
            if self.accepted == part_len || self.total == self.expected {
                if !self.carry.is_empty() {
                    self.carry.resize(4, 0);
                    queue.write_buffer(&part.buffer, self.flushed, &self.carry);
                    self.carry.clear();
                }
                self.part += 1;
                self.accepted = 0;
                self.flushed = 0;
            }
            data = rest;
        }
        Ok(())
    }

    /// A repacked layout: runs of whole blocks, each region's bytes written at its offset.
    fn write_blocks(&mut self, queue: &wgpu::Queue, data: &[u8]) -> Result<(), GpuError> {
        if self.total + data.len() as u64 > self.expected {
            return Err(self.too_many(data.len()));
        }
        self.total += data.len() as u64;
        let t = self.tensor;
        let ty = t.ty;
        let block = u64::from(kernel_block(ty).1);
        let nb = t.blocks_per_row();
        let last = self.total == self.expected;
        let mut carried = std::mem::take(&mut self.carry);
        let mut src: &[u8] = if carried.is_empty() {
            data
        } else {
            carried.extend_from_slice(data);
            &carried
        };
        while let Some(part) = t.parts.get(self.part) {
            let pb = u64::from(part.rows) * nb;
            let g0 = self.accepted / block;
            let left = pb - g0;
            let mut n = (src.len() as u64 / block).min(left);
            if n < left && !last {
                // Stop where the next run starts on whole words of every region.
                while n > 0 && !word_aligned(ty, g0 + n) {
                    n -= 1;
                }
            }
            if n == 0 {
                break;
            }
            let bytes = (n * block) as usize;
            for (offset, mut region) in repack(ty, pb, g0, &src[..bytes]) {
                region.resize(region.len().next_multiple_of(4), 0);
                queue.write_buffer(&part.buffer, offset, &region);
            }
            src = &src[bytes..];
            self.accepted += n * block;
            if g0 + n == pb {
                self.part += 1;
                self.accepted = 0;
            }
        }
        self.carry = src.to_vec();
        Ok(())
    }

    fn too_many(&self, more: usize) -> GpuError {
        GpuError::ByteCount {
            what: self.tensor.name.clone(),
            expected: self.expected,
            got: self.total + more as u64,
        }
    }

    /// Checks that exactly the writer's bytes were written.
    pub fn finish(self) -> Result<(), GpuError> {
        if self.total != self.expected || !self.carry.is_empty() {
            return Err(GpuError::ByteCount {
                what: self.tensor.name.clone(),
                expected: self.expected,
                got: self.total,
            });
        }
        Ok(())
    }
}

/// Copies `len` elements from element `offset` of `buffer` and reads them back.
pub async fn read_elements<T: Pod>(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    offset: usize,
    len: usize,
) -> Result<Vec<T>, GpuError> {
    let size = std::mem::size_of::<T>() as u64;
    let bytes = read_bytes(gpu, buffer, offset as u64 * size, len as u64 * size).await?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

async fn read_bytes(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    offset: u64,
    size: u64,
) -> Result<Vec<u8>, GpuError> {
    if size == 0 {
        return Ok(Vec::new());
    }
    let staging = gpu.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("readback"),
        });
    enc.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
    gpu.queue.submit([enc.finish()]);
    map_read(gpu, &staging, size).await
}

/// Maps a MAP_READ buffer and copies its first `size` bytes out. Natively the device is
/// polled to completion; on the web the browser resolves the map and we only await.
async fn map_read(gpu: &Gpu, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
    map_with(gpu, staging, 0..size, None, <[u8]>::to_vec).await
}

/// Maps `range` of a MAP_READ buffer once the work up to submission `until` (natively; all
/// submitted work when `None`) has run, and gives its bytes to `f`.
async fn map_with<R>(
    gpu: &Gpu,
    staging: &wgpu::Buffer,
    range: std::ops::Range<u64>,
    until: Option<wgpu::SubmissionIndex>,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, GpuError> {
    let (tx, rx) = oneshot::channel();
    let slice = staging.slice(range);
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    #[cfg(not(target_arch = "wasm32"))]
    gpu.device
        .poll(wgpu::PollType::Wait {
            submission_index: until,
            timeout: None,
        })
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    #[cfg(target_arch = "wasm32")]
    let _ = until;
    rx.await
        .map_err(|_| GpuError::Readback("the map callback was dropped (device lost?)".to_string()))?
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    let out = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        f(&view)
    };
    staging.unmap();
    gpu.take_error()?;
    Ok(out)
}

/// A submitted step whose chosen id waits in a [`ReadbackRing`] slot.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub(crate) slot: usize,
    pub(crate) index: wgpu::SubmissionIndex,
}

/// The step's GPU time, where the adapter offers timestamp queries: the compute pass writes
/// its start and end into a query set, resolved into the same slot as the id.
#[derive(Debug)]
struct Timestamps {
    set: wgpu::QuerySet,
    resolve: GpuBuffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f32,
}

/// Readback slots for the ids that steps choose, so several steps can be in flight: each
/// step copies its id into the next slot, and a slot is mapped when its id is wanted.
#[derive(Debug)]
pub struct ReadbackRing {
    slots: Vec<GpuBuffer>,
    /// Natively, where each slot's map callback leaves its result: made once, so reading an
    /// id allocates nothing of ours.
    #[cfg(not(target_arch = "wasm32"))]
    mapped: Vec<MapResult>,
    next: usize,
    timestamps: Option<Timestamps>,
}

#[cfg(not(target_arch = "wasm32"))]
type MapResult = std::sync::Arc<std::sync::Mutex<Option<Result<(), wgpu::BufferAsyncError>>>>;

/// Bytes of one slot: the id at 0, the pass's two u64 timestamps at 8.
const SLOT_BYTES: u64 = 24;
/// Resolved timestamps go to 256-byte-aligned offsets (WebGPU's rule).
const RESOLVE_STRIDE: u64 = 256;

impl ReadbackRing {
    /// More than the steps a caller keeps in flight (one being read, two ahead).
    pub const SLOTS: usize = 4;

    pub fn new(gpu: &Gpu) -> Self {
        let slots = (0..Self::SLOTS)
            .map(|i| {
                gpu.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("readback {i}")),
                    size: SLOT_BYTES,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let timestamps = gpu.report.timestamps.then(|| Timestamps {
            set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("step timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * Self::SLOTS as u32,
            }),
            resolve: gpu.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step timestamps"),
                size: RESOLVE_STRIDE * Self::SLOTS as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            period_ns: gpu.queue.get_timestamp_period(),
        });
        Self {
            slots,
            #[cfg(not(target_arch = "wasm32"))]
            mapped: (0..Self::SLOTS).map(|_| MapResult::default()).collect(),
            next: 0,
            timestamps,
        }
    }

    /// The slot the next step uses.
    pub(crate) fn next_slot(&mut self) -> usize {
        let slot = self.next;
        self.next = (self.next + 1) % Self::SLOTS;
        slot
    }

    /// Where the step writing into `slot` records its start and end, if measured.
    pub(crate) fn timestamp_writes(
        &self,
        slot: usize,
    ) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        self.timestamps
            .as_ref()
            .map(|ts| wgpu::ComputePassTimestampWrites {
                query_set: &ts.set,
                beginning_of_pass_write_index: Some(2 * slot as u32),
                end_of_pass_write_index: Some(2 * slot as u32 + 1),
            })
    }

    /// Records the copy of `token[0]` (and the step's timestamps) into `slot`.
    pub(crate) fn copy(&self, enc: &mut wgpu::CommandEncoder, slot: usize, token: &U32Buffer) {
        let dst = &self.slots[slot];
        enc.copy_buffer_to_buffer(&token.buffer, 0, dst, 0, 4);
        if let Some(ts) = &self.timestamps {
            let at = RESOLVE_STRIDE * slot as u64;
            let queries = 2 * slot as u32..2 * slot as u32 + 2;
            enc.resolve_query_set(&ts.set, queries, &ts.resolve, at);
            enc.copy_buffer_to_buffer(&ts.resolve, at, dst, 8, 16);
        }
    }

    /// The id of a ticket's step once it has run, and the step's GPU time in milliseconds
    /// where timestamps are measured.
    pub async fn read(&self, gpu: &Gpu, ticket: Ticket) -> Result<(u32, Option<f64>), GpuError> {
        let period = self.timestamps.as_ref().map(|ts| f64::from(ts.period_ns));
        let len = if period.is_some() { SLOT_BYTES } else { 4 };
        let decode = move |b: &[u8]| {
            let id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let ms = period.map(|ns| {
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&b[i..i + 8]);
                    u64::from_le_bytes(w)
                };
                word(16).saturating_sub(word(8)) as f64 * ns / 1e6
            });
            (id, ms)
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.read_now(gpu, ticket, len, decode)
        }
        #[cfg(target_arch = "wasm32")]
        {
            map_with(
                gpu,
                &self.slots[ticket.slot],
                0..len,
                Some(ticket.index),
                decode,
            )
            .await
        }
    }

    /// Natively: waits for the ticket's submission and maps its slot, with the slot's own
    /// result cell instead of a channel.
    #[cfg(not(target_arch = "wasm32"))]
    fn read_now<R>(
        &self,
        gpu: &Gpu,
        ticket: Ticket,
        len: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, GpuError> {
        let staging = &self.slots[ticket.slot];
        let cell = &self.mapped[ticket.slot];
        let done = cell.clone();
        let slice = staging.slice(0..len);
        slice.map_async(wgpu::MapMode::Read, move |r| {
            if let Ok(mut d) = done.lock() {
                *d = Some(r);
            }
        });
        let wait = |index| {
            gpu.device
                .poll(wgpu::PollType::Wait {
                    submission_index: index,
                    timeout: None,
                })
                .map_err(|e| GpuError::Readback(e.to_string()))
        };
        wait(Some(ticket.index))?;
        let mut result = cell.lock().ok().and_then(|mut d| d.take());
        if result.is_none() {
            // The callback runs once the device has processed the map; wait for all work.
            wait(None)?;
            result = cell.lock().ok().and_then(|mut d| d.take());
        }
        match result {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(GpuError::Readback(e.to_string())),
            None => {
                return Err(GpuError::Readback(
                    "the map callback never ran (device lost?)".to_string(),
                ))
            }
        }
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            f(&view)
        };
        staging.unmap();
        gpu.take_error()?;
        Ok(out)
    }
}

/// A reusable 4-byte staging buffer for the one token id read back per decoded token: encode
/// [`TokenReadback::copy`] into the step's encoder, submit, then await [`TokenReadback::read`].
#[derive(Debug)]
pub struct TokenReadback {
    staging: GpuBuffer,
}

impl TokenReadback {
    pub fn new(gpu: &Gpu) -> Self {
        let staging = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some("token readback"),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self { staging }
    }

    /// Records the copy of `token[0]` into the staging buffer.
    pub fn copy(&self, enc: &mut wgpu::CommandEncoder, token: &U32Buffer) {
        enc.copy_buffer_to_buffer(&token.buffer, 0, &self.staging, 0, 4);
    }

    /// The token id, once the submitted work holding [`Self::copy`] has run.
    pub async fn read(&self, gpu: &Gpu) -> Result<u32, GpuError> {
        let bytes = map_read(gpu, &self.staging, 4).await?;
        let word: [u8; 4] = bytes
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| GpuError::Readback(format!("expected 4 bytes, got {}", bytes.len())))?;
        Ok(u32::from_le_bytes(word))
    }
}
