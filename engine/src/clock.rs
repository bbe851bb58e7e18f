//! A monotonic clock in milliseconds on every target: `Instant` natively, `performance.now()`
//! in a browser (where `Instant` panics).

/// Milliseconds since an arbitrary origin fixed for the process.
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}

/// Milliseconds since an arbitrary origin fixed for the process.
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    // `performance` exists on the window and in workers alike; without it (a bare JS host),
    // fall back to the wall clock.
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .filter(|p| !p.is_undefined());
    performance
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            let now: js_sys::Function = wasm_bindgen::JsCast::dyn_into(now).ok()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}
