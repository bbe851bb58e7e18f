//! Showing a run's events: JSON lines, or text for a person (dim thinking, headed answer).

use std::io::{IsTerminal, Write};

use m1_engine::reason::{Event, StopReason, Summary, ANSWER_PREFIX};
use serde_json::Value;

use super::error::CliError;

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// A live "tokens so far / budget" marker in the thinking text every this many tokens,
/// on a terminal only (it would corrupt text that is piped on).
const COUNTER_EVERY: usize = 256;

/// Whether stdout gets ANSI styling: a terminal, and no NO_COLOR (no-color.org).
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// What kind of run is being shown.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// m1 reasoning with this thinking budget.
    Reason { budget: usize },
    /// A plain reply (`generate`).
    Chat,
}

pub struct Printer<W: Write> {
    out: W,
    json: bool,
    color: bool,
    mode: Mode,
    think_tokens: usize,
    at_line_start: bool,
    error: Option<std::io::Error>,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, json: bool, color: bool, mode: Mode) -> Self {
        Self {
            out,
            json,
            color: color && !json,
            mode,
            think_tokens: 0,
            at_line_start: true,
            error: None,
        }
    }

    /// True once output failed (e.g. the reader of a pipe went away): the run should stop.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Shows one event. Output errors are remembered, not returned, because this runs inside
    /// the driver's event callback; [`Printer::finish`] reports them.
    pub fn event(&mut self, event: &Event) {
        if self.error.is_some() {
            return;
        }
        let result = if self.json {
            self.json_line(event)
        } else {
            self.text(event)
        };
        if let Err(e) = result.and_then(|()| self.out.flush()) {
            self.error = Some(e);
        }
    }

    /// Ok when all output was written, or when the reader closed the pipe (nothing left to
    /// tell it; exiting quietly is what `m1 ... | head` expects).
    pub fn finish(mut self) -> Result<(), CliError> {
        if self.error.is_none() {
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
        match self.error {
            Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
            _ => Ok(()),
        }
    }

    fn json_line(&mut self, event: &Event) -> std::io::Result<()> {
        // Only `done` is rewritten (through a Value, whose keys come out sorted); the others
        // serialize straight from their types so "event" leads each line.
        let line = match event {
            Event::Done(_) => event_json(event).map(|v| v.to_string()),
            _ => serde_json::to_string(event),
        };
        writeln!(self.out, "{}", line.map_err(std::io::Error::other)?)
    }

    fn styled(&mut self, style: &str, text: &str) -> std::io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.at_line_start = text.ends_with('\n');
        if self.color {
            write!(self.out, "{style}{text}{RESET}")
        } else {
            write!(self.out, "{text}")
        }
    }

    fn header(&mut self, title: &str, detail: &str) -> std::io::Result<()> {
        if !self.at_line_start {
            writeln!(self.out)?;
        }
        self.at_line_start = true;
        if self.color {
            writeln!(self.out, "{BOLD}── {title} ──{RESET} {DIM}{detail}{RESET}")
        } else {
            writeln!(self.out, "── {title} ── {detail}")
        }
    }

    fn text(&mut self, event: &Event) -> std::io::Result<()> {
        match (event, self.mode) {
            (Event::Prompt { tokens }, Mode::Reason { budget }) => self.header(
                "thinking",
                &format!("(prompt {} tokens, budget {budget} tokens)", tokens.len()),
            ),
            (Event::Prompt { .. }, Mode::Chat) => Ok(()),
            (Event::Think { text, .. }, Mode::Reason { budget }) => {
                self.think_tokens += 1;
                self.styled(DIM, text)?;
                if self.color && self.think_tokens.is_multiple_of(COUNTER_EVERY) {
                    let marker = format!(" [{}/{budget}] ", self.think_tokens);
                    self.styled(BOLD, &marker)?;
                }
                Ok(())
            }
            (Event::Think { text, .. }, Mode::Chat) => self.styled(DIM, text),
            (Event::Wait { text, .. }, _) => self.styled(BOLD, text),
            (
                Event::AnswerPrefix {
                    thinking_tail,
                    text,
                    budget_exhausted,
                },
                mode,
            ) => {
                self.styled(DIM, thinking_tail)?;
                let budget = match mode {
                    Mode::Reason { budget } => budget.to_string(),
                    Mode::Chat => "?".to_string(),
                };
                let how = if *budget_exhausted {
                    "budget reached, answer forced"
                } else {
                    "thinking ended on its own"
                };
                self.header(
                    "answer",
                    &format!("({}/{budget} thinking tokens, {how})", self.think_tokens),
                )?;
                // The control-token part of the prefix is not text a reader needs; what
                // follows it ("Final Answer:") is, since the answer continues it.
                let visible = text
                    .strip_prefix(ANSWER_PREFIX)
                    .unwrap_or(text)
                    .trim_start_matches('\n');
                self.styled(BOLD, visible)
            }
            (Event::Answer { text, .. }, _) => self.styled("", text),
            (Event::Done(summary), Mode::Reason { .. }) => {
                let line = summary_line(summary);
                self.header("done", &line)
            }
            (Event::Done(_), Mode::Chat) => {
                if !self.at_line_start {
                    writeln!(self.out)?;
                    self.at_line_start = true;
                }
                Ok(())
            }
        }
    }
}

