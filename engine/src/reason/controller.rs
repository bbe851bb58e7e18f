//! m1's budget forcing as a state machine over token ids.
//!
//! The controller never runs the model and never reads a clock: it tells the driver what to
//! do next ([`Step`]), is told which token was sampled and when, and queues [`Event`]s. The
//! same controller therefore serves the GPU and CPU backends, the native CLI and the wasm
//! worker, and tests drive it with a scripted token list and a fake clock.
//!
//! The rules are those of the m1 evaluation (notes/m1-recipe.md, `inference_keep_think.py`):
//! greedy thinking up to `budget` tokens, optional "Wait" extensions after a natural end,
//! then a forced answer prefix and up to `max_answer_tokens` answer tokens.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::codec::{SpecialTokens, TextCodec};
use super::events::{Event, StopReason, Summary};
use super::extract::extract;
use super::prompt::{chat_prompt, m1_prompt, Question};
use super::text::Utf8Stream;
use super::ReasonError;

/// The string forced after a natural end of thinking (config `keep_think_below_budget_str`).
pub const WAIT: &str = "Wait";
/// Answer prefix after thinking ended on its own (config `start_answer_str`).
pub const ANSWER_PREFIX: &str = "<|im_start|>answer";
/// Answer prefix after the budget ran out (config `start_overthink_answer_str`): the extra
/// "Final Answer:" pushes a model cut off mid-thought to commit.
pub const BUDGET_ANSWER_PREFIX: &str = "<|im_start|>answer\nFinal Answer:";

/// Default thinking budget: the paper's accuracy saturates around 4K thinking tokens.
pub const DEFAULT_BUDGET: usize = 4096;
/// The evaluation's answer cap (`max_new_answer_tokens`).
pub const DEFAULT_MAX_ANSWER_TOKENS: usize = 1024;

/// Settings of one m1 run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReasonConfig {
    /// Thinking tokens allowed, forced "Wait" tokens included; 0 skips thinking entirely.
    pub budget: usize,
    /// How many times a natural end of thinking is replaced by "Wait" (paper: 0..8).
    pub waits: usize,
    /// Minimum thinking (s1's recipe, which m1 builds on): a natural end before this many
    /// budget tokens is replaced by "Wait" however often it comes, without counting
    /// against `waits`. 0 turns it off.
    pub min_thinking: usize,
    pub max_answer_tokens: usize,
}

impl Default for ReasonConfig {
    fn default() -> Self {
        Self {
            budget: DEFAULT_BUDGET,
            waits: 0,
            min_thinking: 0,
            max_answer_tokens: DEFAULT_MAX_ANSWER_TOKENS,
        }
    }
}

/// Settings of a plain chat reply (models that are not m1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatConfig {
    pub max_tokens: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_ANSWER_TOKENS,
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Append these tokens to the sequence and run the model over them; the next `Sample`
    /// reads the logits after the last one.
    Feed(Vec<u32>),
    /// Pick the next token from the current logits (m1's recipe: greedy) and report it
    /// with [`Controller::on_token`].
    Sample,
    /// The run is over; asking again returns the same summary.
    Done(Summary),
}

/// Forced strings, encoded once up front so a tokenizer failure surfaces before any
/// compute is spent, not halfway through a long thinking phase.
#[derive(Debug, Clone)]
struct Forced {
    wait: Vec<u32>,
    spaced_wait: Vec<u32>,
    newline: Vec<u32>,
    answer: Vec<u32>,
    budget_answer: Vec<u32>,
}

