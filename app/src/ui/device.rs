//! "About this device": what the engine computes on, and the limits that decide which
//! models fit.

use leptos::prelude::*;
use m1_engine::units::fmt_bytes;

use crate::protocol::{DeviceInfo, RunStats};

/// "12.3 tok/s decode · host 0.21 ms per token (245 dispatches in one pass)".
fn run_line(s: &RunStats) -> String {
    let mut parts = Vec::new();
    if let Some(rate) = s.decode_tokens_per_s {
        parts.push(format!("{rate:.1} tok/s decode"));
    }
    if let Some(host) = s.host_ms_per_token {
        let dispatches = s.dispatches_per_token.map_or(String::new(), |d| {
            format!(" ({d:.0} dispatches in one pass)")
        });
        parts.push(format!("host {host:.2} ms per token{dispatches}"));
    }
    if let Some(gpu) = s.gpu_ms_per_token {
        parts.push(format!("GPU {gpu:.2} ms per token"));
    }
    if let Some(m) = s.worker_memory {
        parts.push(format!("engine memory {}", fmt_bytes(m)));
    }
    if let Some(h) = s.gpu_held {
        parts.push(format!(
            "{} GPU buffers ({})",
            h.buffers,
            fmt_bytes(h.bytes)
        ));
    }
    parts.join(" · ")
}

/// "Threads: 2", or "Threads: 1 (the page is not cross-origin isolated …)".
fn threads_line(threads: usize, note: Option<&str>) -> String {
    match note {
        Some(n) => format!("Threads: {threads} ({n})"),
        None => format!("Threads: {threads}"),
    }
}

#[component]
pub fn DevicePanel(
    device: ReadSignal<Option<DeviceInfo>>,
    last_run: ReadSignal<Option<RunStats>>,
) -> impl IntoView {
    view! {
        <details class="panel device" data-testid="device-panel">
            <summary>"About this device"</summary>
            {move || last_run.get().map(|s| view! {
                <p
                    data-testid="run-stats"
                    data-worker-memory=s.worker_memory.map(|m| m.to_string())
                    data-gpu-buffers=s.gpu_held.map(|h| h.buffers.to_string())
                    data-gpu-bytes=s.gpu_held.map(|h| h.bytes.to_string())
                >
                    "Last answer: " {run_line(&s)}
                </p>
            })}
            {move || match device.get() {
                None => view! { <p>"Looking for a GPU…"</p> }.into_any(),
                Some(DeviceInfo::Cpu { reason, adapter, threads }) => view! {
                    <p data-testid="device-backend">"Backend: CPU (WebAssembly)"</p>
                    <p data-testid="device-reason">{reason}</p>
                    <p data-testid="cpu-threads" data-threads=threads.threads.to_string()>
                        {threads_line(threads.threads, threads.note.as_deref())}
                    </p>
                    {adapter.map(|a| view! {
                        <p class="muted">{format!(
                            "Passed-over adapter: {} · max storage binding {} · shader-f16 {}",
                            a.name, fmt_bytes(a.max_storage_buffer_binding_size), if a.shader_f16 { "yes" } else { "no" }
                        )}</p>
                    })}
                }
                .into_any(),
                Some(DeviceInfo::WebGpu { adapter }) => view! {
                    <dl class="kv">
                        <dt>"Backend"</dt><dd data-testid="device-backend">"WebGPU"</dd>
                        <dt>"Adapter"</dt><dd data-testid="adapter-name">{adapter.name.clone()}</dd>
                        <dt>"Type"</dt><dd>{adapter.device_type.clone()}</dd>
                        <dt>"Driver"</dt><dd>{adapter.driver.clone()}</dd>
                        <dt>"shader-f16"</dt><dd data-testid="adapter-f16">{if adapter.shader_f16 { "yes" } else { "no (f32 kernels)" }}</dd>
                        <dt>"Max buffer"</dt><dd data-testid="adapter-max-buffer">{fmt_bytes(adapter.max_buffer_size)}</dd>
                        <dt>"Max storage binding"</dt><dd data-testid="adapter-max-binding">{fmt_bytes(adapter.max_storage_buffer_binding_size)}</dd>
                        <dt>"Workgroup storage"</dt><dd>{fmt_bytes(adapter.max_compute_workgroup_storage_size.into())}</dd>
                        <dt>"Invocations per workgroup"</dt><dd>{adapter.max_compute_invocations_per_workgroup}</dd>
                    </dl>
                }
                .into_any(),
            }}
        </details>
    }
}
