//! The compute device. The probe at `init` opens the GPU once and keeps it: every load uses
//! that device, and a failure to use it is reported, never turned into a silent CPU load.
//! A lost device is dropped and reported; the next load ("Reload the model") opens a new one.

use m1_engine::backend::Device;
use m1_engine::gpu::{AdapterReport, Gpu, GpuError, GpuOptions};
use wasm_bindgen::prelude::*;

use super::{js, post_error, threads, with_state};
use crate::protocol::{DeviceInfo, ErrorKind};

/// WebGPU where the browser offers a hardware adapter (its device kept for the loads), else
/// the CPU path with the reason, on as many threads as the page allows.
pub async fn probe(force_cpu: bool, force_gpu: bool, threads: Option<usize>) -> DeviceInfo {
    match gpu_or_why_not(force_cpu, force_gpu).await {
        Ok(adapter) => {
            threads::start_hashing();
            DeviceInfo::WebGpu { adapter }
        }
        Err((reason, adapter)) => DeviceInfo::Cpu {
            reason,
            adapter,
            threads: threads::start(threads).await,
        },
    }
}

/// The kept GPU's adapter, or why the CPU path runs (and the adapter passed over).
async fn gpu_or_why_not(
    force_cpu: bool,
    force_gpu: bool,
) -> Result<AdapterReport, (String, Option<AdapterReport>)> {
    if force_cpu {
        return Err(("the CPU path was requested".into(), None));
    }
    if !has_navigator_gpu() {
        return Err((
            "this browser does not offer WebGPU (navigator.gpu is missing)".into(),
            None,
        ));
    }
    js::stage("opening WebGPU");
    let gpu = open().await.map_err(|e| (e.to_string(), None))?;
    let mut adapter = gpu.report.clone();
    if adapter.name.is_empty() {
        js::stage("naming the WebGPU adapter");
        adapter.name = browser_adapter_label()
            .await
            .unwrap_or_else(|| "unnamed adapter".into());
    }
    // Measured: on SwiftShader/llvmpipe the wasm CPU path decodes 6-20x faster than our
    // kernels on the software adapter, so a fallback adapter is passed over.
    if adapter.device_type == "Cpu" && !force_gpu {
        let reason = format!(
            "the only WebGPU adapter is a software one ({}), slower than the CPU path; add ?gpu=1 to use it anyway",
            adapter.name
        );
        return Err((reason, Some(adapter)));
    }
    keep(gpu);
    Ok(adapter)
}

/// The device a load runs on: the CPU when the probe chose it, else the probe's GPU, or a
/// new one where that device was lost.
pub async fn for_load() -> Result<Device, (ErrorKind, String)> {
    let (webgpu, gpu) = with_state(|s| {
        (
            matches!(s.device, Some(DeviceInfo::WebGpu { .. })),
            s.gpu.clone(),
        )
    });
    if !webgpu {
        return Ok(Device::Cpu);
    }
    if let Some(gpu) = gpu {
        return Ok(Device::Gpu(gpu));
    }
    match open().await {
        Ok(gpu) => Ok(Device::Gpu(keep(gpu))),
        Err(e) => Err((
            ErrorKind::DeviceLost,
            format!("The GPU device was lost and no new one could be opened ({e})."),
        )),
    }
}

/// How long one attempt to open the GPU (requestAdapter, then requestDevice) may take.
/// Measured: a few hundred ms on SwiftShader; once in a few hundred CI runs the promise
/// never settled, and the page waited forever on "Starting the engine…".
const OPEN_DEADLINE_MS: i32 = 15_000;

/// Chromium answers requestAdapter with null while its GPU process is (re)starting, and
/// rarely never answers at all, so one miss or hang is retried after a second before the
/// engine gives up on WebGPU.
async fn open() -> Result<Gpu, GpuError> {
    let attempt = || async {
        js::within(OPEN_DEADLINE_MS, Gpu::new(GpuOptions::default()))
            .await
            .unwrap_or_else(|| {
                Err(GpuError::NoAdapter(format!(
                    "WebGPU did not answer within {} s",
                    OPEN_DEADLINE_MS / 1000
                )))
            })
    };
    match attempt().await {
        Err(GpuError::NoAdapter(e)) => {
            js::stage(&format!("opening WebGPU again ({e})"));
            js::sleep_ms(1000).await;
            attempt().await
        }
        first => first,
    }
}

/// Keeps `gpu` for the loads and watches it: once lost it is dropped (the next load opens
/// another) and the loss reported. Dropping a model ourselves does not count as a loss.
fn keep(gpu: Gpu) -> Gpu {
    gpu.on_device_lost(|message| {
        with_state(|s| s.gpu = None);
        post_error(
            ErrorKind::DeviceLost,
            format!("The GPU device was lost ({message})."),
        );
    });
    with_state(|s| s.gpu = Some(gpu.clone()));
    gpu
}

fn has_navigator_gpu() -> bool {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"navigator".into())
        .and_then(|nav| js_sys::Reflect::get(&nav, &"gpu".into()))
        .map(|gpu| !gpu.is_undefined() && !gpu.is_null())
        .unwrap_or(false)
}

/// wgpu maps only `GPUAdapterInfo.description`, which browsers usually leave empty for
/// privacy; vendor and architecture are still given, so name the adapter from those.
async fn browser_adapter_label() -> Option<String> {
    let get = |o: &JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).ok();
    let gpu = get(&js_sys::global(), "navigator").and_then(|n| get(&n, "gpu"))?;
    let request = get(&gpu, "requestAdapter")?
        .dyn_into::<js_sys::Function>()
        .ok()?;
    let promise = request
        .call0(&gpu)
        .ok()?
        .dyn_into::<js_sys::Promise>()
        .ok()?;
    let adapter = js::within(OPEN_DEADLINE_MS, js::await_promise(promise))
        .await?
        .ok()?;
    let info = get(&adapter, "info")?;
    let field = |k: &str| {
        get(&info, k)
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let fallback = get(&info, "isFallbackAdapter")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let label = [field("description"), field("vendor"), field("architecture")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let software = if fallback { " (software fallback)" } else { "" };
    (!label.is_empty()).then(|| format!("{label}{software}"))
}