#[derive(Debug, Clone)]
enum Mode {
    Reason {
        config: ReasonConfig,
        forced: Forced,
    },
    Chat {
        config: ChatConfig,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Thinking,
    Answering,
    Chatting,
    Done,
}

/// Drives one question through m1's budget forcing (or one plain chat reply).
///
/// A driver loop (timestamps in milliseconds from any monotonic origin:
/// `performance.now()` in the browser, an `Instant` natively):
///
/// ```ignore
/// let mut ctl = Controller::reasoning_for(&tokenizer, &question, ReasonConfig::default())?;
/// let summary = loop {
///     match ctl.next_step(clock.now_ms())? {
///         Step::Feed(tokens) => backend.feed(&tokens)?,
///         Step::Sample => {
///             let id = backend.argmax()?;
///             ctl.on_token(id, clock.now_ms())?;
///         }
///         Step::Done(summary) => break summary,
///     }
///     for event in ctl.drain_events() {
///         emit(serde_json::to_string(&event)?); // one JSON line per event
///     }
///     if cancel_requested() {
///         ctl.cancel(clock.now_ms());
///     }
/// };
/// for event in ctl.drain_events() { emit(serde_json::to_string(&event)?); } // the `done` event
/// ```
///
/// One controller serves one question; make a new one for the next (construction only
/// encodes a few short strings).
#[derive(Debug)]
pub struct Controller<C> {
    codec: C,
    special: SpecialTokens,
    mode: Mode,
    prompt: Vec<u32>,
    options: Vec<(String, String)>,

    phase: Phase,
    pending_feed: Vec<u32>,
    awaiting_token: bool,
    decoder: Utf8Stream,
    events: VecDeque<Event>,

    thinking: String,
    answer_prefix: String,
    answer: String,
    think_tokens: usize,
    waits: usize,
    /// Waits that count against `ReasonConfig::waits` (those past `min_thinking`).
    counted_waits: usize,
    budget_used: usize,
    answer_tokens: usize,
    sampled_tokens: usize,
    think_stop: Option<StopReason>,
    summary: Option<Summary>,

    start_ms: Option<f64>,
    first_token_ms: Option<f64>,
    last_token_ms: Option<f64>,
    prefill_tokens: usize,
}

impl<C: TextCodec> Controller<C> {
    /// An m1 run over an already encoded prompt (which must end with the thinking prefix,
    /// see [`m1_prompt`]).
    pub fn reasoning(
        codec: C,
        prompt: Vec<u32>,
        config: ReasonConfig,
    ) -> Result<Self, ReasonError> {
        let forced = Forced {
            wait: encode_forced(&codec, WAIT)?,
            spaced_wait: encode_forced(&codec, &format!(" {WAIT}"))?,
            newline: encode_forced(&codec, "\n")?,
            answer: encode_forced(&codec, ANSWER_PREFIX)?,
            budget_answer: encode_forced(&codec, BUDGET_ANSWER_PREFIX)?,
        };
        Self::new(codec, prompt, Mode::Reason { config, forced })
    }

    /// A plain chat reply over an already encoded prompt (see [`chat_prompt`]).
    pub fn chat(codec: C, prompt: Vec<u32>, config: ChatConfig) -> Result<Self, ReasonError> {
        Self::new(codec, prompt, Mode::Chat { config })
    }

    /// An m1 run for `question`: builds the recipe's prompt, encodes it, and extracts the
    /// chosen option at the end.
    pub fn reasoning_for(
        codec: C,
        question: &Question,
        config: ReasonConfig,
    ) -> Result<Self, ReasonError> {
        let prompt = encode_text(&codec, &m1_prompt(question))?;
        Ok(Self::reasoning(codec, prompt, config)?.with_options(question.options.clone()))
    }

    /// A plain chat reply to `question` under `system`, with choice extraction.
    pub fn chat_for(
        codec: C,
        system: &str,
        question: &Question,
        config: ChatConfig,
    ) -> Result<Self, ReasonError> {
        let prompt = encode_text(&codec, &chat_prompt(system, &question.user_message()))?;
        Ok(Self::chat(codec, prompt, config)?.with_options(question.options.clone()))
    }

    /// Options to extract the chosen letter against when the run ends.
    pub fn with_options(mut self, options: Vec<(String, String)>) -> Self {
        self.options = options;
        self
    }

