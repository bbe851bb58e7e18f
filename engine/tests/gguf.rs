//! GGUF reader: real files (when present) and hostile, truncated and corrupted bytes.

use futures::executor::block_on;
use m1_engine::gguf::{parse, Array, ByteSource, GgmlType, GgufError, SliceSource, TensorStream};
use std::collections::BTreeMap;

#[cfg(not(target_arch = "wasm32"))]
mod common;

// ---- a tiny GGUF writer for crafted files ----

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn header(&mut self, version: u32, n_tensors: u64, n_kv: u64) -> &mut Self {
        self.0.extend_from_slice(b"GGUF");
        self.u32(version).u64(n_tensors).u64(n_kv)
    }
    fn kv_str(&mut self, k: &str, v: &str) -> &mut Self {
        self.str(k).u32(8).str(v)
    }
    fn kv_u32(&mut self, k: &str, v: u32) -> &mut Self {
        self.str(k).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad_to(&mut self, align: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
    fn bytes(&mut self, n: usize, fill: u8) -> &mut Self {
        self.0.extend(std::iter::repeat_n(fill, n));
        self
    }
}

/// A valid little file: metadata of several types and three tensors (F32, Q8_0, Q4_K).
fn sample_file() -> Vec<u8> {
    let mut w = W::default();
    w.header(3, 3, 5)
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 2);
    // array<string>
    w.str("tokenizer.ggml.tokens")
        .u32(9)
        .u32(8)
        .u64(3)
        .str("a")
        .str("b")
        .str("ab");
    // array<i32>
    w.str("tokenizer.ggml.token_type")
        .u32(9)
        .u32(5)
        .u64(3)
        .u32(1)
        .u32(1)
        .u32(3);
    // f32 + bool
    w.str("llama.rope.freq_base")
        .u32(6)
        .0
        .extend_from_slice(&10000f32.to_le_bytes());
    w.tensor("a.weight", &[4, 2], 0, 0) // 32 bytes
        .tensor("b.weight", &[64, 2], 8, 32) // 4 blocks x 34 = 136 bytes
        .tensor("c.weight", &[256], 12, 192); // 144 bytes
    w.pad_to(32);
    for i in 0..(192 + 144) {
        w.0.push(i as u8);
    }
    w.0
}

#[test]
fn sample_file_parses() {
    let bytes = sample_file();
    let h = parse(&bytes, bytes.len() as u64).expect("valid file");
    assert_eq!(h.version, 3);
    assert_eq!(h.alignment, 32);
    assert_eq!(h.data_start % 32, 0);
    assert_eq!(h.metadata.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(h.metadata.get_u64("llama.block_count").unwrap(), 2);
    assert_eq!(h.metadata.get_f64("llama.rope.freq_base").unwrap(), 10000.0);
    assert_eq!(
        h.metadata.get_str_array("tokenizer.ggml.tokens").unwrap(),
        ["a", "b", "ab"]
    );
    assert_eq!(
        h.metadata.get_array("tokenizer.ggml.token_type").unwrap(),
        &Array::I32(vec![1, 1, 3])
    );
    let sizes: Vec<_> = h
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.ggml_type, t.size))
        .collect();
    assert_eq!(
        sizes,
        [
            ("a.weight", GgmlType::F32, 32),
            ("b.weight", GgmlType::Q8_0, 136),
            ("c.weight", GgmlType::Q4K, 144)
        ]
    );
    assert_eq!(h.tensors[1].row_size(), 68);
    assert_eq!(h.tensors[2].file_offset, h.data_start + 192);
    // Wrong-type access names the key and both types.
    match h.metadata.get_u64("general.architecture") {
        Err(GgufError::WrongValueType { key, found, .. }) => {
            assert_eq!(key, "general.architecture");
            assert_eq!(found, "string");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(h.metadata.get_str("nope"), Err(GgufError::MissingKey(k)) if k == "nope"));
}

