//! The page's state as signals, and the reducer that applies worker events to it.

use leptos::prelude::*;
use m1_engine::backend::Sampling;
use m1_engine::reason::{
    Event as ReasonEvent, Question, StopReason, Summary, DEFAULT_BUDGET, DEFAULT_MAX_ANSWER_TOKENS,
};

use crate::options::{compact, lettered};
use crate::protocol::{
    CacheEntry, DeviceInfo, ErrorKind, Event, LoadSource, ModelInfo, Phase, RunStats,
};
use crate::remedy::reload_source;

/// A piece of the reasoning as shown: text, or a marker where the controller intervened.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Wait(usize),
    /// Thinking ended here: by the budget (true) or naturally (false).
    End {
        budget: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
    pub started_ms: f64,
    pub started_bytes: u64,
    pub now_ms: f64,
}

/// The question being written, shared by the Ask form and the Compare view.
#[derive(Clone, Copy)]
pub struct QuestionDraft {
    pub question: RwSignal<String>,
    pub context: RwSignal<String>,
    /// Option texts; their letters follow from the order.
    pub options: RwSignal<Vec<String>>,
    /// The correct letter of a sample (cleared when the question is edited).
    pub expected: RwSignal<Option<String>>,
    /// The sample the question came from, shown in the sample pickers (cleared with
    /// `expected`).
    pub sample: RwSignal<Option<usize>>,
}

impl QuestionDraft {
    pub fn new() -> Self {
        Self {
            question: RwSignal::new(String::new()),
            context: RwSignal::new(String::new()),
            options: RwSignal::new(vec![String::new(); 4]),
            expected: RwSignal::new(None),
            sample: RwSignal::new(None),
        }
    }

    pub fn load_sample(&self, i: usize) {
        if let Some(s) = crate::samples::SAMPLES.get(i) {
            self.question.set(s.question.to_string());
            self.context.set(s.context.unwrap_or("").to_string());
            self.options
                .set(s.options.iter().map(|(_, t)| t.to_string()).collect());
            self.expected.set(Some(s.answer.to_string()));
            self.sample.set(Some(i));
        }
    }

    /// The question was edited: it is no longer the sample's, nor is the sample's answer.
    pub fn edit_question(&self, text: String) {
        self.question.set(text);
        self.expected.set(None);
        self.sample.set(None);
    }

    /// An empty form (the kiosk's start screen).
    pub fn clear(&self) {
        self.question.set(String::new());
        self.context.set(String::new());
        self.options.set(vec![String::new(); 4]);
        self.expected.set(None);
        self.sample.set(None);
    }

    /// The question to send. Empty option rows move last (and the form shows them so), so
    /// each row keeps the letter it is asked under.
    pub fn take_question(&self) -> Result<Question, String> {
        let q = self.question.get_untracked();
        if q.trim().is_empty() {
            return Err("Type a question first.".into());
        }
        let rows = compact(&self.options.get_untracked());
        let options = lettered(&rows);
        self.options.set(rows);
        let ctx = self.context.get_untracked();
        Ok(Question {
            question: q.trim().to_string(),
            context: (!ctx.trim().is_empty()).then(|| ctx.trim().to_string()),
            options,
        })
    }
}

/// The Ask form's settings beside the budget: the "Wait" count, minimum thinking and the
/// sampling drawer. Held above the form so the kiosk's reset can give the next visitor the
/// engine's defaults rather than the last visitor's choices.
#[derive(Clone, Copy)]
pub struct AskDraft {
    pub waits: RwSignal<u32>,
    pub min_thinking: RwSignal<u32>,
    pub temperature: RwSignal<f32>,
    pub top_p: RwSignal<f32>,
    pub seed: RwSignal<u64>,
    /// Whether the "Advanced sampling" drawer is open.
    pub advanced: RwSignal<bool>,
}

impl AskDraft {
    pub fn new() -> Self {
        let s = Sampling::default();
        Self {
            waits: RwSignal::new(0),
            min_thinking: RwSignal::new(0),
            temperature: RwSignal::new(s.temperature),
            top_p: RwSignal::new(s.top_p),
            seed: RwSignal::new(s.seed),
            advanced: RwSignal::new(false),
        }
    }

    /// Back to the engine's defaults (greedy, as in the m1 paper), the drawer closed.
    pub fn reset(&self) {
        let s = Sampling::default();
        self.waits.set(0);
        self.min_thinking.set(0);
        self.temperature.set(s.temperature);
        self.top_p.set(s.top_p);
        self.seed.set(s.seed);
        self.advanced.set(false);
    }

    pub fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature.get_untracked(),
            top_p: self.top_p.get_untracked(),
            seed: self.seed.get_untracked(),
        }
    }
}

