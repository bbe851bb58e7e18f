//! A budget sweep: the answers at several thinking budgets from one thinking trace.
//!
//! Under greedy decoding (and under seeded sampling, whose draws are keyed by seed and
//! position, never by a running RNG state) the thinking at budget B is the first B tokens of
//! the thinking at any larger budget. So a sweep over B1 < B2 < … < Bn thinks once, to Bn,
//! and at each point where a budget stops thinking it branches off that budget's forced
//! answer, then rewinds the sequence to the branch point and thinks on.
//!
//! Equality with separate runs holds by construction rather than by a second copy of the
//! rules: the sweep drives one ordinary [`Controller`] per budget, all in lockstep while they
//! ask for the same step. Where their steps part (one budget's controller forces its answer,
//! the others feed the token it cut at; after a natural end, small budgets answer while
//! larger ones insert "Wait"), the group splits: the smallest budgets run on to their end,
//! then the sequence is rewound to the split and the rest resume with the step they asked
//! for. Each controller therefore sees exactly the tokens, in exactly the feed batches, of
//! a run at its own budget. Budgets that stop thinking at the same point (a natural end
//! before several of them) stay one group, so their answer is decoded once.
//!
//! Like the controller, this never runs the model or reads a clock; the driver
//! (`backend::run_sweep`) performs its [`SweepStep`]s.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::codec::TextCodec;
use super::controller::{encode_text, Controller, ReasonConfig, Step, DEFAULT_MAX_ANSWER_TOKENS};
use super::events::{Event, StopReason, Summary};
use super::prompt::{m1_prompt, Question};
use super::ReasonError;

/// The page's and the CLI's default budgets: the paper's range, up to where accuracy
/// saturates.
pub const DEFAULT_SWEEP_BUDGETS: [usize; 6] = [128, 256, 512, 1024, 2048, 4096];

/// Settings of one sweep: the budgets, and what every budget's run shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SweepConfig {
    /// Thinking budgets, in any order; duplicates count once.
    pub budgets: Vec<usize>,
    pub waits: usize,
    pub min_thinking: usize,
    pub max_answer_tokens: usize,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            budgets: DEFAULT_SWEEP_BUDGETS.to_vec(),
            waits: 0,
            min_thinking: 0,
            max_answer_tokens: DEFAULT_MAX_ANSWER_TOKENS,
        }
    }
}