    fn new(codec: C, prompt: Vec<u32>, mode: Mode) -> Result<Self, ReasonError> {
        if prompt.is_empty() {
            return Err(ReasonError::EmptyPrompt);
        }
        let special = codec.special_tokens();
        Ok(Self {
            codec,
            special,
            mode,
            prompt,
            options: Vec::new(),
            phase: Phase::Start,
            pending_feed: Vec::new(),
            awaiting_token: false,
            decoder: Utf8Stream::new(),
            events: VecDeque::new(),
            thinking: String::new(),
            answer_prefix: String::new(),
            answer: String::new(),
            think_tokens: 0,
            waits: 0,
            counted_waits: 0,
            budget_used: 0,
            answer_tokens: 0,
            sampled_tokens: 0,
            think_stop: None,
            summary: None,
            start_ms: None,
            first_token_ms: None,
            last_token_ms: None,
            prefill_tokens: 0,
        })
    }

    /// The longest the token sequence can grow in this run, so the driver can check it
    /// against the context size (KV cache) before prefilling anything.
    pub fn max_sequence_len(&self) -> usize {
        match &self.mode {
            Mode::Reason { config, forced } => {
                let prefix = forced.answer.len().max(forced.budget_answer.len());
                self.prompt.len()
                    + config.budget
                    + forced.newline.len()
                    + prefix
                    + config.max_answer_tokens
            }
            Mode::Chat { config } => self.prompt.len() + config.max_tokens,
        }
    }

    /// The next thing to do. `now_ms` of the first call marks the start of the run.
    pub fn next_step(&mut self, now_ms: f64) -> Result<Step, ReasonError> {
        if let Some(summary) = &self.summary {
            return Ok(Step::Done(summary.clone()));
        }
        if self.awaiting_token {
            return Err(ReasonError::TokenNotReported);
        }
        if self.phase == Phase::Start {
            self.begin(now_ms);
            if let Some(summary) = &self.summary {
                return Ok(Step::Done(summary.clone()));
            }
        }
        if !self.pending_feed.is_empty() {
            let tokens = std::mem::take(&mut self.pending_feed);
            if self.first_token_ms.is_none() {
                self.prefill_tokens += tokens.len();
            }
            return Ok(Step::Feed(tokens));
        }
        self.awaiting_token = true;
        Ok(Step::Sample)
    }

    /// Reports the token sampled after a [`Step::Sample`], at `now_ms`.
    ///
    /// A token reported after the run ended is ignored: it is the sample that was in flight
    /// when [`Controller::cancel`] was called.
    pub fn on_token(&mut self, id: u32, now_ms: f64) -> Result<(), ReasonError> {
        if self.summary.is_some() {
            return Ok(());
        }
        if !self.awaiting_token {
            return Err(ReasonError::UnexpectedToken { id });
        }
        let is_stop = match self.phase {
            Phase::Thinking | Phase::Answering => self.special.is_reasoning_stop(id),
            Phase::Chatting => self.special.is_chat_stop(id),
            Phase::Start | Phase::Done => return Err(ReasonError::UnexpectedToken { id }),
        };
        // Decode before changing any state, so a decode error leaves the controller as it was.
        let bytes = if is_stop {
            None
        } else {
            Some(
                self.codec
                    .token_bytes(id)
                    .map_err(|source| ReasonError::Decode { id, source })?,
            )
        };

        self.awaiting_token = false;
        self.sampled_tokens += 1;
        self.first_token_ms.get_or_insert(now_ms);
        self.last_token_ms = Some(now_ms);

        match (self.phase, bytes) {
            (Phase::Thinking, None) => self.end_thinking(StopReason::Natural, now_ms),
            (Phase::Thinking, Some(bytes)) => {
                let text = self.decoder.push(&bytes);
                self.thinking.push_str(&text);
                self.think_tokens += 1;
                self.budget_used += 1;
                self.events.push_back(Event::Think { id, text });
                // A kept token joins the context before the next sample.
                self.pending_feed.push(id);
                if self.budget_used >= self.budget() {
                    self.end_thinking(StopReason::Budget, now_ms);
                }
            }
            (_, None) => self.finish(StopReason::Natural, now_ms),
            (_, Some(bytes)) => {
                let mut text = self.decoder.push(&bytes);
                self.answer_tokens += 1;
                let capped = self.answer_tokens >= self.answer_cap();
                if capped {
                    // Nothing follows this token, so an incomplete character ends here.
                    text.push_str(&self.decoder.finish());
                }
                self.answer.push_str(&text);
                self.events.push_back(Event::Answer { id, text });
                if capped {
                    self.finish(StopReason::MaxTokens, now_ms);
                } else {
                    self.pending_feed.push(id);
                }
            }
        }
        Ok(())
    }

