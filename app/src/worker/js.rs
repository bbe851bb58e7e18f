//! Small bridges from JS promises and globals to Rust, shared by the worker's modules.

use std::future::Future;
use std::task::Poll;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::DedicatedWorkerGlobalScope;

pub use crate::browser::{await_promise, describe};

pub fn scope() -> Option<DedicatedWorkerGlobalScope> {
    js_sys::global()
        .dyn_into::<DedicatedWorkerGlobalScope>()
        .ok()
}

/// Milliseconds from the worker's monotonic clock.
pub fn now_ms() -> f64 {
    scope()
        .and_then(|s| s.performance())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Records how far the worker's start has got as `self.m1Stage`, where a test that finds
/// the page stuck on "Starting the engine…" reads it (harness.mjs `engineReady`).
pub fn stage(what: &str) {
    let _ = js_sys::Reflect::set(&js_sys::global(), &"m1Stage".into(), &what.into());
}

/// Bytes of the worker's WebAssembly memory. It only grows, so this is also the peak.
pub fn wasm_memory_bytes() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65_536
}

/// Lets the worker's event loop run (so a Stop message gets through) between compute steps
/// that never suspend on their own (the CPU backend). A message to itself, not
/// `setTimeout(0)`: timers set from a timer's own turn are clamped to 4 ms once five deep,
/// and the CPU path yields twice a token, every token.
pub async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let posted = YIELD.with(|y| {
            let y = y.as_ref()?;
            y.waiting.borrow_mut().push_back(resolve.clone());
            if y.channel.port2().post_message(&JsValue::NULL).is_ok() {
                return Some(());
            }
            y.waiting.borrow_mut().pop_back();
            None
        });
        if posted.is_none() {
            match scope() {
                Some(s) => {
                    let _ = s.set_timeout_with_callback(&resolve);
                }
                None => {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// The channel [`yield_now`] posts to, and the steps waiting for their message, in order.
struct Yield {
    channel: web_sys::MessageChannel,
    waiting: std::cell::RefCell<std::collections::VecDeque<js_sys::Function>>,
    _on_message: Closure<dyn FnMut()>,
}

thread_local! {
    /// `None` where there is no `MessageChannel` (then `setTimeout`).
    static YIELD: Option<Yield> = web_sys::MessageChannel::new().ok().map(|channel| {
        let on_message = Closure::<dyn FnMut()>::new(|| {
            let next = YIELD.with(|y| y.as_ref().and_then(|y| y.waiting.borrow_mut().pop_front()));
            if let Some(resolve) = next {
                let _ = resolve.call0(&JsValue::NULL);
            }
        });
        channel.port1().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Yield {
            channel,
            waiting: Default::default(),
            _on_message: on_message,
        }
    });
}

/// Waits `ms` milliseconds (retry back-off).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(s) = scope() {
            let _ = s.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Checks `done` every `every_ms` until it holds (true) or `deadline_ms` has passed (false):
/// for what another thread does, which no promise announces.
pub async fn poll_until(every_ms: i32, deadline_ms: f64, mut done: impl FnMut() -> bool) -> bool {
    let t0 = now_ms();
    loop {
        if done() {
            return true;
        }
        if now_ms() - t0 > deadline_ms {
            return false;
        }
        sleep_ms(every_ms).await;
    }
}

/// `fut`'s output, or `None` once `ms` milliseconds pass first. A browser promise that
/// never settles (Chromium's requestAdapter while its GPU process hangs) must not leave
/// the page waiting forever.
pub async fn within<F: Future>(ms: i32, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut timer = std::pin::pin!(sleep_ms(ms));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