impl SweepConfig {
    /// The settings of a separate run at `budget`, which the sweep's result must equal.
    pub fn run_config(&self, budget: usize) -> ReasonConfig {
        ReasonConfig {
            budget,
            waits: self.waits,
            min_thinking: self.min_thinking,
            max_answer_tokens: self.max_answer_tokens,
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepStep {
    /// Append these tokens and compute the logits after the last one.
    Feed(Vec<u32>),
    /// Pick the next token and report it with [`Sweep::on_token`].
    Sample,
    /// Cut the sequence back to its first `n` positions (`Backend::rewind`): a branch's
    /// answer is done and thinking goes on from where it branched off.
    Rewind(usize),
    /// The sweep is over; asking again returns the same summary.
    Done(SweepSummary),
}

/// One step of a sweep's progress, serialized like [`Event`] as
/// `{"event": "<snake_case name>", ...fields}`.
///
/// The `prompt`, `think` and `wait` events are the shared trace: the thinking of the
/// largest budget, which every smaller budget's thinking is a prefix of. A `cut` marks
/// where some budgets stop thinking: it comes after the last trace event they share and
/// before anything they do not (so a cut after a natural end precedes the "Wait" that
/// larger budgets go on with). The cut's answer tokens follow, then one `budget` event for
/// each budget of the cut. `done` is last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SweepEvent {
    Prompt {
        tokens: Vec<u32>,
    },
    Think {
        id: u32,
        text: String,
    },
    Wait {
        index: usize,
        text: String,
    },
    /// These budgets stop thinking here and their answer is forced.
    Cut {
        /// Ascending; more than one when thinking ended naturally before all of them.
        budgets: Vec<usize>,
        /// The sequence position the answer branches off at (prompt included).
        position: usize,
        /// Thinking tokens of the trace up to here (forced "Wait"s excluded).
        think_tokens: usize,
        /// What the budget was charged up to here ("Wait"s included).
        budget_used: usize,
        /// As [`Event::AnswerPrefix`].
        thinking_tail: String,
        text: String,
        budget_exhausted: bool,
    },
    /// One answer token of the latest cut; `budget` is its smallest budget.
    Answer {
        budget: usize,
        id: u32,
        text: String,
    },
    /// A budget's outcome, exactly a separate run's at that budget.
    Budget(BudgetResult),
    Done(SweepSummary),
}

/// The outcome at one budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetResult {
    pub budget: usize,
    /// The smallest budget of the cut this answer was decoded for: this budget itself,
    /// or a smaller one whose answer it shares (thinking ended before both).
    pub answered_with: usize,
    /// The sequence position the answer branched off at.
    pub position: usize,
    /// The answer's token ids (stop token excluded), as the run's `answer` events give them.
    pub answer_ids: Vec<u32>,
    /// From the sweep's start to this budget's cut, and from the cut to its answer's end.
    pub cut_ms: Option<f64>,
    pub answer_ms: Option<f64>,
    /// The summary a separate run at this budget gives (its timings are the sweep's clock).
    pub summary: Summary,
}

/// The outcome of a sweep, carried by [`SweepEvent::Done`] and [`SweepStep::Done`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// `natural` when every budget was answered, `cancelled` after [`Sweep::cancel`].
    pub stop: StopReason,
    /// Every budget, ascending (cancelled ones with stop `cancelled`).
    pub results: Vec<BudgetResult>,
    pub prompt_tokens: usize,
    /// Thinking tokens of the shared trace (the largest budget's).
    pub think_tokens: usize,
    /// Tokens the backend was given (prompt, thinking, forced text, answers; tokens fed
    /// again after a rewind count again): the prefill and decode work done.
    pub fed_tokens: usize,
    /// Samples taken: the decode steps.
    pub sampled_tokens: usize,
    pub rewinds: usize,
    pub total_ms: f64,
}

/// One budget's controller and what the sweep has read from it.
#[derive(Debug)]
struct Member<C> {
    budget: usize,
    ctl: Controller<C>,
    /// Its events not yet consumed: they are emitted once for every member of a group that
    /// has them in common.
    queue: VecDeque<Event>,
    think_tokens: usize,
    answer_ids: Vec<u32>,
    /// (position, ms since start, smallest budget of the cut) once its answer was forced.
    cut: Option<(usize, f64, usize)>,
    result: Option<BudgetResult>,
}

/// Members that ask for the same step; `step` is the one they asked for and the driver has
/// not performed yet.
#[derive(Debug, Default)]
struct Group {
    members: Vec<usize>,
    step: Option<Step>,
    /// Where the sequence must be rewound to before `step` (a group set aside at a split).
    resume_at: usize,
}

/// Drives one question through a budget sweep; see the module documentation.
#[derive(Debug)]
pub struct Sweep<C> {
    /// Ascending budgets; the last one owns the shared trace.
    members: Vec<Member<C>>,
    active: Group,
    /// Groups set aside at splits; the last is resumed next (the smallest budgets).
    waiting: Vec<Group>,
    events: VecDeque<SweepEvent>,
    position: usize,
    awaiting_token: bool,
    start_ms: Option<f64>,
    fed_tokens: usize,
    sampled_tokens: usize,
    rewinds: usize,
    summary: Option<SweepSummary>,
}

impl<C: TextCodec + Clone> Sweep<C> {
    /// A sweep over an already encoded m1 prompt (ending with the thinking prefix).
    pub fn new(codec: C, prompt: Vec<u32>, config: &SweepConfig) -> Result<Self, ReasonError> {
        Self::build(codec, prompt, config, Vec::new())
    }

