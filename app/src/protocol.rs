//! The messages between the UI (main thread) and the engine's Web Worker.
//! Serde enums with named fields, sent as JSON strings: both ends are this crate, and a
//! string survives `postMessage` unchanged. A user-picked `File` travels beside the JSON
//! (structured clone, field `file`), because it cannot be serialized.

use m1_engine::backend::Sampling;
use m1_engine::gpu::{AdapterReport, Held};
use m1_engine::reason::{Event as ReasonEvent, Question, SweepEvent};
use serde::{Deserialize, Serialize};

/// UI -> worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Find the compute device: WebGPU adapter and limits, or the CPU fallback.
    Init {
        /// Skip WebGPU even where present (testing the CPU path, or a broken driver).
        force_cpu: bool,
        /// Use WebGPU even on a software (fallback) adapter, which is slower than the CPU
        /// path; for measuring and testing the kernels in a browser without a GPU.
        #[serde(default)]
        force_gpu: bool,
        /// At most this many threads on the CPU path (`?threads=N`; default one per core).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threads: Option<usize>,
    },
    /// Load a model; any model already loaded is released first.
    Load {
        source: LoadSource,
        context: u32,
    },
    /// Abandon a load in progress (a partial cache entry is removed).
    CancelLoad {},
    /// Answer a question with m1's budget-forced reasoning.
    Ask {
        question: Question,
        settings: AskSettings,
    },
    /// Answer a question at several thinking budgets from one thinking trace (the budget
    /// sweep): the events of `reason::Sweep`, `done` last.
    Sweep {
        question: Question,
        settings: SweepSettings,
    },
    /// Stop the current answer or sweep; the worker finishes the token in flight and
    /// reports `done` (a sweep's keeps the budgets answered so far).
    Stop {},
    /// List the models cached in OPFS and the storage quota.
    ListCache {},
    DeleteCached {
        file: String,
    },
}

/// Where a model's bytes come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadSource {
    /// Downloaded (HTTP Range requests, resumable) and stored in OPFS while it loads.
    Url {
        url: String,
        name: String,
        size: Option<u64>,
        sha256: Option<String>,
    },
    /// A model already in the OPFS cache: loads with no network.
    Cached { file: String },
    /// A `.gguf` the user picked or dropped; the `File` rides next to the JSON.
    Picked { name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskSettings {
    pub budget: u32,
    pub waits: u32,
    /// s1's minimum thinking (`ReasonConfig::min_thinking`); absent from older pages: 0.
    #[serde(default)]
    pub min_thinking: u32,
    pub max_answer_tokens: u32,
    pub sampling: Sampling,
}

/// A sweep's settings: the budgets, and what each budget's run shares (as [`AskSettings`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSettings {
    pub budgets: Vec<u32>,
    pub waits: u32,
    #[serde(default)]
    pub min_thinking: u32,
    pub max_answer_tokens: u32,
    pub sampling: Sampling,
}

impl SweepSettings {
    pub fn config(&self) -> m1_engine::reason::SweepConfig {
        m1_engine::reason::SweepConfig {
            budgets: self.budgets.iter().map(|&b| b as usize).collect(),
            waits: self.waits as usize,
            min_thinking: self.min_thinking as usize,
            max_answer_tokens: self.max_answer_tokens as usize,
        }
    }
}

/// Figures of the last answer: decode speed and, on the GPU, the host's share of each
/// decoded token (encoding and submitting its one prepared pass).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    pub decode_tokens_per_s: Option<f64>,
    /// Host milliseconds per step (GPU only).
    pub host_ms_per_token: Option<f64>,
    /// Dispatches per step (GPU only).
    pub dispatches_per_token: Option<f64>,
    /// GPU milliseconds per step, where the browser offers timestamp queries.
    pub gpu_ms_per_token: Option<f64>,
    /// The engine worker's WebAssembly memory after the run (it only grows: a run that
    /// leaks shows here).
    #[serde(default)]
    pub worker_memory: Option<u64>,
    /// The GPU buffers the engine holds after the run, and their bytes (GPU only): a run
    /// that leaks on the device shows here.
    #[serde(default)]
    pub gpu_held: Option<Held>,
}

