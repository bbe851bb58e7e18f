use thiserror::Error;

use super::codec::CodecError;

/// Everything that can go wrong in prompt building, record parsing or driving the controller.
///
/// Protocol errors (a token reported when none was asked for) mean the driver loop is wrong;
/// they are errors rather than panics because the driver runs inside the web worker, where a
/// panic would take the whole session down instead of reaching the UI.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ReasonError {
    #[error("tokenizer could not encode {text:?}: {source}")]
    Encode { text: String, source: CodecError },
    #[error("tokenizer could not decode token {id}: {source}")]
    Decode { id: u32, source: CodecError },
    #[error("forced text {text:?} encoded to no tokens")]
    EmptyEncoding { text: String },
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    #[error("token {id} reported while the controller was not waiting for a sample")]
    UnexpectedToken { id: u32 },
    #[error("next_step called again before the sampled token was reported with on_token")]
    TokenNotReported,
    #[error("a budget sweep needs at least one budget")]
    NoBudgets,
    #[error("record: {0}")]
    Record(String),
    #[error("answer {answer:?} is not one of the options {letters:?}")]
    AnswerNotAnOption {
        answer: String,
        letters: Vec<String>,
    },
}
