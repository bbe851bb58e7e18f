//! m1's reasoning recipe as pure logic: the prompt, budget forcing, the event stream and
//! answer extraction (notes/m1-recipe.md).
//!
//! Nothing here runs a model, reads a clock, spawns a thread or touches a file, so it builds
//! and behaves the same natively and on wasm32, and every branch is testable with a
//! scripted token list. A backend drives [`Controller`] through [`Step`]s; a tokenizer plugs
//! in through [`TextCodec`].

mod codec;
mod controller;
mod error;
mod events;
mod extract;
mod prompt;
mod score;
mod sweep;
mod text;

#[cfg(test)]
mod controller_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod sweep_tests;

pub use codec::{CodecError, SpecialTokens, TextCodec};
pub use controller::{
    ChatConfig, Controller, ReasonConfig, Step, ANSWER_PREFIX, BUDGET_ANSWER_PREFIX,
    DEFAULT_BUDGET, DEFAULT_MAX_ANSWER_TOKENS, WAIT,
};
pub use error::ReasonError;
pub use events::{Event, StopReason, Summary};
pub use extract::{extract, extract_choice, reduce_answer, ExtractRule, Extracted};
pub use prompt::{
    chat_prompt, m1_prompt, medqa_records, parse_medqa, LabeledQuestion, Question,
    BOXED_INSTRUCTION, OPTION_LETTERS, QWEN_SYSTEM_PROMPT, THINK_PREFIX,
};
pub use score::{pick_items, wilson, AccuracyRow, AccuracyTable, WILSON_Z};
pub use sweep::{
    BudgetResult, Sweep, SweepConfig, SweepEvent, SweepStep, SweepSummary, DEFAULT_SWEEP_BUDGETS,
};
pub use text::Utf8Stream;