    /// A sweep for `question`: the recipe's prompt, and the chosen option at each budget.
    pub fn for_question(
        codec: C,
        question: &Question,
        config: &SweepConfig,
    ) -> Result<Self, ReasonError> {
        let prompt = encode_text(&codec, &m1_prompt(question))?;
        Self::build(codec, prompt, config, question.options.clone())
    }

    fn build(
        codec: C,
        prompt: Vec<u32>,
        config: &SweepConfig,
        options: Vec<(String, String)>,
    ) -> Result<Self, ReasonError> {
        let mut budgets = config.budgets.clone();
        budgets.sort_unstable();
        budgets.dedup();
        if budgets.is_empty() {
            return Err(ReasonError::NoBudgets);
        }
        let members = budgets
            .into_iter()
            .map(|budget| {
                let ctl = Controller::reasoning(
                    codec.clone(),
                    prompt.clone(),
                    config.run_config(budget),
                )?
                .with_options(options.clone());
                Ok(Member {
                    budget,
                    ctl,
                    queue: VecDeque::new(),
                    think_tokens: 0,
                    answer_ids: Vec::new(),
                    cut: None,
                    result: None,
                })
            })
            .collect::<Result<Vec<_>, ReasonError>>()?;
        let active = Group {
            members: (0..members.len()).collect(),
            ..Group::default()
        };
        Ok(Self {
            members,
            active,
            waiting: Vec::new(),
            events: VecDeque::new(),
            position: 0,
            awaiting_token: false,
            start_ms: None,
            fed_tokens: 0,
            sampled_tokens: 0,
            rewinds: 0,
            summary: None,
        })
    }
}

impl<C: TextCodec> Sweep<C> {
    /// Options to extract each budget's chosen letter against.
    pub fn with_options(mut self, options: Vec<(String, String)>) -> Self {
        self.members = self
            .members
            .into_iter()
            .map(|mut m| {
                m.ctl = m.ctl.with_options(options.clone());
                m
            })
            .collect();
        self
    }

    /// The budgets, ascending.
    pub fn budgets(&self) -> Vec<usize> {
        self.members.iter().map(|m| m.budget).collect()
    }

