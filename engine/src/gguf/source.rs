//! Byte-range sources and the streaming loader: one code path for a native file, an HTTP
//! range fetch and an OPFS file in the browser.

use super::{parse, GgufError, Header, TensorInfo};

/// Random-access reads from a GGUF file of known size.
///
/// `read_at` is async because in the browser every read is a JS promise (fetch with a Range
/// header, or an OPFS `File.slice().arrayBuffer()`); natively it completes at once. The
/// futures are deliberately not `Send`: JS futures on wasm32 cannot be.
#[allow(async_fn_in_trait)]
pub trait ByteSource {
    /// Total size of the file in bytes.
    fn size(&self) -> u64;

    /// Fills all of `buf` with the bytes at `offset..offset + buf.len()`.
    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError>;
}

/// A borrowed source reads as the source: a caller can lend one to a loader and read on
/// afterwards (the browser fills its cache copy's gaps after the load).
impl<S: ByteSource + ?Sized> ByteSource for &mut S {
    fn size(&self) -> u64 {
        (**self).size()
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        (**self).read_at(offset, buf).await
    }
}

fn check_range(offset: u64, len: usize, size: u64) -> Result<(), GgufError> {
    let len = len as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(GgufError::ReadOutOfBounds { offset, len, size }),
    }
}

/// A GGUF file already in memory (tests, small models in wasm memory).
pub struct SliceSource<'a> {
    bytes: &'a [u8],
}

impl<'a> SliceSource<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

impl ByteSource for SliceSource<'_> {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        check_range(offset, buf.len(), self.size())?;
        // check_range proved offset + len <= bytes.len(), which is a usize.
        let start = offset as usize;
        buf.copy_from_slice(&self.bytes[start..start + buf.len()]);
        Ok(())
    }
}

/// A native file, read with seek + read_exact (no mmap: the loader's memory bound must hold
/// on every platform, and the browser has no mmap either).
#[cfg(not(target_arch = "wasm32"))]
pub struct FileSource {
    file: std::fs::File,
    size: u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, GgufError> {
        let io = |e: std::io::Error| GgufError::Io {
            offset: 0,
            len: 0,
            message: format!("{}: {e}", path.as_ref().display()),
        };
        let file = std::fs::File::open(path.as_ref()).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok(Self { file, size })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        use std::io::{Read, Seek, SeekFrom};
        check_range(offset, buf.len(), self.size)?;
        let io = |e: std::io::Error| GgufError::Io {
            offset,
            len: buf.len() as u64,
            message: e.to_string(),
        };
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let len = buf.len() as u64;
        self.file.read_exact(buf).map_err(|e| GgufError::Io {
            offset,
            len,
            message: e.to_string(),
        })
    }
}

/// First read when fetching a header: covers a small model's header in one round trip.
pub const INITIAL_HEADER_READ: u64 = 1 << 20;
/// A header larger than this is refused. Qwen2.5's 151,665-token vocab and 151,387 merges
/// make a ~6 MB header; 64 MiB leaves room for 10x larger vocabularies while bounding what
/// a hostile file can make us buffer.
pub const MAX_HEADER_BYTES: u64 = 64 << 20;

/// Reads and parses the header, fetching a growing prefix (1 MiB, then at least doubling)
/// until the parser stops asking for more bytes.
pub async fn read_header<S: ByteSource>(source: &mut S) -> Result<Header, GgufError> {
    let size = source.size();
    let mut prefix: Vec<u8> = Vec::new();
    let mut want = INITIAL_HEADER_READ.min(size);
    loop {
        let have = prefix.len();
        if (have as u64) < want {
            // want <= MAX_HEADER_BYTES, so it fits a usize on every target.
            prefix.resize(want as usize, 0);
            source.read_at(have as u64, &mut prefix[have..]).await?;
        }
        match parse(&prefix, size) {
            Err(GgufError::NeedMoreBytes { needed, .. }) => {
                if needed > MAX_HEADER_BYTES {
                    return Err(GgufError::HeaderTooLarge {
                        needed,
                        limit: MAX_HEADER_BYTES,
                    });
                }
                // NeedMoreBytes implies needed <= size and needed > want: progress is certain.
                want = needed
                    .max(want.saturating_mul(2))
                    .min(size)
                    .min(MAX_HEADER_BYTES);
            }
            other => return other,
        }
    }
}

/// Default chunk for streaming tensor data: large enough to keep HTTP/OPFS overhead small,
/// small enough that loading a 4.7 GB model holds well under 64 MiB of host memory.
pub const DEFAULT_CHUNK_BYTES: usize = 8 << 20;

/// One piece of one tensor's data, handed out in file order.
pub struct TensorChunk<'a> {
    /// Index into `Header::tensors`.
    pub index: usize,
    pub info: &'a TensorInfo,
    /// Offset of `data` within the tensor's bytes.
    pub offset: u64,
    pub data: &'a [u8],
    /// True for the tensor's final chunk.
    pub last: bool,
}

/// Walks all tensors in file order, reading each in chunks of at most `chunk_bytes` through
/// one reused buffer, so host memory stays at one chunk whatever the model size.
///
/// When a tensor row fits in a chunk, chunks hold whole rows (their `offset` is a multiple
/// of the row size), so a consumer can split a large tensor across GPU buffers by rows.
pub struct TensorStream<'h, S> {
    header: &'h Header,
    source: S,
    order: Vec<usize>,
    next: usize,
    offset_in_tensor: u64,
    chunk_bytes: u64,
    buf: Vec<u8>,
}

impl<'h, S: ByteSource> TensorStream<'h, S> {
    pub fn new(header: &'h Header, source: S, chunk_bytes: usize) -> Self {
        Self {
            header,
            source,
            order: header.file_order(),
            next: 0,
            offset_in_tensor: 0,
            // A zero chunk would never make progress.
            chunk_bytes: (chunk_bytes as u64).max(1),
            buf: Vec::new(),
        }
    }

    /// Keeps only the tensors `keep` accepts (the others are never read).
    pub fn filter(mut self, keep: impl Fn(&TensorInfo) -> bool) -> Self {
        let tensors = &self.header.tensors;
        self.order.retain(|&i| keep(&tensors[i]));
        self
    }

    /// The next chunk, or `None` after the last tensor's last chunk.
    pub async fn next_chunk(&mut self) -> Result<Option<TensorChunk<'_>>, GgufError> {
        // Zero-sized tensors yield one empty chunk so every tensor is seen.
        let Some(&index) = self.order.get(self.next) else {
            return Ok(None);
        };
        let info = &self.header.tensors[index];
        let row = info.row_size().max(1);
        let step = if row <= self.chunk_bytes {
            self.chunk_bytes / row * row
        } else {
            self.chunk_bytes
        };
        let offset = self.offset_in_tensor;
        let len = step.min(info.size - offset);
        // len <= chunk_bytes, a usize.
        self.buf.resize(len as usize, 0);
        self.source
            .read_at(info.file_offset + offset, &mut self.buf)
            .await?;
        let last = offset + len >= info.size;
        if last {
            self.next += 1;
            self.offset_in_tensor = 0;
        } else {
            self.offset_in_tensor = offset + len;
        }
        Ok(Some(TensorChunk {
            index,
            info,
            offset,
            data: &self.buf,
            last,
        }))
    }

    pub fn into_source(self) -> S {
        self.source
    }
}
