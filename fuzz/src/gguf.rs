//! The GGUF reader: header, metadata and tensor table ([`parse`]), the incremental parse the
//! browser runs on a growing prefix ([`read_header`]), the tensor stream, and the model
//! description built from the header (`ModelConfig`, the weight table).

use futures::executor::block_on;
use m1_engine::gguf::{
    parse, read_header, ByteSource, GgufError, Header, SliceSource, TensorStream,
    INITIAL_HEADER_READ, MAX_DIMS,
};
use m1_engine::model::{is_m1, ModelConfig, WeightTable};

/// The size the input is also read as the start of: the largest an HTTP server may claim
/// in its `Content-Range`. It stands for every header-only prefix of a real model too (the
/// browser's first read of a multi-GB file): the bounds checks against it are the weakest.
const CLAIMED_SIZE: u64 = u64::MAX;

/// Zeros after the input, for the growing prefix to read into when the header claims more
/// bytes than the input has: enough for [`read_header`] to grow past its first read.
const PADDING: u64 = 3 * INITIAL_HEADER_READ;

/// A file of `size` bytes that starts with `data` and is zeros after it.
struct Padded<'a> {
    data: &'a [u8],
    size: u64,
}

impl ByteSource for Padded<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(GgufError::ReadOutOfBounds {
                offset,
                len: buf.len() as u64,
                size: self.size,
            });
        }
        buf.fill(0);
        let start = (offset as usize).min(self.data.len());
        let from_data = &self.data[start..(start + buf.len()).min(self.data.len())];
        buf[..from_data.len()].copy_from_slice(from_data);
        Ok(())
    }
}

/// Equality of two parse results, where a NaN in the metadata equals itself (the Debug
/// text decides when `==` says no).
fn same(a: &Result<Header, GgufError>, b: &Result<Header, GgufError>) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

pub fn gguf(data: &[u8]) {
    let size = data.len() as u64;
    let direct = parse(data, size);
    if let Err(e @ GgufError::NeedMoreBytes { .. }) = &direct {
        panic!("the whole file was given, yet the parser asks for more: {e}");
    }

    // A prefix cut where the input says: the parser either needs more (and says how much,
    // which is enough to get further) or reaches the whole file's result. Two parses of a
    // prefix per input cover every cut point over the campaign, at a third of the cost of
    // growing a prefix from a few bytes each time.
    let cut = data.len() * (1 + usize::from(data.get(data.len() / 2).copied().unwrap_or(0))) / 257;
    match parse(&data[..cut], size) {
        Err(GgufError::NeedMoreBytes { needed, available }) => {
            assert_eq!(
                available, cut as u64,
                "NeedMoreBytes reports the prefix length"
            );
            assert!(
                needed > available && needed <= size,
                "NeedMoreBytes asks for {needed} bytes with {cut} of {size} given"
            );
            match parse(&data[..needed as usize], size) {
                Err(GgufError::NeedMoreBytes { needed: again, .. }) => assert!(
                    again > needed,
                    "{needed} bytes were asked for, and then {again}"
                ),
                further => assert!(
                    same(&further, &direct),
                    "a {needed}-byte prefix parses to {further:?}, the whole file to {direct:?}"
                ),
            }
        }
        from_prefix => assert!(
            same(&from_prefix, &direct),
            "a {cut}-byte prefix parses to {from_prefix:?}, the whole file to {direct:?}"
        ),
    }
    let via_source = block_on(read_header(&mut SliceSource::new(data)));
    assert!(
        same(&via_source, &direct),
        "read_header disagrees with parse"
    );

    if let Ok(header) = &direct {
        check_header(header);
        check_model(header);
        stream(header, data);
    }

    match parse(data, CLAIMED_SIZE) {
        Ok(header) => {
            check_header(&header);
            check_model(&header);
        }
        Err(GgufError::NeedMoreBytes { needed, available }) => {
            assert!(needed > size && available == size);
            if needed <= size + PADDING {
                let mut source = Padded {
                    data,
                    size: size + PADDING,
                };
                if let Ok(header) = block_on(read_header(&mut source)) {
                    check_header(&header);
                    check_model(&header);
                }
            }
        }
        Err(_) => {}
    }
}

/// What the parser promises about every header it returns.
fn check_header(h: &Header) {
    assert!(h.alignment.is_power_of_two());
    assert!(h.data_start >= h.header_len && h.data_start.is_multiple_of(h.alignment));
    for t in &h.tensors {
        assert!(t.dims.len() <= MAX_DIMS as usize, "{t:?}");
        assert_eq!(Some(t.file_offset), h.data_start.checked_add(t.offset));
        assert!(t.file_offset.is_multiple_of(h.alignment));
        let end = t
            .file_offset
            .checked_add(t.size)
            .expect("tensor end overflows");
        assert!(end <= h.file_size, "{t:?} ends past the file");
        assert_eq!(Some(t.size), t.ggml_type.bytes_for(t.n_elements()), "{t:?}");
        let ne0 = t.dims.first().copied().unwrap_or(1);
        if let Some(rows) = t.n_elements().checked_div(ne0) {
            assert_eq!(t.row_size() * rows, t.size, "{t:?}");
        }
        let _ = m1_engine::gpu::has_kernel(t.ggml_type);
    }
    let _ = h.tensor_bytes();
    let order = h.file_order();
    assert_eq!(order.len(), h.tensors.len());
}

/// The model description every loader builds before reading a weight.
fn check_model(h: &Header) {
    let _ = is_m1(&h.metadata);
    let Ok(config) = ModelConfig::from_header(h) else {
        return;
    };
    let _ = (config.q_dim(), config.kv_dim());
    // The CPU path sizes its KV cache for the whole context unless told less.
    let _ = config.kv_cache_bytes(config.context_length, 4);
    let table = WeightTable::new(&config);
    if table.validate(h).is_ok() {
        for spec in table.all() {
            let info = spec.resolve(h).expect("validated");
            assert_eq!(info.dims, spec.dims);
        }
    }
}

/// Streams every tensor of a whole file and checks the chunks against the bytes.
fn stream(h: &Header, data: &[u8]) {
    // Chunk sizes from 64 B to 16 KiB, below and above the row sizes of small tensors.
    let chunk = 64 * (1 + usize::from(data.last().copied().unwrap_or(0)));
    let mut s = TensorStream::new(h, SliceSource::new(data), chunk);
    let mut seen = 0;
    let mut expect: Option<(usize, u64)> = None;
    let mut last_start = 0;
    loop {
        let next = block_on(s.next_chunk()).expect("a parsed tensor lies inside the file");
        let Some(c) = next else { break };
        let at = c.info.file_offset + c.offset;
        match expect {
            Some((index, offset)) => assert_eq!((c.index, c.offset), (index, offset)),
            None => {
                assert_eq!(c.offset, 0, "a tensor starts at its first byte");
                assert!(
                    c.info.file_offset >= last_start,
                    "tensors come in file order"
                );
                last_start = c.info.file_offset;
            }
        }
        assert!(c.data.len() <= chunk);
        assert_eq!(c.data, &data[at as usize..at as usize + c.data.len()]);
        let row = c.info.row_size();
        if row > 0 && row <= chunk as u64 {
            assert!(c.offset.is_multiple_of(row), "chunks hold whole rows");
        }
        let end = c.offset + c.data.len() as u64;
        if c.last {
            assert_eq!(end, c.info.size);
            seen += 1;
            expect = None;
        } else {
            assert!(end < c.info.size && !c.data.is_empty());
            expect = Some((c.index, end));
        }
    }
    assert_eq!(seen, h.tensors.len(), "every tensor is streamed once");
}
