//! The checkpoint's tensors: the shards named by `model.safetensors.index.json` (or the one
//! `model.safetensors`), each header parsed and bounds-checked, and rows read on demand.
//!
//! Rows are read with positioned reads into a buffer rather than through an mmap: mapped
//! pages that have been read stay counted in the process's resident set until the map goes,
//! so converting a 15 GB checkpoint would show a 15 GB RSS; with reads, what is resident is
//! what the pipeline holds (a few chunks), and the same code serves every platform.
//!
//! Layout (safetensors spec): `u64 n | n bytes of JSON header | data`, the header mapping
//! each name to `{dtype, shape, data_offsets: [begin, end]}` relative to the data start.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use serde_json::Value as Json;

use super::hf::read_json;
use super::QuantizeError;

/// A header larger than this is not a checkpoint header (a 7B model's is ~30 KB).
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// The element types a checkpoint may store weights in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    BF16,
    F16,
    F32,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::BF16 | Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }
}

/// One tensor of one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTensor {
    pub shard: usize,
    pub dtype: Dtype,
    /// PyTorch order: `shape[0]` rows of `shape[1..]` (1-D tensors are one row).
    pub shape: Vec<u64>,
    /// Absolute file offset of the first byte.
    pub offset: u64,
}

impl SourceTensor {
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Elements per row: the product of all but the first dimension (1-D: the whole tensor).
    pub fn row_len(&self) -> u64 {
        if self.shape.len() <= 1 {
            self.n_elements()
        } else {
            self.shape[1..].iter().product()
        }
    }

    pub fn rows(&self) -> u64 {
        if self.shape.len() <= 1 {
            1
        } else {
            self.shape[0]
        }
    }
}

/// All shards of a checkpoint and the tensors in them, by name.
pub struct Checkpoint {
    pub shard_paths: Vec<PathBuf>,
    files: Vec<File>,
    pub tensors: BTreeMap<String, SourceTensor>,
}

fn malformed(path: &Path, why: impl Into<String>) -> QuantizeError {
    QuantizeError::Safetensors {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

impl Checkpoint {
    /// Opens the shards of the model folder `dir`: those listed by
    /// `model.safetensors.index.json` when it exists (each must be present), else
    /// `model.safetensors`.
    pub fn open(dir: &Path) -> Result<Self, QuantizeError> {
        let index = dir.join("model.safetensors.index.json");
        let names: Vec<String> = if index.is_file() {
            let json = read_json(&index)?;
            let map = json
                .get("weight_map")
                .and_then(Json::as_object)
                .ok_or_else(|| malformed(&index, "no weight_map"))?;
            let mut names: Vec<String> = map
                .values()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        malformed(&index, format!("weight_map value {v} is not a file name"))
                    })
                })
                .collect::<Result<_, _>>()?;
            names.sort();
            names.dedup();
            names
        } else if dir.join("model.safetensors").is_file() {
            vec!["model.safetensors".to_string()]
        } else {
            return Err(QuantizeError::NoShards {
                dir: dir.to_path_buf(),
            });
        };
        let mut shard_paths = Vec::new();
        let mut files = Vec::new();
        let mut tensors = BTreeMap::new();
        for (shard, name) in names.iter().enumerate() {
            // Names come from a file: keep them inside the folder.
            if name.contains('/') || name.contains('\\') || name == ".." {
                return Err(malformed(
                    &index,
                    format!("shard name {name:?} is not a plain file name"),
                ));
            }
            let path = dir.join(name);
            let file = File::open(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    QuantizeError::MissingFile { path: path.clone() }
                } else {
                    QuantizeError::Io {
                        path: path.clone(),
                        source: e,
                    }
                }
            })?;
            for (tname, t) in read_header(&path, &file, shard)? {
                if tensors.insert(tname.clone(), t).is_some() {
                    return Err(malformed(
                        &path,
                        format!("tensor {tname} appears in two shards"),
                    ));
                }
            }
            shard_paths.push(path);
            files.push(file);
        }
        Ok(Self {
            shard_paths,
            files,
            tensors,
        })
    }

    /// Rows `rows` of `t` as f32, appended to `out` in the order given (a row permutation
    /// reads rows out of order). Rows that are adjacent in the file are read in one go.
    pub fn read_rows(
        &self,
        t: &SourceTensor,
        rows: &[u64],
        out: &mut Vec<f32>,
    ) -> Result<(), QuantizeError> {
        let row_bytes = t.row_len() as usize * t.dtype.size();
        let mut buf = Vec::new();
        let mut i = 0;
        while i < rows.len() {
            let mut j = i + 1;
            while j < rows.len() && rows[j] == rows[j - 1] + 1 {
                j += 1;
            }
            buf.resize((j - i) * row_bytes, 0);
            let offset = t.offset + rows[i] * row_bytes as u64;
            read_exact_at(&self.files[t.shard], &mut buf, offset).map_err(|e| {
                QuantizeError::Io {
                    path: self.shard_paths[t.shard].clone(),
                    source: e,
                }
            })?;
            decode(t.dtype, &buf, out);
            i = j;
        }
        Ok(())
    }
}

