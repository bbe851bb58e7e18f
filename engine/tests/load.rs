//! The one loader (`backend::load`): the progress it reports, the device the caller chose,
//! and the kind of each failure (what the CLI's exit codes and remedies and the page's
//! messages are picked by).

// Reads model files from disk: native only.
#![cfg(not(target_arch = "wasm32"))]

use futures::executor::block_on;
use m1_engine::backend::{self, Backend, Device, LoadError, LoadErrorKind, LoadOptions, Loaded};
use m1_engine::gguf::{read_header, ByteSource, FileSource, GgmlType, GgufError, SliceSource};

mod common;
use common::{gpu_or_skip, retyped_smollm2, test_model, SMOLLM};

fn load(bytes: &[u8], device: Device, options: LoadOptions) -> Result<Loaded, LoadError> {
    let mut src = SliceSource::new(bytes);
    let header = block_on(read_header(&mut src))?;
    block_on(backend::load(&header, src, device, options, |_, _| {}))
}

#[test]
fn loads_on_the_cpu_reporting_the_weights_placed() {
    let Some(path) = test_model(SMOLLM) else {
        return;
    };
    let mut src = FileSource::open(&path).unwrap();
    let header = block_on(read_header(&mut src)).unwrap();
    let mut seen = Vec::new();
    let options = LoadOptions {
        context: Some(256),
        ..LoadOptions::default()
    };
    let loaded: Loaded = block_on(backend::load(
        &header,
        src,
        Device::Cpu,
        options,
        |done, total| seen.push((done, total)),
    ))
    .unwrap();
    let total = header.tensor_bytes();
    // 8 MiB reads of 98 MB: a report per read, never backwards, ending at the total.
    assert!(seen.len() > 10, "{} reports", seen.len());
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert!(seen.iter().all(|&(_, t)| t == total), "{seen:?}");
    assert_eq!(seen.last(), Some(&(total, total)));
    assert_eq!(loaded.weight_bytes, total);
    assert_eq!(loaded.backend.context_len(), 256);
    assert!(loaded.backend.as_gpu().is_none());
    assert_eq!(loaded.config.n_layer, 30);
    assert!(!loaded.is_m1);
}

#[test]
fn every_failure_has_a_kind() {
    let Some(path) = test_model(SMOLLM) else {
        return;
    };
    let file = std::fs::read(&path).unwrap();

    // Cut inside the tensor data: the file's fault, found while loading.
    let e = load(&file[..file.len() / 2], Device::Cpu, LoadOptions::default())
        .err()
        .expect("a cut file fails");
    assert_eq!(e.kind(), LoadErrorKind::BadModel, "{e}");
    assert!(matches!(e, LoadError::Gguf(_)), "{e:?}");

    // A read that fails (a disk, the network): worth a retry.
    struct Failing<'a>(SliceSource<'a>);
    impl ByteSource for Failing<'_> {
        fn size(&self) -> u64 {
            self.0.size()
        }
        async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
            if offset >= 16 << 20 {
                return Err(GgufError::Io {
                    offset,
                    len: buf.len() as u64,
                    message: "connection reset".into(),
                });
            }
            self.0.read_at(offset, buf).await
        }
    }
    let mut src = Failing(SliceSource::new(&file));
    let header = block_on(read_header(&mut src)).unwrap();
    let result: Result<Loaded, _> = block_on(backend::load(
        &header,
        src,
        Device::Cpu,
        LoadOptions::default(),
        |_, _| {},
    ));
    let e = result.err().expect("a failed read fails the load");
    assert_eq!(e.kind(), LoadErrorKind::Read, "{e}");

    // More than the CPU path may take: refused before the first weight, with the sizes.
    let options = LoadOptions {
        context: Some(1024),
        memory_limit: Some(128 << 20),
    };
    let e = load(&file, Device::Cpu, options).err().expect("too large");
    assert_eq!(e.kind(), LoadErrorKind::OutOfMemory, "{e}");
    assert!(
        e.to_string().contains("more than the 134 MB available"),
        "{e}"
    );

    // An architecture we do not run: found by `check`, from the header alone.
    let mut md = file.clone();
    let at = find(&md, b"llama").expect("general.architecture = llama");
    md[at..at + 5].copy_from_slice(b"mamba");
    let mut src = SliceSource::new(&md);
    let header = block_on(read_header(&mut src)).unwrap();
    let e = backend::check(&header).err().expect("mamba is refused");
    assert_eq!(e.kind(), LoadErrorKind::BadModel, "{e}");
    assert!(e.to_string().contains("unsupported architecture"), "{e}");
}

/// A tensor type without a GPU kernel: unsupported on the GPU, where the CPU path, which
/// reads every type, is the remedy.
#[test]
fn a_type_without_a_gpu_kernel_is_unsupported_on_the_gpu_only() {
    let Some(bytes) = retyped_smollm2("blk.3.ffn_down.weight", GgmlType::Q2K) else {
        return;
    };
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    let options = LoadOptions {
        context: Some(64),
        ..LoadOptions::default()
    };
    // The same device serves another load after the failed one.
    for _ in 0..2 {
        let e = load(&bytes, Device::Gpu(gpu.clone()), options)
            .err()
            .expect("no Q2_K kernel");
        assert_eq!(e.kind(), LoadErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("Q2_K"), "{e}");
    }
    load(&bytes, Device::Cpu, options).expect("the CPU path reads Q2_K");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