#[derive(Clone, Copy)]
pub struct AppState {
    pub device: RwSignal<Option<DeviceInfo>>,
    /// What the last answer cost (shown under "About this device").
    pub last_run: RwSignal<Option<RunStats>>,
    pub status: RwSignal<String>,
    pub error: RwSignal<Option<(ErrorKind, String)>>,
    pub model: RwSignal<Option<ModelInfo>>,
    pub loading: RwSignal<bool>,
    pub progress: RwSignal<Option<Progress>>,
    pub cache: RwSignal<Vec<CacheEntry>>,
    /// What the worker repaired in the cache when the page opened.
    pub cache_notes: RwSignal<Vec<String>>,
    pub quota: RwSignal<(Option<u64>, Option<u64>)>,
    pub running: RwSignal<bool>,
    pub pieces: RwSignal<Vec<Piece>>,
    pub think_tokens: RwSignal<usize>,
    pub budget: RwSignal<u32>,
    pub max_answer: RwSignal<u32>,
    /// The budget of the run on screen (the slider may have moved since); `None` before the
    /// first run, when the counter shows the slider's budget.
    pub run_budget: RwSignal<Option<u32>>,
    pub answer_prefix: RwSignal<Option<String>>,
    pub answer: RwSignal<String>,
    pub summary: RwSignal<Option<Summary>>,
    pub run_started_ms: RwSignal<f64>,
    pub clock: TokenClock,
    pub expected: RwSignal<Option<String>>,
    /// The options of the run on screen, as sent (letter, text).
    pub asked: RwSignal<Vec<(String, String)>>,
    /// Where the current (or last attempted) model loads from again: Retry after a
    /// network failure, Reload after a lost GPU device.
    pub last_load: RwSignal<Option<LoadSource>>,
}

impl AppState {
    pub fn new() -> Self {
        Self {
            device: RwSignal::new(None),
            last_run: RwSignal::new(None),
            status: RwSignal::new("Starting the engine…".into()),
            error: RwSignal::new(None),
            model: RwSignal::new(None),
            loading: RwSignal::new(false),
            progress: RwSignal::new(None),
            cache: RwSignal::new(Vec::new()),
            cache_notes: RwSignal::new(Vec::new()),
            quota: RwSignal::new((None, None)),
            running: RwSignal::new(false),
            pieces: RwSignal::new(Vec::new()),
            think_tokens: RwSignal::new(0),
            budget: RwSignal::new(DEFAULT_BUDGET as u32),
            max_answer: RwSignal::new(DEFAULT_MAX_ANSWER_TOKENS as u32),
            run_budget: RwSignal::new(None),
            answer_prefix: RwSignal::new(None),
            answer: RwSignal::new(String::new()),
            summary: RwSignal::new(None),
            run_started_ms: RwSignal::new(0.0),
            clock: TokenClock::new(),
            expected: RwSignal::new(None),
            asked: RwSignal::new(Vec::new()),
            last_load: RwSignal::new(None),
        }
    }

    /// Marks a load as started; the caller sends the request.
    pub fn start_load(&self, source: &LoadSource, status: String) {
        self.loading.set(true);
        self.error.set(None);
        self.status.set(status);
        self.last_load.set(Some(source.clone()));
    }

    /// Clears the previous answer when a new question starts.
    pub fn start_run(&self, budget: u32, expected: Option<String>, asked: Vec<(String, String)>) {
        self.forget_answer();
        self.running.set(true);
        self.run_budget.set(Some(budget));
        self.run_started_ms.set(now_ms());
        self.expected.set(expected);
        self.asked.set(asked);
        self.status.set("Reading the question…".into());
    }

    /// Forgets the answer on screen (the kiosk's start screen); the model stays loaded.
    pub fn clear_run(&self, budget: u32) {
        self.forget_answer();
        self.budget.set(budget);
        self.run_budget.set(None);
        self.expected.set(None);
        self.asked.set(Vec::new());
        if let Some(m) = self.model.get_untracked() {
            self.status.set(loaded_status(&m));
        }
    }

    /// What a new question and the kiosk's reset both clear: the last answer, its error and
    /// its figures (so the figures shown are always the answer's on screen).
    fn forget_answer(&self) {
        self.error.set(None);
        self.last_run.set(None);
        self.pieces.set(Vec::new());
        self.think_tokens.set(0);
        self.answer_prefix.set(None);
        self.answer.set(String::new());
        self.summary.set(None);
        self.clock.reset();
    }