/// Worker -> UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The worker's wasm has started and its message handler is installed. Messages sent
    /// before this are lost (a dedicated worker drops them), so the UI waits for it.
    Started {},
    /// The worker is running and has chosen a device.
    Ready { device: DeviceInfo },
    /// Load progress in bytes: of the file while downloading and verifying, of the weights
    /// placed on the device while reading from the cache or a picked file.
    Progress { phase: Phase, done: u64, total: u64 },
    /// A model is loaded and ready for questions.
    Loaded { model: ModelInfo },
    /// One event of the answer stream (prompt, think, wait, answer_prefix, answer, done).
    Reason { event: ReasonEvent },
    /// One event of a budget sweep (prompt, think, wait, cut, answer, budget, done).
    Sweep { event: SweepEvent },
    /// What the answer just finished cost, after its `done` ("About this device").
    RunStats { stats: RunStats },
    /// The models in the OPFS cache, and the origin's storage use.
    Cache {
        entries: Vec<CacheEntry>,
        usage: Option<u64>,
        quota: Option<u64>,
        /// What the first listing of a page found damaged in the cache and put right.
        #[serde(default)]
        notes: Vec<String>,
    },
    /// Something failed; `kind` lets the UI offer the right remedy.
    Error { kind: ErrorKind, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Bytes arriving from the network (also written to the cache).
    Download,
    /// Weights read from the cache or a picked file onto the device (the engine loader's
    /// progress).
    Read,
    /// Checking the cached copy's size and sha256.
    Verify,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    /// The file names itself m1 in its metadata (`m1_engine::model::is_m1`).
    pub is_m1: bool,
    pub file_bytes: u64,
    pub n_layers: u32,
    pub context: u32,
    /// Where it computes: the adapter's name, or "CPU (WebAssembly)".
    pub device: String,
    pub load_ms: f64,
    /// The OPFS cache file it can be loaded from again with no network (after a lost GPU
    /// device, say); `None` for a picked file or where the cache was unavailable.
    #[serde(default)]
    pub cached_as: Option<String>,
    /// The engine worker's WebAssembly memory before and after this load.
    #[serde(default)]
    pub worker_memory: WorkerMemory,
    /// What the model holds on the GPU; `None` on the CPU path.
    #[serde(default)]
    pub gpu_memory: Option<GpuMemory>,
}

/// The engine worker's WebAssembly memory (it only grows, so "after" is the peak). On the
/// GPU path the weights stream through it in bounded chunks, so a load adds the tokenizer
/// and little more; on the CPU path it holds the weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerMemory {
    pub before_load: u64,
    pub after_load: u64,
}

/// GPU bytes of a loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpuMemory {
    /// The weights, still quantized: about their bytes in the file.
    pub weights: u64,
    /// The KV cache and the activations.
    pub state: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub file: String,
    pub size: u64,
    pub sha256: Option<String>,
    /// `Some(bytes kept)` for a download that stopped part-way: loading the same model
    /// again resumes it. Such an entry cannot be loaded itself, only resumed or deleted.
    #[serde(default)]
    pub incomplete: Option<u64>,
}

/// The device the engine computes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum DeviceInfo {
    WebGpu {
        adapter: AdapterReport,
    },
    /// No usable WebGPU adapter: the engine runs on the CPU (wasm), and `reason` says why.
    /// `adapter` is the software adapter that was passed over, if any.
    Cpu {
        reason: String,
        #[serde(default)]
        adapter: Option<AdapterReport>,
        #[serde(default)]
        threads: CpuThreads,
    },
}

/// The threads the CPU path computes on in the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuThreads {
    /// Threads in all, the engine worker's own included.
    pub threads: usize,
    /// Why there are fewer than the cores, where there are.
    #[serde(default)]
    pub note: Option<String>,
}

