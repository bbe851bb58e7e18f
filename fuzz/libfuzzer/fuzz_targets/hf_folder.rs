#![no_main]

#[global_allocator]
static ALLOC: m1_fuzz::CappedAlloc = m1_fuzz::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| (m1_fuzz::target("hf_folder").unwrap().run)(data));