    pub fn apply(&self, ev: Event) {
        match ev {
            Event::Started {} => {}
            Event::Ready { device } => {
                self.status.set(match &device {
                    DeviceInfo::WebGpu { adapter } => {
                        format!("Engine ready on WebGPU ({})", adapter.name)
                    }
                    DeviceInfo::Cpu {
                        adapter, threads, ..
                    } => format!(
                        "Engine ready on the CPU, {} ({})",
                        match threads.threads {
                            1 => "one thread".to_string(),
                            n => format!("{n} threads"),
                        },
                        if adapter.is_some() {
                            "only a software WebGPU adapter"
                        } else {
                            "no WebGPU"
                        }
                    ),
                });
                self.device.set(Some(device));
            }
            Event::Progress { phase, done, total } => {
                let now = now_ms();
                self.progress.update(|p| match p {
                    Some(p) if p.phase == phase => {
                        p.done = done;
                        p.total = total;
                        p.now_ms = now;
                    }
                    _ => {
                        *p = Some(Progress {
                            phase,
                            done,
                            total,
                            started_ms: now,
                            started_bytes: done,
                            now_ms: now,
                        })
                    }
                });
            }
            Event::Loaded { model } => {
                self.loading.set(false);
                self.progress.set(None);
                self.status.set(loaded_status(&model));
                self.last_load
                    .update(|l| *l = reload_source(l.take(), &model));
                self.model.set(Some(model));
            }
            Event::Cache {
                entries,
                usage,
                quota,
                notes,
            } => {
                if !notes.is_empty() {
                    self.cache_notes.set(notes);
                }
                self.cache.set(entries);
                self.quota.set((usage, quota));
            }
            Event::Reason { event } => self.apply_reason(event),
            // The sweep's own state takes these (`ui::sweep`).
            Event::Sweep { .. } => {}
            Event::RunStats { stats } => self.last_run.set(Some(stats)),
            Event::Error { kind, message } => {
                if matches!(
                    kind,
                    ErrorKind::Network
                        | ErrorKind::Quota
                        | ErrorKind::BadModel
                        | ErrorKind::Cancelled
                ) || self.loading.get_untracked()
                {
                    self.loading.set(false);
                    self.progress.set(None);
                }
                if kind == ErrorKind::DeviceLost {
                    self.model.set(None);
                }
                self.running.set(false);
                self.status.set(match kind {
                    ErrorKind::Cancelled => "Cancelled.".into(),
                    _ => "Something went wrong: see the message below.".into(),
                });
                if kind != ErrorKind::Cancelled {
                    self.error.set(Some((kind, message)));
                }
            }
        }
    }

    fn apply_reason(&self, ev: ReasonEvent) {
        let now = now_ms();
        match ev {
            ReasonEvent::Prompt { tokens } => {
                self.status
                    .set(format!("Reading the question ({} tokens)…", tokens.len()));
            }
            ReasonEvent::Think { text, .. } => {
                self.clock.tick(now);
                self.think_tokens.update(|n| *n += 1);
                self.status.set("Thinking…".into());
                push_text(self.pieces, &text);
            }
            ReasonEvent::Wait { index, .. } => {
                self.pieces.update(|p| p.push(Piece::Wait(index)));
            }
            ReasonEvent::AnswerPrefix {
                budget_exhausted, ..
            } => {
                self.pieces.update(|p| {
                    p.push(Piece::End {
                        budget: budget_exhausted,
                    })
                });
                self.answer_prefix.set(Some(if budget_exhausted {
                    "Final Answer:".into()
                } else {
                    String::new()
                }));
                self.status.set("Answering…".into());
            }
            ReasonEvent::Answer { text, .. } => {
                self.clock.tick(now);
                self.answer.update(|a| a.push_str(&text));
            }
            ReasonEvent::Done(summary) => {
                self.running.set(false);
                self.status.set(match summary.stop {
                    StopReason::Cancelled => "Stopped.".into(),
                    _ => "Done.".into(),
                });
                self.summary.set(Some(summary));
            }
        }
    }
}

/// Tokens sampled in a run and when the first and last arrived, on the UI's own clock: the
/// live speed of an answer or a sweep.
#[derive(Clone, Copy)]
pub struct TokenClock {
    pub sampled: RwSignal<usize>,
    first_ms: RwSignal<Option<f64>>,
    last_ms: RwSignal<f64>,
}

impl TokenClock {
    pub fn new() -> Self {
        Self {
            sampled: RwSignal::new(0),
            first_ms: RwSignal::new(None),
            last_ms: RwSignal::new(0.0),
        }
    }

    pub fn reset(&self) {
        self.sampled.set(0);
        self.first_ms.set(None);
    }

    pub fn tick(&self, now: f64) {
        if self.first_ms.get_untracked().is_none() {
            self.first_ms.set(Some(now));
        }
        self.sampled.update(|n| *n += 1);
        self.last_ms.set(now);
    }

    /// Tokens per second since the first sampled token.
    pub fn tokens_per_s(&self) -> Option<f64> {
        let first = self.first_ms.get()?;
        let n = self.sampled.get();
        let dt = self.last_ms.get() - first;
        (n > 1 && dt > 0.0).then(|| (n - 1) as f64 * 1000.0 / dt)
    }
}

fn loaded_status(m: &ModelInfo) -> String {
    format!("{} is loaded ({}). Ask a question.", m.name, m.device)
}

fn push_text(pieces: RwSignal<Vec<Piece>>, text: &str) {
    if text.is_empty() {
        return;
    }
    pieces.update(|p| match p.last_mut() {
        Some(Piece::Text(t)) => t.push_str(text),
        _ => p.push(Piece::Text(text.to_string())),
    });
}

pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}
