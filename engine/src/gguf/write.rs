//! A streaming GGUF v3 writer: the layout (header, tensor table, every tensor's offset) is
//! fixed from names, shapes and types alone, so the header goes out first and tensor data
//! follows in table order, one tensor at a time, without ever holding the whole file.
//!
//! The byte format is the one `parse.rs` reads (ggml docs/gguf.md): strings are
//! `u64 len | bytes`, arrays `u32 type | u64 n | values`, every tensor's data starts at a
//! multiple of the alignment from the data section, which itself starts aligned.

use std::io::{self, Write};

use thiserror::Error;

use super::{Array, GgmlType, Value, DEFAULT_ALIGNMENT, MAX_DIMS};

#[derive(Debug, Error)]
pub enum WriteError {
    #[error("tensor {name}: {n} elements are not a whole number of {ggml_type} blocks of {block}")]
    PartialBlock {
        name: String,
        n: u64,
        ggml_type: GgmlType,
        block: u64,
    },
    #[error("tensor {name}: {dims} dimensions (GGUF allows 1 to {MAX_DIMS})")]
    Dims { name: String, dims: usize },
    #[error("tensor {name} is listed twice")]
    DuplicateTensor { name: String },
    #[error("metadata key {key} is given twice")]
    DuplicateKey { key: String },
    #[error("tensor {name}: got {got} bytes of data, its shape and type need {expected}")]
    WrongSize {
        name: String,
        expected: u64,
        got: u64,
    },
    #[error("tensor data written out of order: expected {expected}, got {got}")]
    OutOfOrder { expected: String, got: String },
    #[error("{missing} of {total} tensors were never written")]
    Incomplete { missing: usize, total: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One tensor as the table will describe it. `dims` are in ggml order: `dims[0]` is the
/// row length (a PyTorch `[rows, cols]` matrix is `[cols, rows]` here).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
}

impl TensorSpec {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// The planned file: header bytes and where each tensor's data goes.
#[derive(Debug, Clone)]
pub struct Layout {
    header: Vec<u8>,
    tensors: Vec<TensorSpec>,
    /// Bytes of each tensor's data, in table order.
    sizes: Vec<u64>,
    alignment: u64,
}

impl Layout {
    /// Lays out a file with `metadata` in the given order (llama.cpp's converter writes
    /// `general.architecture` first; readers do not care, people reading dumps do) and
    /// `tensors` in table and data order.
    pub fn new(metadata: &[(String, Value)], tensors: Vec<TensorSpec>) -> Result<Self, WriteError> {
        let alignment = DEFAULT_ALIGNMENT;
        let mut keys = std::collections::HashSet::new();
        for (k, _) in metadata {
            if !keys.insert(k.as_str()) {
                return Err(WriteError::DuplicateKey { key: k.clone() });
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut sizes = Vec::with_capacity(tensors.len());
        for t in &tensors {
            if !names.insert(t.name.as_str()) {
                return Err(WriteError::DuplicateTensor {
                    name: t.name.clone(),
                });
            }
            if t.dims.is_empty() || t.dims.len() > MAX_DIMS as usize {
                return Err(WriteError::Dims {
                    name: t.name.clone(),
                    dims: t.dims.len(),
                });
            }
            // Blocks run along rows: a row that ends mid-block cannot be stored.
            let n = t.n_elements();
            let size = t
                .ggml_type
                .bytes_for(n)
                .filter(|_| t.dims[0].is_multiple_of(t.ggml_type.block_size()))
                .ok_or_else(|| WriteError::PartialBlock {
                    name: t.name.clone(),
                    n: t.dims[0],
                    ggml_type: t.ggml_type,
                    block: t.ggml_type.block_size(),
                })?;
            sizes.push(size);
        }

        let mut h = Vec::new();
        h.extend_from_slice(b"GGUF");
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        h.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (k, v) in metadata {
            put_str(&mut h, k);
            h.extend_from_slice(&value_type(v).to_le_bytes());
            put_value(&mut h, v);
        }
        let mut offset = 0u64;
        for (t, &size) in tensors.iter().zip(&sizes) {
            put_str(&mut h, &t.name);
            h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                h.extend_from_slice(&d.to_le_bytes());
            }
            h.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            h.extend_from_slice(&offset.to_le_bytes());
            offset += size.next_multiple_of(alignment);
        }
        h.resize((h.len() as u64).next_multiple_of(alignment) as usize, 0);
        Ok(Self {
            header: h,
            tensors,
            sizes,
            alignment,
        })
    }

    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Bytes of tensor `i`'s data.
    pub fn tensor_size(&self, i: usize) -> u64 {
        self.sizes[i]
    }

    /// The header's bytes (padded to the data alignment).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    pub fn header_len(&self) -> u64 {
        self.header.len() as u64
    }

    /// The size of the finished file.
    pub fn file_size(&self) -> u64 {
        let data: u64 = self
            .sizes
            .iter()
            .map(|s| s.next_multiple_of(self.alignment))
            .sum();
        self.header_len() + data
    }

    /// Writes the header and returns a writer that accepts each tensor's bytes in order.
    pub fn start<W: Write>(&self, mut out: W) -> Result<TensorWriter<'_, W>, WriteError> {
        out.write_all(&self.header)?;
        Ok(TensorWriter {
            layout: self,
            out,
            next: 0,
            written_in_tensor: 0,
            bytes_written: self.header_len(),
        })
    }
}

/// Accepts tensor data in table order, possibly in several pieces per tensor, and pads
/// each tensor to the alignment. Sizes are checked so a bug cannot shift every later
/// tensor silently.
pub struct TensorWriter<'a, W: Write> {
    layout: &'a Layout,
    out: W,
    next: usize,
    written_in_tensor: u64,
    bytes_written: u64,
}

