//! Device acquisition, kept apart from the work so tests can inject a device
//! and the browser and native paths share one entry point.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::held::{Counters, GpuBuffer, Held};
use super::GpuError;

/// What the adapter offers, as reported to the UI ("About this device") and to benchmarks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// `shader-f16` was offered and requested.
    pub shader_f16: bool,
    /// Timestamp queries were offered and requested (benchmarks measure GPU time with them).
    #[serde(default)]
    pub timestamps: bool,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

#[derive(Debug, Clone, Copy)]
enum ErrorKind {
    OutOfMemory,
    Validation,
    Internal,
}

/// Options for [`Gpu::new`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GpuOptions {
    /// Do not request `shader-f16` even when offered: exercises the f32 path on f16 hardware.
    pub disable_f16: bool,
    /// Request timestamp queries where offered, so each step's GPU time can be measured.
    pub timestamps: bool,
    /// Natively, a device that executes nothing (wgpu's noop backend: buffers and copies are
    /// real, dispatches are recorded, validated and dropped), so a benchmark's per-step
    /// figures are the host's cost alone. A software adapter such as lavapipe runs the work
    /// inside `submit` and cannot separate the two. Refused on the web.
    pub host_only: bool,
}

/// A device and queue with the adapter's real limits. A clone is the same device (its
/// handles and error list are shared), so one opened device can serve several loads.
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    pub report: AdapterReport,
    /// Validation and out-of-memory errors nobody caught in an error scope. wgpu's default
    /// handler panics; a library must instead hand them to the caller (see [`Gpu::take_error`]).
    errors: Arc<Mutex<Vec<(ErrorKind, String)>>>,
    held: Arc<Counters>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("report", &self.report).finish()
    }
}

impl Gpu {
    /// Requests the high-performance adapter with every limit it has: the spec defaults
    /// (128 MiB bindings, 256 MiB buffers) are far below what a 7B model needs.
    pub async fn new(options: GpuOptions) -> Result<Self, GpuError> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        if options.host_only {
            if cfg!(target_arch = "wasm32") {
                return Err(GpuError::NoAdapter(
                    "a host-only device exists natively only".to_string(),
                ));
            }
            descriptor.backends = wgpu::Backends::NOOP;
            descriptor.backend_options.noop = wgpu::NoopBackendOptions {
                // A hardware GPU's type, so the tuning is a GPU's (not a software adapter's).
                device_type: Some(wgpu::DeviceType::DiscreteGpu),
                ..wgpu::NoopBackendOptions::enabled()
            };
        }
        let instance = wgpu::Instance::new(descriptor);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        Self::from_adapter(&adapter, options).await
    }

    /// Opens a device on a given adapter with its full limits and `shader-f16` where offered.
    pub async fn from_adapter(
        adapter: &wgpu::Adapter,
        options: GpuOptions,
    ) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let offered = adapter.features();
        let shader_f16 = offered.contains(wgpu::Features::SHADER_F16) && !options.disable_f16;
        // The noop device offers timestamps but never writes them: no GPU time to report.
        let timestamps = offered.contains(wgpu::Features::TIMESTAMP_QUERY)
            && options.timestamps
            && !options.host_only;
        let mut required_features = wgpu::Features::empty();
        if shader_f16 {
            required_features |= wgpu::Features::SHADER_F16;
        }
        if timestamps {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("m1-engine"),
                required_features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;
        let report = AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            shader_f16,
            timestamps,
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        };
        let errors: Arc<Mutex<Vec<(ErrorKind, String)>>> = Arc::default();
        let sink = errors.clone();
        // Kept as text: `wgpu::Error` is not `Send` on the web, the handler must be.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let entry = match e {
                wgpu::Error::OutOfMemory { source } => (ErrorKind::OutOfMemory, source.to_string()),
                wgpu::Error::Validation { description, .. } => (ErrorKind::Validation, description),
                wgpu::Error::Internal { description, .. } => (ErrorKind::Internal, description),
            };
            if let Ok(mut list) = sink.lock() {
                list.push(entry);
            }
        }));
        Ok(Self {
            device,
            queue,
            limits,
            report,
            errors,
            held: Arc::default(),
        })
    }

    /// Calls `f` with the browser's or driver's message when the device is lost (a driver
    /// reset, a tab in the background reclaimed, out of memory). Not when we destroy or drop
    /// it ourselves: releasing a model to load another is no loss to report.
    pub fn on_device_lost(&self, f: impl Fn(String) + Send + 'static) {
        self.device
            .set_device_lost_callback(move |reason, message| {
                if reason != wgpu::DeviceLostReason::Destroyed {
                    f(message);
                }
            });
    }

    /// A buffer on this device, counted in [`Gpu::held`] while the engine holds it: every
    /// buffer the engine makes comes from here.
    pub fn create_buffer(&self, desc: &wgpu::BufferDescriptor) -> GpuBuffer {
        GpuBuffer::new(self.device.create_buffer(desc), &self.held)
    }

    /// The buffers the engine holds on this device now, and their bytes.
    pub fn held(&self) -> Held {
        self.held.held()
    }

    /// The largest byte range one storage binding may cover on this device.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// The first GPU error raised since the last call (validation, out of memory, internal),
    /// as a typed error naming the operation that failed; `Ok` when there was none.
    pub fn take_error(&self) -> Result<(), GpuError> {
        let first = match self.errors.lock() {
            Ok(mut list) => {
                let first = list.drain(..).next();
                first
            }
            Err(_) => None,
        };
        match first {
            None => Ok(()),
            Some((ErrorKind::OutOfMemory, message)) => Err(GpuError::OutOfMemory {
                what: message,
                bytes: 0,
            }),
            Some((ErrorKind::Validation, message)) => Err(GpuError::Validation {
                what: "uncaptured".to_string(),
                message,
            }),
            Some((ErrorKind::Internal, message)) => Err(GpuError::Validation {
                what: "internal".to_string(),
                message,
            }),
        }
    }
}