    /// The longest the sequence can grow: the largest budget's run.
    pub fn max_sequence_len(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.ctl.max_sequence_len())
            .max()
            .unwrap_or(0)
    }

    /// The sequence length the steps so far have built (what `Backend::position` must be).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The next thing to do. `now_ms` of the first call marks the start.
    pub fn next_step(&mut self, now_ms: f64) -> Result<SweepStep, ReasonError> {
        if let Some(summary) = &self.summary {
            return Ok(SweepStep::Done(summary.clone()));
        }
        if self.awaiting_token {
            return Err(ReasonError::TokenNotReported);
        }
        self.start_ms.get_or_insert(now_ms);
        loop {
            if self.active.step.is_none() {
                self.split(now_ms)?;
            }
            match self.active.step.take() {
                Some(Step::Feed(tokens)) => {
                    self.position += tokens.len();
                    self.fed_tokens += tokens.len();
                    return Ok(SweepStep::Feed(tokens));
                }
                Some(Step::Sample) => {
                    self.awaiting_token = true;
                    return Ok(SweepStep::Sample);
                }
                Some(Step::Done(_)) | None => {
                    self.finish_group(now_ms);
                    let Some(next) = self.waiting.pop() else {
                        return Ok(SweepStep::Done(self.finish(StopReason::Natural, now_ms)));
                    };
                    self.active = next;
                    let members = self.active.members.clone();
                    self.emit_common(&members, now_ms);
                    if self.active.resume_at < self.position {
                        self.position = self.active.resume_at;
                        self.rewinds += 1;
                        return Ok(SweepStep::Rewind(self.position));
                    }
                }
            }
        }
    }

    /// Reports the token sampled after a [`SweepStep::Sample`]. Ignored once the sweep is
    /// over (the sample in flight when it was cancelled).
    pub fn on_token(&mut self, id: u32, now_ms: f64) -> Result<(), ReasonError> {
        if self.summary.is_some() {
            return Ok(());
        }
        if !self.awaiting_token {
            return Err(ReasonError::UnexpectedToken { id });
        }
        self.awaiting_token = false;
        self.sampled_tokens += 1;
        let members = self.active.members.clone();
        for &m in &members {
            let member = &mut self.members[m];
            member.ctl.on_token(id, now_ms)?;
            member.queue.extend(member.ctl.drain_events());
        }
        // Streamed now rather than at the next step, so a token shows as soon as it exists.
        self.emit_common(&members, now_ms);
        Ok(())
    }

    /// Ends the sweep now: budgets not answered yet end `cancelled`, and the next
    /// [`Sweep::next_step`] returns [`SweepStep::Done`]. A no-op once the sweep is over.
    pub fn cancel(&mut self, now_ms: f64) {
        if self.summary.is_some() {
            return;
        }
        for m in 0..self.members.len() {
            if self.members[m].result.is_none() {
                let member = &mut self.members[m];
                member.ctl.cancel(now_ms);
                member.queue.clear();
                member.ctl.drain_events().for_each(drop);
                self.record_result(m);
                if let Some(result) = self.members[m].result.clone() {
                    self.events.push_back(SweepEvent::Budget(result));
                }
            }
        }
        self.awaiting_token = false;
        self.finish(StopReason::Cancelled, now_ms);
    }

    /// Events queued since the last call, oldest first.
    pub fn drain_events(&mut self) -> impl Iterator<Item = SweepEvent> + '_ {
        self.events.drain(..)
    }

    pub fn summary(&self) -> Option<&SweepSummary> {
        self.summary.as_ref()
    }

    pub fn is_done(&self) -> bool {
        self.summary.is_some()
    }

    /// Asks every member of the active group for its next step and splits the group where
    /// the steps differ: the part with the smallest budgets goes on, the others wait (with
    /// their step) to be resumed at this position.
    fn split(&mut self, now_ms: f64) -> Result<(), ReasonError> {
        let members = std::mem::take(&mut self.active.members);
        let mut parts: Vec<(Step, Vec<usize>)> = Vec::new();
        for &m in &members {
            let member = &mut self.members[m];
            let step = member.ctl.next_step(now_ms)?;
            member.queue.extend(member.ctl.drain_events());
            match parts.iter_mut().find(|(s, _)| same_step(s, &step)) {
                Some((_, part)) => part.push(m),
                None => parts.push((step, vec![m])),
            }
        }
        // What they still share comes first: the token every budget thought before some of
        // them stop.
        self.emit_common(&members, now_ms);
        let mut parts = parts.into_iter();
        let Some((step, first)) = parts.next() else {
            return Ok(());
        };
        for (step, part) in parts.rev() {
            self.waiting.push(Group {
                members: part,
                step: Some(step),
                resume_at: self.position,
            });
        }
        self.active = Group {
            members: first,
            step: Some(step),
            resume_at: self.position,
        };
        let members = self.active.members.clone();
        self.emit_common(&members, now_ms);
        Ok(())
    }

    /// Emits, once, the events at the head of every member's queue that all of them share.
    fn emit_common(&mut self, group: &[usize], now_ms: f64) {
        let Some(&lead) = group.first() else {
            return;
        };
        loop {
            let Some(head) = self.members[lead].queue.front().cloned() else {
                return;
            };
            if group
                .iter()
                .any(|&m| self.members[m].queue.front() != Some(&head))
            {
                return;
            }
            for &m in group {
                self.members[m].queue.pop_front();
                self.consume(m, &head, group, now_ms);
            }
            self.emit(head, group);
        }
    }

    /// What a member's own event tells the sweep about it.
    fn consume(&mut self, m: usize, event: &Event, group: &[usize], now_ms: f64) {
        let since_start = now_ms - self.start_ms.unwrap_or(now_ms);
        let smallest = self.members[group[0]].budget;
        let position = self.position;
        let member = &mut self.members[m];
        match event {
            Event::Think { .. } => member.think_tokens += 1,
            Event::AnswerPrefix { .. } => member.cut = Some((position, since_start, smallest)),
            Event::Answer { id, .. } => member.answer_ids.push(*id),
            _ => {}
        }
    }

    fn emit(&mut self, event: Event, group: &[usize]) {
        let owns_trace = group.contains(&(self.members.len() - 1));
        let lead = &self.members[group[0]];
        let out = match event {
            Event::Prompt { tokens } if owns_trace => SweepEvent::Prompt { tokens },
            Event::Think { id, text } if owns_trace => SweepEvent::Think { id, text },
            Event::Wait { index, text } if owns_trace => SweepEvent::Wait { index, text },
            Event::AnswerPrefix {
                thinking_tail,
                text,
                budget_exhausted,
            } => SweepEvent::Cut {
                budgets: group.iter().map(|&m| self.members[m].budget).collect(),
                position: self.position,
                think_tokens: lead.think_tokens,
                budget_used: lead.ctl.budget_used(),
                thinking_tail,
                text,
                budget_exhausted,
            },
            Event::Answer { id, text } => SweepEvent::Answer {
                budget: lead.budget,
                id,
                text,
            },
            // Budgets that left the trace never think again (a smaller budget stops wherever
            // a larger one does); `done` becomes the `budget` events of `finish_group`.
            _ => return,
        };
        self.events.push_back(out);
    }

    /// The active group is done: a `budget` event for each of its members.
    fn finish_group(&mut self, now_ms: f64) {
        let members = std::mem::take(&mut self.active.members);
        self.emit_common(&members, now_ms);
        for &m in &members {
            // Left over when members' summaries differ; only `done` events remain here.
            self.members[m].queue.clear();
            self.record_result(m);
            if let Some(result) = self.members[m].result.clone() {
                self.events.push_back(SweepEvent::Budget(result));
            }
        }
    }

    fn record_result(&mut self, m: usize) {
        let member = &mut self.members[m];
        let Some(summary) = member.ctl.summary().cloned() else {
            return;
        };
        let (position, cut_ms, answered_with) = match member.cut {
            Some((p, ms, with)) => (p, Some(ms), with),
            None => (self.position, None, member.budget),
        };
        member.result = Some(BudgetResult {
            budget: member.budget,
            answered_with,
            position,
            answer_ids: member.answer_ids.clone(),
            cut_ms,
            answer_ms: cut_ms.map(|cut| summary.total_ms - cut),
            summary,
        });
    }

    fn finish(&mut self, stop: StopReason, now_ms: f64) -> SweepSummary {
        let start = self.start_ms.unwrap_or(now_ms);
        let mut results: Vec<BudgetResult> = self
            .members
            .iter()
            .filter_map(|m| m.result.clone())
            .collect();
        results.sort_by_key(|r| r.budget);
        let owner = self.members.last();
        let summary = SweepSummary {
            stop,
            results,
            prompt_tokens: owner.map_or(0, |m| m.ctl.prompt().len()),
            think_tokens: owner.map_or(0, |m| m.think_tokens),
            fed_tokens: self.fed_tokens,
            sampled_tokens: self.sampled_tokens,
            rewinds: self.rewinds,
            total_ms: now_ms - start,
        };
        self.events.push_back(SweepEvent::Done(summary.clone()));
        self.summary = Some(summary.clone());
        summary
    }
}

/// Steps that one backend operation serves: equal feeds, samples, or the end (whatever
/// each summary says).
fn same_step(a: &Step, b: &Step) -> bool {
    match (a, b) {
        (Step::Done(_), Step::Done(_)) => true,
        _ => a == b,
    }
}