/// An event as the CLI's JSON line. The `done` event of a reasoning run carries `stop`:
/// how thinking ended ("budget" or "natural", or "cancelled"), and `answer_stop`: how the
/// run ended (the controller's `stop`: "natural", "max_tokens", "cancelled"). Outside
/// reasoning (`generate`) `stop` is left as the controller reports it.
pub fn event_json(event: &Event) -> serde_json::Result<Value> {
    let mut value = serde_json::to_value(event)?;
    if let (Event::Done(summary), Value::Object(map)) = (event, &mut value) {
        if let Some(think_stop) = summary.think_stop {
            map.insert("answer_stop".into(), serde_json::to_value(summary.stop)?);
            map.insert("stop".into(), serde_json::to_value(think_stop)?);
        }
    }
    Ok(value)
}

pub fn stop_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Natural => "natural",
        StopReason::Budget => "budget",
        StopReason::MaxTokens => "max_tokens",
        StopReason::Cancelled => "cancelled",
    }
}

/// "choice B · thinking 512 tokens (budget) · answer 37 tokens (natural) · TTFT 1.2 s · 14.1 tok/s".
pub fn summary_line(s: &Summary) -> String {
    let mut parts = vec![match &s.choice {
        Some(letter) => format!("choice {letter}"),
        None => "no choice extracted".to_string(),
    }];
    let think_stop = s.think_stop.map(stop_name).unwrap_or("-");
    parts.push(format!(
        "thinking {} ({think_stop})",
        tokens(s.think_tokens)
    ));
    if s.waits > 0 {
        parts.push(format!("{} waits", s.waits));
    }
    parts.push(format!(
        "answer {} ({})",
        tokens(s.answer_tokens),
        stop_name(s.stop)
    ));
    parts.extend(timing_parts(s));
    parts.join(" · ")
}

/// "1 token", "2 tokens".
pub fn tokens(n: usize) -> String {
    if n == 1 {
        "1 token".to_string()
    } else {
        format!("{n} tokens")
    }
}

/// TTFT, decode rate and total time, where known.
pub fn timing_parts(s: &Summary) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(ms) = s.time_to_first_token_ms {
        parts.push(format!("TTFT {:.2} s", ms / 1000.0));
    }
    if let Some(rate) = s.decode_tokens_per_s {
        parts.push(format!("{rate:.1} tok/s"));
    }
    parts.push(format!("{:.1} s", s.total_ms / 1000.0));
    parts
}

#[cfg(test)]
mod tests {
    use m1_engine::reason::Summary;

    use super::*;

    fn summary(stop: StopReason, think_stop: Option<StopReason>) -> Summary {
        Summary {
            stop,
            think_stop,
            prompt_tokens: 10,
            think_tokens: 16,
            waits: 0,
            budget_used: 16,
            answer_tokens: 8,
            sampled_tokens: 24,
            thinking: "t\n".into(),
            answer_prefix: "p".into(),
            answer: "a".into(),
            choice: Some("B".into()),
            choice_rule: None,
            time_to_first_token_ms: Some(1500.0),
            prefill_tokens_per_s: None,
            decode_tokens_per_s: Some(12.5),
            total_ms: 4000.0,
        }
    }

    #[test]
    fn done_json_says_how_thinking_stopped() {
        let e = Event::Done(summary(StopReason::MaxTokens, Some(StopReason::Budget)));
        let v = event_json(&e).unwrap();
        assert_eq!(v["event"], "done");
        assert_eq!(v["stop"], "budget");
        assert_eq!(v["answer_stop"], "max_tokens");
        assert_eq!(v["think_stop"], "budget");
        assert_eq!(v["think_tokens"], 16);
        assert_eq!(v["choice"], "B");
    }

    #[test]
    fn chat_done_json_is_unchanged() {
        let e = Event::Done(summary(StopReason::Natural, None));
        let v = event_json(&e).unwrap();
        assert_eq!(v["stop"], "natural");
        assert!(v.get("answer_stop").is_none());
    }

    #[test]
    fn text_output_separates_thinking_and_answer() {
        let mut buf = Vec::new();
        let mut p = Printer::new(&mut buf, false, false, Mode::Reason { budget: 2 });
        p.event(&Event::Prompt { tokens: vec![1, 2] });
        p.event(&Event::Think {
            id: 1,
            text: "hm".into(),
        });
        p.event(&Event::AnswerPrefix {
            thinking_tail: "\n".into(),
            text: "<|im_start|>answer\nFinal Answer:".into(),
            budget_exhausted: true,
        });
        p.event(&Event::Answer {
            id: 2,
            text: " B".into(),
        });
        p.finish().unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "── thinking ── (prompt 2 tokens, budget 2 tokens)\nhm\n\
             ── answer ── (1/2 thinking tokens, budget reached, answer forced)\nFinal Answer: B"
        );
    }
}
