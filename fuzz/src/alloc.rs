//! An allocator that refuses any single allocation over [`ALLOCATION_CAP`] by aborting with
//! the size: a reader that sizes a buffer from a count it read must check the count first.
//!
//! libFuzzer's own `-malloc_limit_mb` needs a sanitizer's allocator hooks, and the harness
//! is built without a sanitizer (safe Rust gains little from ASan, and it halves the
//! executions); this cap works the same in the fuzzer and in the stable replay test. An
//! abort, not a panic: the allocator must not unwind, and libFuzzer reports the abort as a
//! crash with the input that caused it.

use std::alloc::{GlobalAlloc, Layout, System};

/// The bound: no input under 1 MB may make a reader allocate more than 256 MB.
pub const ALLOCATION_CAP: usize = 256 << 20;

pub struct CappedAlloc;

fn refuse(size: usize) -> ! {
    // Small allocations for the message itself are under the cap.
    eprintln!(
        "m1-fuzz: an allocation of {size} bytes exceeds the {} MiB cap",
        ALLOCATION_CAP >> 20
    );
    std::process::abort()
}

// SAFETY: every method forwards to `System` with the caller's layout unchanged; the cap
// only adds an abort before oversized requests.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            refuse(layout.size());
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            refuse(layout.size());
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_CAP {
            refuse(new_size);
        }
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
