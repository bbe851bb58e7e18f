//! The tokenizer seam: what the controller needs from a tokenizer, and nothing more.
//!
//! The controller is pure logic over token ids; it still has to turn the forced strings of
//! the recipe ("Wait", "\n", "<|im_start|>answer…") into ids and sampled ids back into text.
//! Keeping that behind a two-method trait lets the real `tokenizers::Tokenizer` wrapper and a
//! scripted test vocabulary drive the same state machine.

use std::ops::Deref;

use thiserror::Error;

/// A tokenizer failure, carried as text because the real tokenizer's error type is a boxed
/// `dyn Error` that is neither `Clone` nor `Send` on every target.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct CodecError {
    pub message: String,
}

impl CodecError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Ids of the ChatML control tokens that end or steer generation.
///
/// They come from the model's vocabulary (a ChatML model that is not Qwen, e.g. SmolLM2,
/// numbers them differently), so the codec reports them instead of the controller assuming
/// Qwen's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `<|im_start|>`: opens a turn; m1 emits it to close its thinking.
    pub im_start: u32,
    /// `<|im_end|>`: closes a turn.
    pub im_end: u32,
    /// `<|endoftext|>`; set it to `eos` where the vocabulary has no such token.
    pub end_of_text: u32,
    /// The model's end-of-sequence id from its metadata (Qwen2.5-Instruct: `<|im_end|>`).
    pub eos: u32,
}

impl SpecialTokens {
    /// Qwen2/Qwen2.5 numbering, which m1 inherits (recipe: 151644, 151645, 151643).
    pub const QWEN2: SpecialTokens = SpecialTokens {
        im_start: 151_644,
        im_end: 151_645,
        end_of_text: 151_643,
        eos: 151_645,
    };

    /// Tokens that end a thinking or answer phase of m1.
    ///
    /// The recipe stops on `<|im_start|>`/`<|im_end|>`; the reference evaluation server also
    /// stopped on the model's EOS ids (`<|endoftext|>` included), so those end a phase too
    /// rather than being fed back into the context.
    pub fn is_reasoning_stop(&self, id: u32) -> bool {
        id == self.im_start || id == self.im_end || id == self.end_of_text || id == self.eos
    }

    /// Tokens that end a plain chat reply. `<|im_start|>` is not one: a chat model emits
    /// `<|im_end|>` first, and m1's use of `<|im_start|>` as a phase marker does not apply.
    pub fn is_chat_stop(&self, id: u32) -> bool {
        id == self.im_end || id == self.end_of_text || id == self.eos
    }
}

/// What the reasoning controller needs from a tokenizer.
///
/// `encode` must recognise ChatML special tokens written in the text (so
/// `"<|im_start|>answer"` starts with the `<|im_start|>` id, not with the characters `<`, `|`…)
/// and must not add BOS/EOS: forced text is appended mid-sequence.
pub trait TextCodec {
    /// Token ids for `text`, special tokens parsed, nothing added.
    fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError>;

    /// The raw bytes one token stands for. Byte-level BPE tokens can hold part of a UTF-8
    /// character, so this is bytes, not a `String`; the controller reassembles characters.
    fn token_bytes(&self, id: u32) -> Result<Vec<u8>, CodecError>;

    /// The control token ids of this vocabulary.
    fn special_tokens(&self) -> SpecialTokens;
}

// Forwarding through any pointer (`&T`, `Rc`, `Arc`, `Box`) so a driver can hand the
// controller a borrowed or shared tokenizer (the web worker keeps one tokenizer for many
// questions) without the controller owning it.
impl<P> TextCodec for P
where
    P: Deref,
    P::Target: TextCodec,
{
    fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError> {
        (**self).encode(text)
    }
    fn token_bytes(&self, id: u32) -> Result<Vec<u8>, CodecError> {
        (**self).token_bytes(id)
    }
    fn special_tokens(&self) -> SpecialTokens {
        (**self).special_tokens()
    }
}
