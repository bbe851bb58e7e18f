//! What a GGUF conversion decides, independent of files and threads: Hugging Face tensor
//! names to GGUF names ([`names`]), each tensor's type under a file type ([`recipe`]) and
//! the bytes a type stores for given values ([`encode()`]). The converter itself (folders,
//! safetensors, the threaded writer) is the CLI's (`m1-cli`, `m1 quantize`); tests and
//! benchmarks build GGUFs with these rules too.

mod encode;
mod names;
mod recipe;

pub use encode::encode;
pub use names::{map_name, rope_permutation, write_order, Mapped};
pub use recipe::{fallback, tensor_type, use_more_bits, FileType};
