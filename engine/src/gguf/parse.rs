//! The GGUF header parser: a pure function of a byte prefix and the file's total size.
//!
//! Layout (GGUF v2/v3, little-endian; ggml docs/gguf.md):
//!   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//!   n_kv x { string key | u32 value_type | value }
//!   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 ggml_type | u64 offset }
//!   padding to `general.alignment` (default 32) | tensor data
//! where a string is `u64 len | len bytes` and an array is `u32 type | u64 n | n values`.
//!
//! Every length and count comes from the file, so each one is checked against the bytes
//! that exist before anything is allocated from it: a hostile 2^60-element array must cost
//! an error, not an allocation.

use std::collections::BTreeMap;

use super::{Array, GgmlType, GgufError, Metadata, Value};

/// Alignment of the data section when `general.alignment` is absent (gguf.md, `GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// Nested metadata arrays are legal but unused in practice; the cap keeps a hostile file
/// from recursing the parser off the stack.
pub const MAX_ARRAY_NESTING: usize = 4;
/// A tensor name is at most 63 bytes in ggml (`GGML_MAX_NAME` = 64 with the NUL); we allow
/// more, but not unbounded.
pub const MAX_TENSOR_NAME: u64 = 256;
/// Alignment above 1 MiB makes no sense for any loader and would let the data section start
/// far past the header.
const MAX_ALIGNMENT: u64 = 1 << 20;
/// Smallest encodings, used to bound counts by the bytes that remain: a metadata pair is at
/// least a key length (8) + value type (4) + a 1-byte value; a tensor info at least a name
/// length (8) + n_dims (4) + type (4) + offset (8).
const MIN_KV_BYTES: u64 = 13;
const MIN_TENSOR_INFO_BYTES: u64 = 24;

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` (ne0) is the contiguous, fastest-varying dimension. A matrix
    /// of `rows` x `cols` as PyTorch sees it is `[cols, rows]` here.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset relative to the start of the data section, as stored in the file.
    pub offset: u64,
    /// Absolute offset in the file (`data_start + offset`).
    pub file_offset: u64,
    /// Bytes of tensor data, from the type's block layout and the dims.
    pub size: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        // Overflow was ruled out at parse time.
        self.dims.iter().product()
    }

    /// Bytes of one row (ne0 elements): the unit a loader may split a tensor on.
    pub fn row_size(&self) -> u64 {
        let ne0 = self.dims.first().copied().unwrap_or(1);
        ne0 / self.ggml_type.block_size() * self.ggml_type.type_size()
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    pub metadata: Metadata,
    /// In file order of the tensor-info table.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Bytes the header occupies before the alignment padding.
    pub header_len: u64,
    /// Absolute offset of the tensor data section.
    pub data_start: u64,
    pub file_size: u64,
    /// Where each name is in `tensors`. The weight table looks up every tensor by name,
    /// several times per load: a scan made that quadratic (1.1 s for a 975 KB file of 10k
    /// tensors).
    by_name: BTreeMap<String, usize>,
}

impl Header {
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        match self.by_name.get(name).and_then(|&i| self.tensors.get(i)) {
            Some(t) if t.name == name => Some(t),
            // `tensors` is public: if a caller changed it, the index no longer holds.
            _ => self.tensors.iter().find(|t| t.name == name),
        }
    }

    /// Indices into `tensors`, sorted by where their data lies in the file: the order a
    /// sequential (HTTP body) reader sees them in.
    pub fn file_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.tensors.len()).collect();
        order.sort_by_key(|&i| self.tensors[i].file_offset);
        order
    }

    /// Total bytes of tensor data.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.size).sum()
    }
}

/// A bounds-checked reader over the prefix `buf` of a file of `file_size` bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    file_size: u64,
}

impl<'a> Cursor<'a> {
    /// Checks that `n` more bytes exist: in the file (else the file is truncated), then in
    /// the prefix (else the caller must fetch more). `what` is only built on error.
    fn ensure(&self, n: u64, what: impl FnOnce() -> String) -> Result<(), GgufError> {
        let end = (self.pos as u64).checked_add(n);
        match end {
            Some(end) if end <= self.file_size => {
                if end <= self.buf.len() as u64 {
                    Ok(())
                } else {
                    Err(GgufError::NeedMoreBytes {
                        needed: end,
                        available: self.buf.len() as u64,
                    })
                }
            }
            _ => Err(GgufError::TruncatedHeader {
                what: what(),
                needed: end.unwrap_or(u64::MAX),
                available: self.file_size,
            }),
        }
    }

    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        self.ensure(n, what)?;
        // `ensure` proved pos + n <= buf.len(), so both conversions and the slice hold.
        let start = self.pos;
        let end = start + n as usize;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    fn array<const N: usize>(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, what: impl FnOnce() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A string's raw bytes; the length is checked against the file before any copy.
    fn string_bytes(&mut self, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let len = self.u64(what)?;
        self.take(len, what)
    }

    /// Keys and tensor names must be valid UTF-8: they are looked up by exact text.
    fn strict_string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let bytes = self.string_bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { what: what() })
    }

    /// String values are decoded lossily: real files carry the odd invalid token text
    /// (candle's gguf_file.rs notes the same), and one bad token must not sink the model.
    fn lossy_string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let bytes = self.string_bytes(what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// Reads `n` fixed-size little-endian elements after checking that `n * SIZE` bytes exist.
    fn fixed_vec<T, const SIZE: usize>(
        &mut self,
        n: u64,
        what: &dyn Fn() -> String,
        decode: impl Fn([u8; SIZE]) -> T,
    ) -> Result<Vec<T>, GgufError> {
        let total = n
            .checked_mul(SIZE as u64)
            .ok_or_else(|| GgufError::TruncatedHeader {
                what: what(),
                needed: u64::MAX,
                available: self.file_size,
            })?;
        let bytes = self.take(total, what)?;
        Ok(bytes
            .chunks_exact(SIZE)
            .map(|c| {
                let mut a = [0u8; SIZE];
                a.copy_from_slice(c);
                decode(a)
            })
            .collect())
    }

    fn value(
        &mut self,
        value_type: u32,
        what: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<Value, GgufError> {
        Ok(match value_type {
            0 => Value::U8(self.u8(what)?),
            1 => Value::I8(self.u8(what)? as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            7 => Value::Bool(self.bool(what)?),
            8 => Value::String(self.lossy_string(what)?),
            9 => Value::Array(self.array_value(what, depth)?),
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            _ => {
                return Err(GgufError::UnknownValueType {
                    what: what(),
                    value_type,
                })
            }
        })
    }

    fn bool(&mut self, what: &dyn Fn() -> String) -> Result<bool, GgufError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::InvalidBool {
                what: what(),
                value,
            }),
        }
    }

    fn array_value(&mut self, what: &dyn Fn() -> String, depth: usize) -> Result<Array, GgufError> {
        if depth >= MAX_ARRAY_NESTING {
            return Err(GgufError::NestingTooDeep {
                what: what(),
                limit: MAX_ARRAY_NESTING,
            });
        }
        let elem_type = self.u32(what)?;
        let n = self.u64(what)?;
        Ok(match elem_type {
            0 => Array::U8(self.fixed_vec(n, what, |[b]: [u8; 1]| b)?),
            1 => Array::I8(self.fixed_vec(n, what, |[b]: [u8; 1]| b as i8)?),
            2 => Array::U16(self.fixed_vec(n, what, u16::from_le_bytes)?),
            3 => Array::I16(self.fixed_vec(n, what, i16::from_le_bytes)?),
            4 => Array::U32(self.fixed_vec(n, what, u32::from_le_bytes)?),
            5 => Array::I32(self.fixed_vec(n, what, i32::from_le_bytes)?),
            6 => Array::F32(self.fixed_vec(n, what, f32::from_le_bytes)?),
            7 => {
                let raw = self.fixed_vec(n, what, |[b]: [u8; 1]| b)?;
                let mut out = Vec::with_capacity(raw.len());
                for value in raw {
                    match value {
                        0 => out.push(false),
                        1 => out.push(true),
                        value => {
                            return Err(GgufError::InvalidBool {
                                what: what(),
                                value,
                            })
                        }
                    }
                }
                Array::Bool(out)
            }
            8 => {
                // Each string is at least its 8-byte length: bound the count before reserving.
                self.ensure(n.saturating_mul(8), what)?;
                let mut out = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    out.push(self.lossy_string(what)?);
                }
                Array::String(out)
            }
            9 => {
                // Each nested array is at least its 4-byte type + 8-byte count.
                self.ensure(n.saturating_mul(12), what)?;
                let mut out = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    out.push(self.array_value(what, depth + 1)?);
                }
                Array::Array(out)
            }
            10 => Array::U64(self.fixed_vec(n, what, u64::from_le_bytes)?),
            11 => Array::I64(self.fixed_vec(n, what, i64::from_le_bytes)?),
            12 => Array::F64(self.fixed_vec(n, what, f64::from_le_bytes)?),
            value_type => {
                return Err(GgufError::UnknownValueType {
                    what: what(),
                    value_type,
                })
            }
        })
    }
}

/// Parses a GGUF header from `prefix`, the first bytes of a file of `file_size` bytes.
///
/// When the prefix ends before the header does, returns [`GgufError::NeedMoreBytes`] with
/// the minimum prefix length that would let parsing go further; a streaming loader fetches
/// at least that much and calls again. Errors about the file itself (truncation, bad magic,
/// tensors past EOF) are final.
pub fn parse(prefix: &[u8], file_size: u64) -> Result<Header, GgufError> {
    let prefix_len = prefix.len() as u64;
    // A prefix longer than the file is the caller's bug; treat only the file's bytes as real.
    let prefix = if prefix_len > file_size {
        &prefix[..file_size as usize]
    } else {
        prefix
    };
    let mut c = Cursor {
        buf: prefix,
        pos: 0,
        file_size,
    };

    let magic: [u8; 4] = c.array(|| "magic".to_string())?;
    if &magic != b"GGUF" {
        return Err(GgufError::BadMagic(magic));
    }
    let version = c.u32(|| "version".to_string())?;
    // v1 used u32 counts and lengths and has not been written since 2023; a big-endian
    // file shows its version byte-swapped (e.g. 0x03000000) and lands here too.
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let n_tensors = c.u64(|| "tensor count".to_string())?;
    let n_kv = c.u64(|| "metadata count".to_string())?;

    // Counts are bounded by what the rest of the file could hold at the minimum encoding.
    let rest = file_size.saturating_sub(c.pos as u64);
    if n_kv > rest / MIN_KV_BYTES {
        return Err(GgufError::CountTooLarge {
            what: "metadata key/value count".to_string(),
            count: n_kv,
            limit: rest / MIN_KV_BYTES,
        });
    }
    if n_tensors > rest / MIN_TENSOR_INFO_BYTES {
        return Err(GgufError::CountTooLarge {
            what: "tensor count".to_string(),
            count: n_tensors,
            limit: rest / MIN_TENSOR_INFO_BYTES,
        });
    }

    let mut metadata = Metadata::default();
    for i in 0..n_kv {
        let key = c.strict_string(&|| format!("metadata key #{i}"))?;
        let what = || format!("metadata value {key:?}");
        let value_type = c.u32(what)?;
        let value = c.value(value_type, &what, 0)?;
        metadata.insert(key, value)?;
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => {
            let a = v.as_u64().ok_or_else(|| GgufError::WrongValueType {
                key: "general.alignment".to_string(),
                expected: "u32",
                found: v.type_name().to_string(),
            })?;
            if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
                return Err(GgufError::BadAlignment(a));
            }
            a
        }
    };

    // Tensor infos are bounded by the count check above; reserve no more than the prefix
    // could hold so a truncated prefix cannot make us reserve for the whole file.
    let reserve = n_tensors.min((prefix.len() as u64) / MIN_TENSOR_INFO_BYTES);
    let mut raw = Vec::with_capacity(reserve as usize);
    let mut by_name = BTreeMap::new();
    for i in 0..n_tensors {
        let what = &|| format!("tensor info #{i}");
        let name_len = c.u64(what)?;
        if name_len > MAX_TENSOR_NAME {
            return Err(GgufError::CountTooLarge {
                what: format!("tensor info #{i} name length"),
                count: name_len,
                limit: MAX_TENSOR_NAME,
            });
        }
        let name = String::from_utf8(c.take(name_len, what)?.to_vec())
            .map_err(|_| GgufError::InvalidUtf8 { what: what() })?;
        let n_dims = c.u32(what)?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                name,
                n_dims,
                max: MAX_DIMS,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64(what)?);
        }
        let type_id = c.u32(what)?;
        let offset = c.u64(what)?;
        if by_name.insert(name.clone(), raw.len()).is_some() {
            return Err(GgufError::DuplicateTensor(name));
        }
        raw.push((name, dims, type_id, offset));
    }

    let header_len = c.pos as u64;
    let data_start = header_len
        .div_ceil(alignment)
        .checked_mul(alignment)
        .ok_or(GgufError::BadAlignment(alignment))?;

    let mut tensors = Vec::with_capacity(raw.len());
    for (name, dims, type_id, offset) in raw {
        // ggml stores ne as int64: a value above i64::MAX is negative there.
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| {
                if d > i64::MAX as u64 {
                    None
                } else {
                    acc.checked_mul(d)
                }
            })
            .filter(|&n| n <= i64::MAX as u64);
        let Some(n_elements) = n_elements else {
            return Err(GgufError::DimsOverflow { name, dims });
        };
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return Err(GgufError::UnsupportedTensorType {
                name,
                ggml_type: format!("id {type_id}"),
            });
        };
        let ne0 = dims.first().copied().unwrap_or(1);
        if !ne0.is_multiple_of(ggml_type.block_size()) {
            return Err(GgufError::RowNotBlockAligned {
                name,
                ggml_type: ggml_type.name(),
                ne0,
                block_size: ggml_type.block_size(),
            });
        }
        // ne0 is whole blocks, so n_elements is too; only the multiplication can fail.
        let Some(size) = ggml_type.bytes_for(n_elements) else {
            return Err(GgufError::DimsOverflow { name, dims });
        };
        // A row's bytes must fit too (ggml's nb[1] is an int64): with a zero dimension the
        // tensor is empty whatever ne0 is, and a huge ne0 overflowed `row_size`, which the
        // tensor stream computes for every tensor.
        let row_bytes = (ne0 / ggml_type.block_size()).checked_mul(ggml_type.type_size());
        if row_bytes.is_none_or(|b| b > i64::MAX as u64) {
            return Err(GgufError::DimsOverflow { name, dims });
        }
        if !offset.is_multiple_of(alignment) {
            return Err(GgufError::MisalignedTensor {
                name,
                offset,
                alignment,
            });
        }
        let file_offset = data_start.checked_add(offset);
        let end = file_offset.and_then(|o| o.checked_add(size));
        let (Some(file_offset), Some(end)) = (file_offset, end) else {
            return Err(GgufError::TensorOutOfBounds {
                name,
                offset,
                size,
                file_size,
            });
        };
        if end > file_size {
            return Err(GgufError::TensorOutOfBounds {
                name,
                offset: file_offset,
                size,
                file_size,
            });
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            file_offset,
            size,
        });
    }

    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        header_len,
        data_start,
        file_size,
        by_name,
    })
}
