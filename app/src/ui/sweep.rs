//! A budget sweep as the page sees it: the shared trace with a marker at each cut, the
//! answer streaming for each cut, each budget's result. One sweep runs at a time (the
//! worker runs one job); the Compare view shows it whole and the Evaluate view runs one per
//! item, awaiting each with [`run`].

use std::cell::RefCell;
use std::task::{Poll, Waker};

use leptos::prelude::*;
use m1_engine::reason::{BudgetResult, Question, SweepEvent, SweepSummary};

use super::engine::EngineHandle;
use super::state::{now_ms, TokenClock};
use crate::protocol::{Request, SweepSettings};

/// A piece of the shared trace as shown.
#[derive(Debug, Clone, PartialEq)]
pub enum TracePiece {
    Text(String),
    Wait(usize),
    /// These budgets stop thinking here.
    Cut {
        budgets: Vec<usize>,
        think_tokens: usize,
        budget_exhausted: bool,
    },
}

#[derive(Clone, Copy)]
pub struct SweepState {
    pub running: RwSignal<bool>,
    pub pieces: RwSignal<Vec<TracePiece>>,
    /// The answer text of each cut as it streams, keyed by the cut's smallest budget.
    pub answers: RwSignal<Vec<(usize, String)>>,
    pub results: RwSignal<Vec<BudgetResult>>,
    pub summary: RwSignal<Option<SweepSummary>>,
    pub think_tokens: RwSignal<usize>,
    /// Tokens sampled so far (thinking and answers).
    pub clock: TokenClock,
}

impl SweepState {
    pub fn new() -> Self {
        Self {
            running: RwSignal::new(false),
            pieces: RwSignal::new(Vec::new()),
            answers: RwSignal::new(Vec::new()),
            results: RwSignal::new(Vec::new()),
            summary: RwSignal::new(None),
            think_tokens: RwSignal::new(0),
            clock: TokenClock::new(),
        }
    }

    fn start(&self) {
        self.running.set(true);
        self.pieces.set(Vec::new());
        self.answers.set(Vec::new());
        self.results.set(Vec::new());
        self.summary.set(None);
        self.think_tokens.set(0);
        self.clock.reset();
    }

    pub fn apply(&self, ev: SweepEvent) {
        match ev {
            SweepEvent::Prompt { .. } => {}
            SweepEvent::Think { text, .. } => {
                self.clock.tick(now_ms());
                self.think_tokens.update(|n| *n += 1);
                if !text.is_empty() {
                    self.pieces.update(|p| match p.last_mut() {
                        Some(TracePiece::Text(t)) => t.push_str(&text),
                        _ => p.push(TracePiece::Text(text)),
                    });
                }
            }
            SweepEvent::Wait { index, .. } => {
                self.pieces.update(|p| p.push(TracePiece::Wait(index)))
            }
            SweepEvent::Cut {
                budgets,
                think_tokens,
                budget_exhausted,
                ..
            } => {
                let first = budgets.first().copied().unwrap_or_default();
                self.pieces.update(|p| {
                    p.push(TracePiece::Cut {
                        budgets,
                        think_tokens,
                        budget_exhausted,
                    })
                });
                self.answers.update(|a| a.push((first, String::new())));
            }
            SweepEvent::Answer { budget, text, .. } => {
                self.clock.tick(now_ms());
                self.answers.update(|a| {
                    if let Some((_, t)) = a.iter_mut().rev().find(|(b, _)| *b == budget) {
                        t.push_str(&text);
                    }
                });
            }
            SweepEvent::Budget(r) => self.results.update(|rs| rs.push(r)),
            SweepEvent::Done(summary) => {
                self.running.set(false);
                self.summary.set(Some(summary.clone()));
                settle(Ok(summary));
            }
        }
    }

    /// The run ended in an error (reported by the worker): no `done` will come.
    pub fn fail(&self, message: &str) {
        if self.running.get_untracked() {
            self.running.set(false);
            settle(Err(message.to_string()));
        }
    }
}

/// The outcome of the sweep in flight, and who waits for it.
#[derive(Default)]
struct Pending {
    outcome: Option<Result<SweepSummary, String>>,
    waker: Option<Waker>,
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

fn settle(outcome: Result<SweepSummary, String>) {
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            p.outcome = Some(outcome);
            if let Some(w) = p.waker.take() {
                w.wake();
            }
        }
    });
}

/// Runs one sweep in the worker and resolves with its summary (a stopped sweep's too, with
/// stop `cancelled`), or with the worker's error message.
pub async fn run(
    engine: &EngineHandle,
    sweep: SweepState,
    question: Question,
    settings: SweepSettings,
) -> Result<SweepSummary, String> {
    sweep.start();
    PENDING.with(|p| *p.borrow_mut() = Some(Pending::default()));
    engine.send(&Request::Sweep { question, settings });
    let outcome = std::future::poll_fn(|cx| {
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let Some(pending) = p.as_mut() else {
                return Poll::Ready(Err("the sweep was abandoned".to_string()));
            };
            match pending.outcome.take() {
                Some(o) => Poll::Ready(o),
                None => {
                    pending.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    })
    .await;
    PENDING.with(|p| *p.borrow_mut() = None);
    outcome
}