impl<W: Write> TensorWriter<'_, W> {
    /// Appends `bytes` to tensor `index`, which must be the tensor being written.
    pub fn write(&mut self, index: usize, bytes: &[u8]) -> Result<(), WriteError> {
        let tensors = &self.layout.tensors;
        if index != self.next || index >= tensors.len() {
            return Err(WriteError::OutOfOrder {
                expected: tensors
                    .get(self.next)
                    .map_or("(none: all written)".to_string(), |t| t.name.clone()),
                got: tensors
                    .get(index)
                    .map_or(format!("tensor #{index}"), |t| t.name.clone()),
            });
        }
        let expected = self.layout.sizes[index];
        let got = self.written_in_tensor + bytes.len() as u64;
        if got > expected {
            return Err(WriteError::WrongSize {
                name: tensors[index].name.clone(),
                expected,
                got,
            });
        }
        self.out.write_all(bytes)?;
        self.written_in_tensor = got;
        self.bytes_written += bytes.len() as u64;
        if got == expected {
            let pad = expected.next_multiple_of(self.layout.alignment) - expected;
            // The last tensor is padded too, as gguf-py does: the file size is then a
            // multiple of the alignment, and `file_size` is exact either way.
            self.out.write_all(&[0u8; 64][..pad as usize])?;
            self.bytes_written += pad;
            self.next += 1;
            self.written_in_tensor = 0;
        }
        Ok(())
    }

    /// Bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Checks every tensor was written in full, flushes, and hands back the sink.
    pub fn finish(mut self) -> Result<W, WriteError> {
        let total = self.layout.tensors.len();
        if self.next != total {
            return Err(WriteError::Incomplete {
                missing: total - self.next,
                total,
            });
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// GGUF `gguf_metadata_value_type` of a value.
fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn array_type(a: &Array) -> u32 {
    match a {
        Array::U8(_) => 0,
        Array::I8(_) => 1,
        Array::U16(_) => 2,
        Array::I16(_) => 3,
        Array::U32(_) => 4,
        Array::I32(_) => 5,
        Array::F32(_) => 6,
        Array::Bool(_) => 7,
        Array::String(_) => 8,
        Array::Array(_) => 9,
        Array::U64(_) => 10,
        Array::I64(_) => 11,
        Array::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::Array(a) => put_array(out, a),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&array_type(a).to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    fn each<T>(out: &mut Vec<u8>, v: &[T], f: impl Fn(&T) -> Vec<u8>) {
        for x in v {
            out.extend_from_slice(&f(x));
        }
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
        Array::U16(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
        Array::I16(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
        Array::U32(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
        Array::I32(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
        Array::F32(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
        Array::Bool(v) => each(out, v, |x| vec![u8::from(*x)]),
        Array::String(v) => {
            for s in v {
                put_str(out, s);
            }
        }
        Array::Array(v) => {
            for inner in v {
                put_array(out, inner);
            }
        }
        Array::U64(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
        Array::I64(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
        Array::F64(v) => each(out, v, |x| x.to_le_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::parse;

    #[test]
    fn written_file_parses_back() {
        let md = vec![
            (
                "general.architecture".to_string(),
                Value::String("qwen2".into()),
            ),
            ("a.u32".to_string(), Value::U32(7)),
            ("a.f32".to_string(), Value::F32(1.5)),
            ("a.bool".to_string(), Value::Bool(true)),
            (
                "a.strs".to_string(),
                Value::Array(Array::String(vec!["x y".into(), "".into()])),
            ),
            (
                "a.i32s".to_string(),
                Value::Array(Array::I32(vec![1, -2, 3])),
            ),
        ];
        let tensors = vec![
            TensorSpec {
                name: "w".into(),
                dims: vec![32, 3],
                ggml_type: GgmlType::Q8_0,
            },
            TensorSpec {
                name: "b".into(),
                dims: vec![5],
                ggml_type: GgmlType::F32,
            },
        ];
        let layout = Layout::new(&md, tensors).unwrap();
        let mut w = layout.start(Vec::new()).unwrap();
        let a = [1u8; 34 * 3];
        w.write(0, &a[..50]).unwrap();
        assert!(w.write(1, &[0; 20]).is_err(), "tensor 0 is not complete");
        w.write(0, &a[50..]).unwrap();
        assert!(matches!(
            w.write(1, &[0; 21]),
            Err(WriteError::WrongSize { .. })
        ));
        w.write(1, &[2; 20]).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() as u64, layout.file_size());
        let h = parse(&bytes, bytes.len() as u64).unwrap();
        for (k, v) in &md {
            assert_eq!(h.metadata.get(k), Some(v), "{k}");
        }
        assert_eq!(h.tensors[0].size, 102);
        assert_eq!(h.tensors[1].offset, 128);
        let t = &h.tensors[1];
        assert_eq!(
            &bytes[t.file_offset as usize..(t.file_offset + t.size) as usize],
            &[2; 20]
        );
    }

    #[test]
    fn incomplete_and_partial_blocks_are_refused() {
        let spec = |d: u64| TensorSpec {
            name: "w".into(),
            dims: vec![d, 2],
            ggml_type: GgmlType::Q4K,
        };
        assert!(matches!(
            Layout::new(&[], vec![spec(128)]),
            Err(WriteError::PartialBlock { .. })
        ));
        let layout = Layout::new(&[], vec![spec(256)]).unwrap();
        let w = layout.start(Vec::new()).unwrap();
        assert!(matches!(w.finish(), Err(WriteError::Incomplete { .. })));
    }
}