#[test]
fn block_sizes_match_ggml() {
    let expected = [
        (GgmlType::F32, 1, 4),
        (GgmlType::F16, 1, 2),
        (GgmlType::BF16, 1, 2),
        (GgmlType::Q4_0, 32, 18),
        (GgmlType::Q4_1, 32, 20),
        (GgmlType::Q5_0, 32, 22),
        (GgmlType::Q5_1, 32, 24),
        (GgmlType::Q8_0, 32, 34),
        (GgmlType::Q2K, 256, 84),
        (GgmlType::Q3K, 256, 110),
        (GgmlType::Q4K, 256, 144),
        (GgmlType::Q5K, 256, 176),
        (GgmlType::Q6K, 256, 210),
        (GgmlType::Q8K, 256, 292),
    ];
    for (t, block, size) in expected {
        assert_eq!((t.block_size(), t.type_size()), (block, size), "{t}");
        assert_eq!(GgmlType::from_id(t.id()), Some(t));
    }
    let gpu: Vec<_> = m1_engine::gpu::kernel_types().map(GgmlType::name).collect();
    assert_eq!(
        gpu,
        ["F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "BF16"]
    );
}

#[test]
fn every_truncation_is_an_error_and_every_short_prefix_asks_for_more() {
    let bytes = sample_file();
    let full = parse(&bytes, bytes.len() as u64).unwrap();
    for k in 0..bytes.len() {
        // The file really ends at k: a final error, never a panic.
        let r = parse(&bytes[..k], k as u64);
        if k < full.header_len as usize {
            assert!(r.is_err(), "truncated at {k} parsed");
        } else {
            // The header is complete; the tensor data is cut, so some tensor is out of bounds.
            assert!(
                matches!(r, Err(GgufError::TensorOutOfBounds { .. })),
                "cut at {k}: {r:?}"
            );
        }
        // Only a prefix is cut: ask for more bytes, exactly enough to make progress.
        match parse(&bytes[..k], bytes.len() as u64) {
            Ok(h) => {
                assert!(k as u64 >= full.header_len);
                assert_eq!(h, full);
            }
            Err(GgufError::NeedMoreBytes { needed, available }) => {
                assert_eq!(available, k as u64);
                assert!(
                    needed > k as u64 && needed <= full.header_len,
                    "k={k} needed={needed}"
                );
            }
            Err(e) => panic!("prefix of {k} bytes: {e}"),
        }
    }
}

#[test]
fn bad_magic_and_versions() {
    let mut bytes = sample_file();
    bytes[0] = b'X';
    assert_eq!(
        parse(&bytes, bytes.len() as u64),
        Err(GgufError::BadMagic(*b"XGUF"))
    );
    for version in [0u32, 1, 4, 0x0300_0000] {
        let mut bytes = sample_file();
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        assert_eq!(
            parse(&bytes, bytes.len() as u64),
            Err(GgufError::UnsupportedVersion(version))
        );
    }
    let mut w = W::default();
    w.header(2, 0, 0);
    assert_eq!(parse(&w.0, w.0.len() as u64).unwrap().version, 2);
}

fn err(bytes: &[u8]) -> GgufError {
    match parse(bytes, bytes.len() as u64) {
        Ok(h) => panic!("hostile file parsed: {h:?}"),
        Err(e) => e,
    }
}

#[test]
fn giant_counts_and_lengths_are_refused_without_allocating() {
    let mut w = W::default();
    w.header(3, u64::MAX, 0);
    assert!(matches!(
        err(&w.0),
        GgufError::CountTooLarge {
            count: u64::MAX,
            ..
        }
    ));

    let mut w = W::default();
    w.header(3, 0, 1 << 40);
    assert!(matches!(err(&w.0), GgufError::CountTooLarge { .. }));

    // A key whose length is 2^62.
    let mut w = W::default();
    w.header(3, 0, 1).u64(1 << 62).bytes(64, b'k');
    match err(&w.0) {
        GgufError::TruncatedHeader {
            needed,
            available,
            what,
        } => {
            assert!(needed > 1 << 62, "{needed}");
            assert_eq!(available, w.0.len() as u64);
            assert!(what.contains("metadata key #0"), "{what}");
        }
        e => panic!("{e}"),
    }

    // A string value of length u64::MAX (offset + len overflows).
    let mut w = W::default();
    w.header(3, 0, 1).str("k").u32(8).u64(u64::MAX).bytes(64, 0);
    assert!(matches!(err(&w.0), GgufError::TruncatedHeader { .. }));

    // Arrays: u32 elements (n * 4 overflows), strings, nested arrays.
    for (elem_type, n) in [
        (4u32, u64::MAX / 2),
        (4, 1 << 40),
        (8, 1 << 40),
        (9, 1 << 40),
        (0, u64::MAX),
    ] {
        let mut w = W::default();
        w.header(3, 0, 1)
            .str("arr")
            .u32(9)
            .u32(elem_type)
            .u64(n)
            .bytes(64, 0);
        assert!(
            matches!(err(&w.0), GgufError::TruncatedHeader { .. }),
            "type {elem_type} n {n}"
        );
    }

    // A tensor name of 2^50 bytes.
    let mut w = W::default();
    w.header(3, 1, 0).u64(1 << 50).bytes(64, 0);
    assert!(matches!(err(&w.0), GgufError::CountTooLarge { .. }));
}

/// Fuzz finding (gguf, fuzz/regressions/gguf/crash-10c835ba...): an empty tensor (one
/// dimension 0) whose first dimension is 0x7000000000000020 passed the element count check
/// (0 elements), and its row size, ne0 x 4 bytes, overflowed when the tensor stream asked
/// for it.
#[test]
fn an_empty_tensor_with_a_huge_row_is_refused() {
    let mut w = W::default();
    w.header(3, 1, 0)
        .tensor("t", &[0x7000_0000_0000_0020, 0], 0, 0)
        .pad_to(32);
    assert_eq!(
        err(&w.0),
        GgufError::DimsOverflow {
            name: "t".into(),
            dims: vec![0x7000_0000_0000_0020, 0]
        }
    );
    // An empty tensor with an ordinary row is fine, and streams as one empty chunk.
    let mut w = W::default();
    w.header(3, 1, 0).tensor("t", &[32, 0], 0, 0).pad_to(32);
    let h = parse(&w.0, w.0.len() as u64).unwrap();
    assert_eq!((h.tensors[0].size, h.tensors[0].row_size()), (0, 128));
    let mut stream = TensorStream::new(&h, SliceSource::new(&w.0), 64);
    let chunk = block_on(stream.next_chunk()).unwrap().unwrap();
    assert!(chunk.last && chunk.data.is_empty());
}

#[test]
fn malformed_values_and_tensors_are_named() {
    let mut w = W::default();
    w.header(3, 0, 1).str("k").u32(13).u32(0);
    assert!(matches!(
        err(&w.0),
        GgufError::UnknownValueType { value_type: 13, .. }
    ));

    let mut w = W::default();
    w.header(3, 0, 1).str("flag").u32(7).0.push(2);
    assert!(matches!(err(&w.0), GgufError::InvalidBool { value: 2, .. }));

    let mut w = W::default();
    w.header(3, 0, 2).kv_u32("a", 1).kv_u32("a", 2);
    assert_eq!(err(&w.0), GgufError::DuplicateKey("a".into()));

    // Arrays of arrays nested past the cap.
    let mut w = W::default();
    w.header(3, 0, 1).str("deep").u32(9);
    for _ in 0..10 {
        w.u32(9).u64(1);
    }
    w.u32(4).u64(0);
    assert!(matches!(err(&w.0), GgufError::NestingTooDeep { .. }));

    let mut w = W::default();
    w.header(3, 0, 1).str("general.alignment").u32(4).u32(3);
    assert_eq!(err(&w.0), GgufError::BadAlignment(3));

    let with_tensor = |dims: &[u64], ty: u32, offset: u64, data: usize| {
        let mut w = W::default();
        w.header(3, 1, 0)
            .tensor("t", dims, ty, offset)
            .pad_to(32)
            .bytes(data, 0);
        w.0
    };
    assert!(matches!(
        err(&with_tensor(&[1, 1, 1, 1, 1], 0, 0, 4)),
        GgufError::TooManyDims { n_dims: 5, .. }
    ));
    assert!(matches!(
        err(&with_tensor(&[1 << 32, 1 << 32], 0, 0, 4)),
        GgufError::DimsOverflow { .. }
    ));
    assert!(matches!(
        err(&with_tensor(&[u64::MAX], 0, 0, 4)),
        GgufError::DimsOverflow { .. }
    ));
    match err(&with_tensor(&[256], 16, 0, 1024)) {
        GgufError::UnsupportedTensorType { name, ggml_type } => {
            assert_eq!(name, "t");
            assert_eq!(ggml_type, "id 16");
        }
        e => panic!("{e}"),
    }
    assert!(matches!(
        err(&with_tensor(&[100], 12, 0, 1024)),
        GgufError::RowNotBlockAligned {
            ne0: 100,
            block_size: 256,
            ..
        }
    ));
    assert!(matches!(
        err(&with_tensor(&[4], 0, 8, 64)),
        GgufError::MisalignedTensor { offset: 8, .. }
    ));
    match err(&with_tensor(&[1024], 0, 0, 100)) {
        GgufError::TensorOutOfBounds { name, size, .. } => {
            assert_eq!(name, "t");
            assert_eq!(size, 4096);
        }
        e => panic!("{e}"),
    }
    assert!(matches!(
        err(&with_tensor(&[4], 0, u64::MAX - 31, 64)),
        GgufError::TensorOutOfBounds { .. }
    ));

    let mut w = W::default();
    w.header(3, 2, 0)
        .tensor("t", &[4], 0, 0)
        .tensor("t", &[4], 0, 32)
        .pad_to(32)
        .bytes(64, 0);
    assert_eq!(err(&w.0), GgufError::DuplicateTensor("t".into()));

    // Parses, but a GPU loader is told the type is not supported.
    let mut w = W::default();
    w.header(3, 1, 0)
        .tensor("q2", &[256], 10, 0)
        .pad_to(32)
        .bytes(84, 0);
    let h = parse(&w.0, w.0.len() as u64).unwrap();
    assert_eq!(h.tensors[0].ggml_type, GgmlType::Q2K);
    assert!(!m1_engine::gpu::has_kernel(h.tensors[0].ggml_type));
}

/// Deterministic xorshift so the fuzz cases are reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_corruption_never_panics() {
    let base = sample_file();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20_000 {
        let mut bytes = base.clone();
        for _ in 0..(1 + rng.next() % 4) {
            let i = (rng.next() % bytes.len() as u64) as usize;
            bytes[i] = match rng.next() % 3 {
                0 => rng.next() as u8,
                1 => 0xFF,
                _ => bytes[i] ^ (1 << (rng.next() % 8)),
            };
        }
        let cut = if rng.next().is_multiple_of(4) {
            (rng.next() % bytes.len() as u64) as usize
        } else {
            bytes.len()
        };
        let r = parse(&bytes[..cut], bytes.len() as u64);
        let key = match &r {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e:?}")
                .split([' ', '(', '{'])
                .next()
                .unwrap_or("")
                .to_string(),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    eprintln!("corruption outcomes: {outcomes:?}");
}

#[test]
fn slice_source_bounds() {
    let bytes = sample_file();
    let mut src = SliceSource::new(&bytes);
    let mut buf = [0u8; 8];
    assert!(block_on(src.read_at(bytes.len() as u64 - 4, &mut buf)).is_err());
    assert!(block_on(src.read_at(u64::MAX, &mut buf)).is_err());
    block_on(src.read_at(0, &mut buf)).unwrap();
    assert_eq!(&buf[..4], b"GGUF");
}

#[test]
fn tensor_stream_reassembles_every_tensor_in_file_order() {
    let bytes = sample_file();
    let header = parse(&bytes, bytes.len() as u64).unwrap();
    for chunk_bytes in [1, 7, 34, 68, 100, 1 << 20] {
        let mut stream = TensorStream::new(&header, SliceSource::new(&bytes), chunk_bytes);
        let mut got: Vec<(String, Vec<u8>)> = Vec::new();
        while let Some(c) = block_on(stream.next_chunk()).unwrap() {
            if c.offset == 0 {
                got.push((c.info.name.clone(), Vec::new()));
            }
            let (name, data) = got.last_mut().unwrap();
            assert_eq!(name, &c.info.name);
            assert_eq!(c.offset as usize, data.len());
            assert!(c.data.len() <= chunk_bytes);
            // Whole rows per chunk whenever a row fits.
            if c.info.row_size() <= chunk_bytes as u64 {
                assert_eq!(
                    c.offset % c.info.row_size(),
                    0,
                    "{} chunk {chunk_bytes}",
                    c.info.name
                );
            }
            data.extend_from_slice(c.data);
            assert_eq!(c.last, data.len() as u64 == c.info.size);
        }
        assert_eq!(got.len(), 3);
        for (name, data) in got {
            let t = header.tensor(&name).unwrap();
            let start = t.file_offset as usize;
            assert_eq!(
                data,
                &bytes[start..start + t.size as usize],
                "{name} chunk {chunk_bytes}"
            );
        }
    }
}

/// The real test models: native only (wasm32 has no filesystem, and no FileSource).
#[cfg(not(target_arch = "wasm32"))]
mod real_files {
    use super::*;
    use m1_engine::gguf::{read_header, FileSource, Header, Value};

    use crate::common::{test_model, QWEN, SMOLLM};

    fn check_real(name: &str, check: impl Fn(&Header)) {
        let Some(path) = test_model(name) else { return };
        let mut src = FileSource::open(&path).unwrap();
        let t = std::time::Instant::now();
        let header = block_on(read_header(&mut src)).unwrap();
        eprintln!(
            "{name}: header {} bytes parsed in {:?}",
            header.header_len,
            t.elapsed()
        );
        assert_eq!(header.file_size, std::fs::metadata(&path).unwrap().len());
        // Tensor data fills the data section up to alignment padding.
        let end = header
            .tensors
            .iter()
            .map(|t| t.file_offset + t.size)
            .max()
            .unwrap();
        assert!(end <= header.file_size && header.file_size - end < header.alignment);
        assert!(header.tensor_bytes() <= header.file_size - header.data_start);
        // An in-memory prefix of the same file parses identically.
        let prefix = std::fs::read(&path).unwrap();
        let prefix = &prefix[..header.header_len as usize];
        assert_eq!(parse(prefix, header.file_size).unwrap(), header);
        // ... and a prefix one byte short asks for that byte.
        assert_eq!(
            parse(&prefix[..prefix.len() - 1], header.file_size)
                .unwrap_err()
                .needed_bytes(),
            Some(header.header_len)
        );
        check(&header);
    }

    fn type_counts(h: &Header) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for t in &h.tensors {
            *m.entry(t.ggml_type.name()).or_default() += 1;
        }
        m
    }

    #[test]
    fn real_qwen2_file() {
        check_real(QWEN, |h| {
            assert_eq!(h.version, 3);
            assert_eq!(h.alignment, 32);
            assert_eq!(h.tensors.len(), 291);
            assert_eq!(
                type_counts(h),
                BTreeMap::from([
                    ("F32", 121),
                    ("Q4_K", 12),
                    ("Q5_0", 133),
                    ("Q6_K", 12),
                    ("Q8_0", 13)
                ])
            );
            let md = &h.metadata;
            assert_eq!(md.get_str("general.architecture").unwrap(), "qwen2");
            assert_eq!(md.get_u64("qwen2.block_count").unwrap(), 24);
            assert_eq!(md.get_u64("qwen2.embedding_length").unwrap(), 896);
            assert_eq!(md.get_u64("qwen2.attention.head_count_kv").unwrap(), 2);
            assert_eq!(md.get_f64("qwen2.rope.freq_base").unwrap(), 1_000_000.0);
            assert_eq!(
                md.get("qwen2.attention.layer_norm_rms_epsilon"),
                Some(&Value::F32(1e-6))
            );
            assert_eq!(md.get_str("tokenizer.ggml.pre").unwrap(), "qwen2");
            assert_eq!(
                md.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
                151_936
            );
            assert_eq!(
                md.get_str_array("tokenizer.ggml.tokens").unwrap()[151_644],
                "<|im_start|>"
            );
            assert_eq!(
                md.get_array("tokenizer.ggml.merges").unwrap().len(),
                151_387
            );
            assert_eq!(md.get_u64("tokenizer.ggml.eos_token_id").unwrap(), 151_645);
            let out = h.tensor("output.weight").unwrap();
            assert_eq!(
                (out.dims.as_slice(), out.ggml_type, out.size),
                (&[896u64, 151_936][..], GgmlType::Q8_0, 144_643_072)
            );
            assert!(h
                .tensors
                .iter()
                .all(|t| m1_engine::gpu::has_kernel(t.ggml_type)));
        });
    }

    #[test]
    fn real_smollm2_file() {
        check_real(SMOLLM, |h| {
            assert_eq!(h.tensors.len(), 272);
            assert_eq!(
                type_counts(h),
                BTreeMap::from([("F32", 61), ("Q4_1", 210), ("Q8_0", 1)])
            );
            let md = &h.metadata;
            assert_eq!(md.get_str("general.architecture").unwrap(), "llama");
            assert_eq!(md.get_u64("llama.block_count").unwrap(), 30);
            assert_eq!(md.get_u64("llama.vocab_size").unwrap(), 49_152);
            assert_eq!(md.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
            assert_eq!(md.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
            assert!(
                h.tensor("output.weight").is_none(),
                "SmolLM2 ties its LM head"
            );
        });
    }

    #[test]
    fn real_file_truncations_are_errors() {
        let Some(path) = test_model(SMOLLM) else {
            return;
        };
        let bytes = std::fs::read(&path).unwrap();
        let full = parse(&bytes, bytes.len() as u64).unwrap();
        let header_len = full.header_len as usize;
        let mut points: Vec<usize> = (0..4096).collect();
        points.extend((4096..header_len + 64).step_by(997));
        points.push(header_len - 1);
        points.push(bytes.len() - 1);
        for k in points {
            let r = parse(&bytes[..k], k as u64);
            assert!(r.is_err(), "file cut at {k} parsed");
        }
    }
}