impl Default for CpuThreads {
    fn default() -> Self {
        Self {
            threads: 1,
            note: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A message the worker could not understand (a bug: UI and worker disagree).
    Protocol,
    /// The GPU device was lost (with the model, or while loading): load again on a new one.
    DeviceLost,
    OutOfMemory,
    /// Not a GGUF, truncated, corrupt, unsupported architecture or tensor type.
    BadModel,
    /// The network failed mid-download; a retry resumes where it stopped.
    Network,
    /// Not enough storage quota for the cache copy.
    Quota,
    /// A question was asked with no model loaded, or an empty question.
    BadRequest,
    Cancelled,
    Internal,
}

impl Request {
    pub fn to_json(&self) -> String {
        // Serializing these plain enums cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Event {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_named_fields() {
        let r = Request::Init {
            force_cpu: true,
            force_gpu: false,
            threads: None,
        };
        let j = r.to_json();
        assert_eq!(j, r#"{"type":"init","force_cpu":true,"force_gpu":false}"#);
        assert_eq!(serde_json::from_str::<Request>(&j).ok(), Some(r));
        let r = Request::Init {
            force_cpu: true,
            force_gpu: false,
            threads: Some(1),
        };
        let j = r.to_json();
        assert_eq!(
            j,
            r#"{"type":"init","force_cpu":true,"force_gpu":false,"threads":1}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&j).ok(), Some(r));
        let ask = Request::Ask {
            question: Question {
                question: "Which vitamin?".into(),
                context: None,
                options: vec![("A".into(), "C".into()), ("B".into(), "D".into())],
            },
            settings: AskSettings {
                budget: 128,
                waits: 0,
                min_thinking: 0,
                max_answer_tokens: 64,
                sampling: Sampling::default(),
            },
        };
        let j = ask.to_json();
        assert!(
            j.contains(r#""type":"ask""#) && j.contains(r#""budget":128"#),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<Request>(&j).ok(), Some(ask));
    }

    #[test]
    fn events_round_trip() {
        let e = Event::Ready {
            device: DeviceInfo::Cpu {
                reason: "navigator.gpu is missing".into(),
                adapter: None,
                threads: CpuThreads {
                    threads: 2,
                    note: None,
                },
            },
        };
        let j = e.to_json();
        assert!(
            j.contains(r#""type":"ready""#) && j.contains(r#""backend":"cpu""#),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<Event>(&j).ok(), Some(e));
        // Reason events keep their own "event" tag inside the "type" envelope.
        let r = Event::Reason {
            event: ReasonEvent::Think {
                id: 5,
                text: "é".into(),
            },
        };
        let j = r.to_json();
        assert_eq!(
            j,
            r#"{"type":"reason","event":{"event":"think","id":5,"text":"é"}}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&j).ok(), Some(r));
    }

    #[test]
    fn sweeps_round_trip_and_carry_the_engine_config() {
        let r = Request::Sweep {
            question: Question {
                question: "Is it?".into(),
                context: Some("An abstract.".into()),
                options: vec![("A".into(), "yes".into()), ("B".into(), "no".into())],
            },
            settings: SweepSettings {
                budgets: vec![512, 128],
                waits: 1,
                min_thinking: 64,
                max_answer_tokens: 32,
                sampling: Sampling::default(),
            },
        };
        let j = r.to_json();
        assert!(j.starts_with(r#"{"type":"sweep""#), "{j}");
        assert_eq!(serde_json::from_str::<Request>(&j).ok(), Some(r.clone()));
        let Request::Sweep { settings, .. } = r else {
            unreachable!()
        };
        let c = settings.config();
        assert_eq!(
            (c.budgets, c.waits, c.min_thinking, c.max_answer_tokens),
            (vec![512, 128], 1, 64, 32)
        );
        let e = Event::Sweep {
            event: SweepEvent::Answer {
                budget: 128,
                id: 9,
                text: " C".into(),
            },
        };
        let j = e.to_json();
        assert_eq!(
            j,
            r#"{"type":"sweep","event":{"event":"answer","budget":128,"id":9,"text":" C"}}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&j).ok(), Some(e));
    }
}