    /// Ends the run now; the next [`Controller::next_step`] returns [`Step::Done`] with stop
    /// reason `cancelled`. Safe at any point, and a no-op once the run is over.
    pub fn cancel(&mut self, now_ms: f64) {
        if self.summary.is_some() {
            return;
        }
        if matches!(self.mode, Mode::Reason { .. }) && self.think_stop.is_none() {
            self.think_stop = Some(StopReason::Cancelled);
        }
        self.finish(StopReason::Cancelled, now_ms);
    }

    /// Events queued since the last call, oldest first.
    pub fn drain_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.events.drain(..)
    }

    /// The summary once the run is over.
    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_ref()
    }

    pub fn is_done(&self) -> bool {
        self.summary.is_some()
    }

    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// What the thinking budget has been charged so far (thinking tokens and forced "Wait"s).
    pub fn budget_used(&self) -> usize {
        self.budget_used
    }

    fn begin(&mut self, now_ms: f64) {
        self.start_ms = Some(now_ms);
        self.events.push_back(Event::Prompt {
            tokens: self.prompt.clone(),
        });
        self.pending_feed = self.prompt.clone();
        match &self.mode {
            Mode::Reason { config, .. } => {
                self.phase = Phase::Thinking;
                // With no budget there is nothing to think: force the answer straight after
                // the prompt, as a reference run with max_tokens 0 ends on "length".
                if config.budget == 0 {
                    self.end_thinking(StopReason::Budget, now_ms);
                }
            }
            Mode::Chat { config } => {
                self.phase = Phase::Chatting;
                if config.max_tokens == 0 {
                    self.finish(StopReason::MaxTokens, now_ms);
                }
            }
        }
    }

    fn budget(&self) -> usize {
        match &self.mode {
            Mode::Reason { config, .. } => config.budget,
            Mode::Chat { .. } => 0,
        }
    }

    fn answer_cap(&self) -> usize {
        match &self.mode {
            Mode::Reason { config, .. } => config.max_answer_tokens,
            Mode::Chat { config } => config.max_tokens,
        }
    }

    /// Thinking stopped (`Natural`: a stop token, which is dropped; `Budget`: the budget is
    /// spent). Either insert a "Wait" and keep thinking, or force the answer.
    fn end_thinking(&mut self, reason: StopReason, now_ms: f64) {
        let Mode::Reason { config, forced } = &self.mode else {
            return;
        };
        let flushed = self.decoder.finish();
        self.thinking.push_str(&flushed);

        // s1's minimum thinking: an end before `min_thinking` budget tokens is not accepted,
        // however many "Wait"s that takes; only ends past it spend the `waits` allowance.
        let below_minimum = self.budget_used < config.min_thinking;
        if reason == StopReason::Natural
            && (below_minimum || self.counted_waits < config.waits)
            && self.budget_used < config.budget
        {
            // The reference adds a space only after a trailing space (not after a newline),
            // so a space-ended thought reads "…  Wait".
            let spaced = self.thinking.ends_with(' ') && !self.thinking.ends_with('\n');
            let (text, tokens) = if spaced {
                (format!(" {WAIT}"), &forced.spaced_wait)
            } else {
                (WAIT.to_string(), &forced.wait)
            };
            // "Wait" is charged to the budget; when it would use the rest of it, the
            // reference skips the extension and answers as after a natural end.
            if self.budget_used + tokens.len() < config.budget {
                self.waits += 1;
                if !below_minimum {
                    self.counted_waits += 1;
                }
                self.budget_used += tokens.len();
                self.pending_feed.extend_from_slice(tokens);
                self.thinking.push_str(&text);
                self.events.push_back(Event::Wait {
                    index: self.waits,
                    text: flushed + &text,
                });
                return;
            }
        }

        let mut tail = flushed;
        if !self.thinking.ends_with('\n') {
            self.thinking.push('\n');
            tail.push('\n');
            self.pending_feed.extend_from_slice(&forced.newline);
        }
        let budget_exhausted = reason == StopReason::Budget;
        let (prefix, tokens) = if budget_exhausted {
            (BUDGET_ANSWER_PREFIX, &forced.budget_answer)
        } else {
            (ANSWER_PREFIX, &forced.answer)
        };
        self.pending_feed.extend_from_slice(tokens);
        self.answer_prefix = prefix.to_string();
        self.think_stop = Some(reason);
        self.events.push_back(Event::AnswerPrefix {
            thinking_tail: tail,
            text: prefix.to_string(),
            budget_exhausted,
        });
        self.phase = Phase::Answering;
        if config.max_answer_tokens == 0 {
            self.finish(StopReason::MaxTokens, now_ms);
        }
    }

    fn finish(&mut self, stop: StopReason, now_ms: f64) {
        let flushed = self.decoder.finish();
        match self.phase {
            Phase::Start | Phase::Thinking => self.thinking.push_str(&flushed),
            Phase::Answering | Phase::Chatting | Phase::Done => self.answer.push_str(&flushed),
        }
        self.phase = Phase::Done;
        self.pending_feed.clear();
        self.awaiting_token = false;

        // Scored on prefix + answer, as the reference scored its `response_text`.
        let extracted = extract(
            &format!("{}{}", self.answer_prefix, self.answer),
            &self.options,
        );
        let start = self.start_ms.unwrap_or(now_ms);
        let time_to_first_token_ms = self.first_token_ms.map(|first| first - start);
        let prefill_tokens_per_s =
            time_to_first_token_ms.and_then(|ms| rate(self.prefill_tokens, ms));
        let decode_tokens_per_s = match (self.first_token_ms, self.last_token_ms) {
            (Some(first), Some(last)) if self.sampled_tokens > 1 => {
                rate(self.sampled_tokens - 1, last - first)
            }
            _ => None,
        };
        let summary = Summary {
            stop,
            think_stop: self.think_stop,
            prompt_tokens: self.prompt.len(),
            think_tokens: self.think_tokens,
            waits: self.waits,
            budget_used: self.budget_used,
            answer_tokens: self.answer_tokens,
            sampled_tokens: self.sampled_tokens,
            thinking: self.thinking.clone(),
            answer_prefix: self.answer_prefix.clone(),
            answer: self.answer.clone(),
            choice: extracted.as_ref().map(|e| e.letter.clone()),
            choice_rule: extracted.map(|e| e.rule),
            time_to_first_token_ms,
            prefill_tokens_per_s,
            decode_tokens_per_s,
            total_ms: now_ms - start,
        };
        self.events.push_back(Event::Done(summary.clone()));
        self.summary = Some(summary);
    }
}

/// Tokens per second, or `None` when the interval gives no meaningful number (JSON has no
/// infinity, and a zero-length window says nothing about speed).
fn rate(tokens: usize, ms: f64) -> Option<f64> {
    let per_s = tokens as f64 * 1000.0 / ms;
    (ms > 0.0 && per_s.is_finite()).then_some(per_s)
}

pub(super) fn encode_text<C: TextCodec>(codec: &C, text: &str) -> Result<Vec<u32>, ReasonError> {
    codec.encode(text).map_err(|source| ReasonError::Encode {
        text: text.to_string(),
        source,
    })
}

fn encode_forced<C: TextCodec>(codec: &C, text: &str) -> Result<Vec<u32>, ReasonError> {
    let tokens = encode_text(codec, text)?;
    if tokens.is_empty() {
        return Err(ReasonError::EmptyEncoding {
            text: text.to_string(),
        });
    }
    Ok(tokens)
}
