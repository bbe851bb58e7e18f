//! Our own GGUF v2/v3 reader: header, typed metadata, tensor byte ranges, and streaming
//! sources.
//!
//! The parser is a pure function of a byte prefix ([`parse`]), so the same code serves a
//! native file, an HTTP range fetch and an OPFS file: [`read_header`] grows the prefix
//! through any [`ByteSource`] until the header fits, and [`TensorStream`] then walks the
//! tensor data in file order in bounded chunks. [`Layout`] writes the format back out
//! (the converter's streaming writer). Every count, length and offset read from
//! the file is checked against the bytes that exist before it is used.

mod error;
mod parse;
mod source;
mod types;
mod value;
mod write;

pub use error::GgufError;
pub use parse::{parse, Header, TensorInfo, DEFAULT_ALIGNMENT, MAX_ARRAY_NESTING, MAX_DIMS};
#[cfg(not(target_arch = "wasm32"))]
pub use source::FileSource;
pub use source::{
    read_header, ByteSource, SliceSource, TensorChunk, TensorStream, DEFAULT_CHUNK_BYTES,
    INITIAL_HEADER_READ, MAX_HEADER_BYTES,
};
pub use types::{GgmlType, QK_K};
pub use value::{Array, Metadata, Value};
pub use write::{Layout, TensorSpec, TensorWriter, WriteError};