fn decode(dtype: Dtype, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        Dtype::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Reads one shard's header and checks it (see [`parse_shard_header`]).
fn read_header(
    path: &Path,
    file: &File,
    shard: usize,
) -> Result<Vec<(String, SourceTensor)>, QuantizeError> {
    let io = |e| QuantizeError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file_size = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    read_exact_at(file, &mut len, 0)
        .map_err(|_| malformed(path, format!("{file_size} bytes: too short for a header")))?;
    let n = shard_header_len(path, len, file_size)?;
    let mut header = vec![0u8; n as usize];
    read_exact_at(file, &mut header, 8).map_err(io)?;
    parse_shard_header(path, &header, file_size, shard)
}

/// The header length a shard's first 8 bytes state, checked against the file's size and
/// [`MAX_HEADER_BYTES`] before anything is allocated from it.
pub fn shard_header_len(
    path: &Path,
    first8: [u8; 8],
    file_size: u64,
) -> Result<u64, QuantizeError> {
    let n = u64::from_le_bytes(first8);
    if n > MAX_HEADER_BYTES || 8 + n > file_size {
        return Err(malformed(
            path,
            format!("header length {n} does not fit the {file_size}-byte file"),
        ));
    }
    Ok(n)
}

/// Parses one shard's JSON header (the `header.len()` bytes after the length) and checks
/// every tensor's byte range against its shape and the file's size, so a later read can
/// never run past the file. A pure function of the bytes: the fuzz target calls it.
pub fn parse_shard_header(
    path: &Path,
    header: &[u8],
    file_size: u64,
    shard: usize,
) -> Result<Vec<(String, SourceTensor)>, QuantizeError> {
    let n = header.len() as u64;
    if 8 + n > file_size {
        return Err(malformed(
            path,
            format!("header length {n} does not fit the {file_size}-byte file"),
        ));
    }
    let json: Json = serde_json::from_slice(header)
        .map_err(|e| malformed(path, format!("header is not JSON: {e}")))?;
    let map = json
        .as_object()
        .ok_or_else(|| malformed(path, "header is not a JSON object"))?;
    let data_start = 8 + n;
    let data_len = file_size - data_start;
    let mut out = Vec::with_capacity(map.len());
    for (name, info) in map {
        if name == "__metadata__" {
            continue;
        }
        let bad = |why: String| malformed(path, format!("tensor {name}: {why}"));
        let dtype = match info.get("dtype").and_then(Json::as_str) {
            Some("BF16") => Dtype::BF16,
            Some("F16") => Dtype::F16,
            Some("F32") => Dtype::F32,
            other => {
                return Err(QuantizeError::UnsupportedDtype {
                    tensor: name.clone(),
                    dtype: other.unwrap_or("(none)").to_string(),
                })
            }
        };
        let shape: Vec<u64> = info
            .get("shape")
            .and_then(Json::as_array)
            .and_then(|a| a.iter().map(Json::as_u64).collect())
            .ok_or_else(|| bad("shape is not a list of sizes".into()))?;
        let offsets: Vec<u64> = info
            .get("data_offsets")
            .and_then(Json::as_array)
            .and_then(|a| a.iter().map(Json::as_u64).collect())
            .filter(|o: &Vec<u64>| o.len() == 2)
            .ok_or_else(|| bad("data_offsets is not [begin, end]".into()))?;
        let (begin, end) = (offsets[0], offsets[1]);
        let n_bytes = shape
            .iter()
            .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
        if begin > end || end > data_len || end - begin != n_bytes {
            return Err(bad(format!(
                "bytes {begin}..{end} do not hold shape {shape:?} of {dtype:?} ({n_bytes} bytes) \
                 within the {data_len} data bytes"
            )));
        }
        out.push((
            name.clone(),
            SourceTensor {
                shard,
                dtype,
                shape,
                offset: data_start + begin,
            },
        ));
    }
    Ok(out)
}
