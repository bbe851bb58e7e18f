//! Every branch of the budget-forcing controller, driven by token scripts.

use super::fake::*;
use super::*;

const PROMPT: [u32; 3] = [1, 2, 3];

fn options() -> Vec<(String, String)> {
    vec![
        ("A".to_string(), "Aspirin".to_string()),
        ("B".to_string(), "Heparin".to_string()),
    ]
}

fn reasoner(budget: usize, waits: usize, max_answer_tokens: usize) -> Controller<FakeCodec> {
    reasoner_with(FakeCodec::new(), budget, waits, max_answer_tokens)
}

fn reasoner_with(
    codec: FakeCodec,
    budget: usize,
    waits: usize,
    max_answer_tokens: usize,
) -> Controller<FakeCodec> {
    let config = ReasonConfig {
        budget,
        waits,
        min_thinking: 0,
        max_answer_tokens,
    };
    Controller::reasoning(codec, PROMPT.to_vec(), config)
        .unwrap()
        .with_options(options())
}

fn chatter(max_tokens: usize) -> Controller<FakeCodec> {
    Controller::chat(FakeCodec::new(), PROMPT.to_vec(), ChatConfig { max_tokens })
        .unwrap()
        .with_options(options())
}

fn feed(ids: &[u32]) -> Act {
    Act::Feed(ids.to_vec())
}

fn think(id: u32, text: &str) -> Event {
    Event::Think {
        id,
        text: text.to_string(),
    }
}

fn answer(id: u32, text: &str) -> Event {
    Event::Answer {
        id,
        text: text.to_string(),
    }
}

fn prefix(thinking_tail: &str, budget_exhausted: bool) -> Event {
    Event::AnswerPrefix {
        thinking_tail: thinking_tail.to_string(),
        text: if budget_exhausted {
            BUDGET_ANSWER_PREFIX
        } else {
            ANSWER_PREFIX
        }
        .to_string(),
        budget_exhausted,
    }
}

fn wait(index: usize, text: &str) -> Event {
    Event::Wait {
        index,
        text: text.to_string(),
    }
}

fn prompt_event() -> Event {
    Event::Prompt {
        tokens: PROMPT.to_vec(),
    }
}

/// The events before `done`, which every test compares exactly.
fn stream(run: &Run) -> &[Event] {
    match run.events.split_last() {
        Some((Event::Done(summary), rest)) => {
            assert_eq!(summary, &run.summary, "done event differs from Step::Done");
            rest
        }
        other => panic!("last event is not done: {other:?}"),
    }
}

fn concat<T>(parts: T) -> Vec<u32>
where
    T: IntoIterator,
    T::Item: AsRef<[u32]>,
{
    parts
        .into_iter()
        .flat_map(|p| p.as_ref().to_vec())
        .collect()
}

#[test]
fn natural_end_below_budget() {
    let mut ctl = reasoner(10, 0, 1024);
    let run = drive(
        &mut ctl,
        &[HELLO, WORLD, IM_START, BOXED_OPEN, LETTER_B, CLOSE, IM_END],
    );
    assert_eq!(
        run.acts,
        vec![
            feed(&PROMPT),
            Act::Sample(HELLO),
            feed(&[HELLO]),
            Act::Sample(WORLD),
            feed(&[WORLD]),
            // The stop token is dropped: only "\n" and the answer prefix follow.
            Act::Sample(IM_START),
            feed(&concat([&[NL][..], &ANSWER_TOKENS])),
            Act::Sample(BOXED_OPEN),
            feed(&[BOXED_OPEN]),
            Act::Sample(LETTER_B),
            feed(&[LETTER_B]),
            Act::Sample(CLOSE),
            feed(&[CLOSE]),
            Act::Sample(IM_END),
        ]
    );
    assert_eq!(
        stream(&run),
        &[
            prompt_event(),
            think(HELLO, "Hello"),
            think(WORLD, " world"),
            prefix("\n", false),
            answer(BOXED_OPEN, "\\boxed{"),
            answer(LETTER_B, "B"),
            answer(CLOSE, "}"),
        ]
    );
    // Clock: prompt fed 1000..1006, first sample at 1016, then 12 ms per token except the
    // 3-token answer prefix feed (6 ms); last sample at 1092.
    assert_eq!(
        run.summary,
        Summary {
            stop: StopReason::Natural,
            think_stop: Some(StopReason::Natural),
            prompt_tokens: 3,
            think_tokens: 2,
            waits: 0,
            budget_used: 2,
            answer_tokens: 3,
            sampled_tokens: 7,
            thinking: "Hello world\n".to_string(),
            answer_prefix: ANSWER_PREFIX.to_string(),
            answer: "\\boxed{B}".to_string(),
            choice: Some("B".to_string()),
            choice_rule: Some(ExtractRule::Exact),
            time_to_first_token_ms: Some(16.0),
            prefill_tokens_per_s: Some(187.5),
            decode_tokens_per_s: Some(6.0 * 1000.0 / 76.0),
            total_ms: 92.0,
        }
    );
    assert!(ctl.is_done());
    assert_eq!(ctl.summary(), Some(&run.summary));
    assert_eq!(
        ctl.next_step(2000.0).unwrap(),
        Step::Done(run.summary.clone())
    );
    assert_eq!(ctl.drain_events().count(), 0);
}

#[test]
fn budget_exhausted_exactly_at_the_limit() {
    let mut ctl = reasoner(3, 0, 1024);
    let run = drive(
        &mut ctl,
        &[HELLO, WORLD, DOT, BOXED_OPEN, LETTER_B, CLOSE, IM_END],
    );
    assert_eq!(
        run.acts,
        vec![
            feed(&PROMPT),
            Act::Sample(HELLO),
            feed(&[HELLO]),
            Act::Sample(WORLD),
            feed(&[WORLD]),
            Act::Sample(DOT),
            // The third token is the last the budget allows: it is kept, then the answer
            // is forced with no further thinking sample.
            feed(&concat([&[DOT, NL][..], &BUDGET_ANSWER_TOKENS])),
            Act::Sample(BOXED_OPEN),
            feed(&[BOXED_OPEN]),
            Act::Sample(LETTER_B),
            feed(&[LETTER_B]),
            Act::Sample(CLOSE),
            feed(&[CLOSE]),
            Act::Sample(IM_END),
        ]
    );
    assert_eq!(
        stream(&run),
        &[
            prompt_event(),
            think(HELLO, "Hello"),
            think(WORLD, " world"),
            think(DOT, "."),
            prefix("\n", true),
            answer(BOXED_OPEN, "\\boxed{"),
            answer(LETTER_B, "B"),
            answer(CLOSE, "}"),
        ]
    );
    let s = &run.summary;
    assert_eq!(s.stop, StopReason::Natural);
    assert_eq!(s.think_stop, Some(StopReason::Budget));
    assert_eq!((s.think_tokens, s.budget_used, s.answer_tokens), (3, 3, 3));
    assert_eq!(s.thinking, "Hello world.\n");
    assert_eq!(s.answer_prefix, BUDGET_ANSWER_PREFIX);
    assert_eq!(s.choice.as_deref(), Some("B"));
    let fed: usize = run
        .acts
        .iter()
        .map(|a| match a {
            Act::Feed(ids) => ids.len(),
            Act::Sample(_) => 0,
        })
        .sum();
    assert_eq!(fed, 3 + 3 + 1 + 6 + 3);
    assert!(fed <= ctl.max_sequence_len());
}

#[test]
fn stop_token_as_the_last_allowed_sample_is_a_natural_end() {
    // Budget 3: the third sample is a stop token, so only 2 thinking tokens were used.
    let run = drive(
        &mut reasoner(3, 0, 1024),
        &[HELLO, WORLD, IM_END, LETTER_B, IM_END],
    );
    assert_eq!(run.acts[6], feed(&concat([&[NL][..], &ANSWER_TOKENS])));
    assert_eq!(run.summary.think_stop, Some(StopReason::Natural));
    assert_eq!(run.summary.budget_used, 2);
    assert_eq!(run.summary.answer_prefix, ANSWER_PREFIX);
}

#[test]
fn endoftext_ends_thinking_naturally() {
    let run = drive(
        &mut reasoner(10, 0, 1024),
        &[HELLO, END_OF_TEXT, LETTER_B, IM_END],
    );
    assert_eq!(run.summary.think_stop, Some(StopReason::Natural));
    assert_eq!(run.summary.thinking, "Hello\n");
    assert_eq!(run.summary.answer, "B");
}

#[test]
fn budget_zero_forces_the_answer_right_after_the_prompt() {
    // Waits are configured but never apply: nothing ended naturally.
    let mut ctl = reasoner(0, 2, 1024);
    let run = drive(&mut ctl, &[LETTER_B, IM_END]);
    assert_eq!(
        run.acts,
        vec![
            feed(&concat([&PROMPT[..], &[NL], &BUDGET_ANSWER_TOKENS])),
            Act::Sample(LETTER_B),
            feed(&[LETTER_B]),
            Act::Sample(IM_END),
        ]
    );
    assert_eq!(
        stream(&run),
        &[prompt_event(), prefix("\n", true), answer(LETTER_B, "B")]
    );
    let s = &run.summary;
    assert_eq!(s.think_stop, Some(StopReason::Budget));
    assert_eq!((s.think_tokens, s.waits, s.budget_used), (0, 0, 0));
    assert_eq!(s.thinking, "\n");
    assert_eq!(s.answer, "B");
    // "Final Answer:B": no box, so the lone letter after ':' decides.
    assert_eq!(s.choice.as_deref(), Some("B"));
    assert_eq!(s.choice_rule, Some(ExtractRule::LastLetter));
    // All 10 tokens fed before the first sample count as prefill.
    assert_eq!(s.time_to_first_token_ms, Some(30.0));
    assert_eq!(s.prefill_tokens_per_s, Some(10.0 * 1000.0 / 30.0));
}

#[test]
fn wait_twice_with_the_space_rule() {
    let run = drive(
        &mut reasoner(100, 2, 1024),
        &[
            HELLO, IM_START, SPACE, IM_END, DOT, NL, IM_START, LETTER_B, IM_END,
        ],
    );
    assert_eq!(
        run.acts,
        vec![
            feed(&PROMPT),
            Act::Sample(HELLO),
            feed(&[HELLO]),
            Act::Sample(IM_START),
            // "Hello" does not end in a space: plain "Wait".
            feed(&[WAIT_ID]),
            Act::Sample(SPACE),
            feed(&[SPACE]),
            Act::Sample(IM_END),
            // "HelloWait " ends in a space: " Wait".
            feed(&[SPACED_WAIT_ID]),
            Act::Sample(DOT),
            feed(&[DOT]),
            Act::Sample(NL),
            feed(&[NL]),
            Act::Sample(IM_START),
            // Both waits used; the thinking already ends in "\n", so no newline is added.
            feed(&ANSWER_TOKENS),
            Act::Sample(LETTER_B),
            feed(&[LETTER_B]),
            Act::Sample(IM_END),
        ]
    );
    assert_eq!(
        stream(&run),
        &[
            prompt_event(),
            think(HELLO, "Hello"),
            wait(1, "Wait"),
            think(SPACE, " "),
            wait(2, " Wait"),
            think(DOT, "."),
            think(NL, "\n"),
            prefix("", false),
            answer(LETTER_B, "B"),
        ]
    );
    let s = &run.summary;
    assert_eq!(s.thinking, "HelloWait  Wait.\n");
    assert_eq!(s.waits, 2);
    assert_eq!(s.think_tokens, 4);
    // Each one-token "Wait" is charged to the budget.
    assert_eq!(s.budget_used, 6);
    assert_eq!(s.sampled_tokens, 9);
    assert_eq!(s.think_stop, Some(StopReason::Natural));
}

#[test]
fn wait_after_a_newline_has_no_space() {
    let run = drive(
        &mut reasoner(100, 1, 1024),
        &[HELLO, SPACE, NL, IM_START, DOT, IM_START, LETTER_B, IM_END],
    );
    assert_eq!(run.acts[6], feed(&[NL]));
    assert_eq!(run.acts[8], feed(&[WAIT_ID]));
    assert_eq!(
        run.acts[12],
        feed(&concat([&[NL][..], &ANSWER_TOKENS])),
        "thinking ends in '.', so a newline goes before the prefix"
    );
    assert_eq!(
        stream(&run)[1..6],
        [
            think(HELLO, "Hello"),
            think(SPACE, " "),
            think(NL, "\n"),
            wait(1, "Wait"),
            think(DOT, "."),
        ]
    );
    assert_eq!(run.summary.thinking, "Hello \nWait.\n");
}

#[test]
fn no_wait_when_the_budget_ran_out() {
    let run = drive(&mut reasoner(2, 3, 1024), &[HELLO, WORLD, LETTER_B, IM_END]);
    assert_eq!(
        run.acts[4],
        feed(&concat([&[WORLD, NL][..], &BUDGET_ANSWER_TOKENS]))
    );
    assert_eq!(run.summary.waits, 0);
    assert_eq!(run.summary.think_stop, Some(StopReason::Budget));
    assert!(!run.events.iter().any(|e| matches!(e, Event::Wait { .. })));
}

#[test]
fn wait_is_skipped_when_it_would_fill_the_budget() {
    // 1 token used + 1 "Wait" token = budget 2: the reference skips the extension and
    // answers as after a natural end.
    let run = drive(
        &mut reasoner(2, 1, 1024),
        &[HELLO, IM_START, LETTER_B, IM_END],
    );
    assert_eq!(run.acts[4], feed(&concat([&[NL][..], &ANSWER_TOKENS])));
    let s = &run.summary;
    assert_eq!((s.waits, s.budget_used), (0, 1));
    assert_eq!(s.think_stop, Some(StopReason::Natural));
    assert_eq!(s.answer_prefix, ANSWER_PREFIX);
    assert_eq!(s.thinking, "Hello\n");
}

fn min_reasoner(budget: usize, waits: usize, min_thinking: usize) -> Controller<FakeCodec> {
    let config = ReasonConfig {
        budget,
        waits,
        min_thinking,
        max_answer_tokens: 1024,
    };
    Controller::reasoning(FakeCodec::new(), PROMPT.to_vec(), config)
        .unwrap()
        .with_options(options())
}

#[test]
fn min_thinking_replaces_early_ends_without_spending_waits() {
    // Ends at 1 and 3 budget tokens are below the minimum of 4: both become "Wait", with no
    // "Wait" allowance at all. The end at 5 is past it and is accepted.
    let run = drive(
        &mut min_reasoner(100, 0, 4),
        &[
            HELLO, IM_START, WORLD, IM_END, DOT, IM_END, LETTER_B, IM_END,
        ],
    );
    assert_eq!(
        run.acts,
        vec![
            feed(&PROMPT),
            Act::Sample(HELLO),
            feed(&[HELLO]),
            Act::Sample(IM_START),
            feed(&[WAIT_ID]),
            Act::Sample(WORLD),
            feed(&[WORLD]),
            Act::Sample(IM_END),
            feed(&[WAIT_ID]),
            Act::Sample(DOT),
            feed(&[DOT]),
            Act::Sample(IM_END),
            feed(&concat([&[NL][..], &ANSWER_TOKENS])),
            Act::Sample(LETTER_B),
            feed(&[LETTER_B]),
            Act::Sample(IM_END),
        ]
    );
    assert_eq!(
        stream(&run)[1..7],
        [
            think(HELLO, "Hello"),
            wait(1, "Wait"),
            think(WORLD, " world"),
            wait(2, "Wait"),
            think(DOT, "."),
            prefix("\n", false),
        ]
    );
    let s = &run.summary;
    assert_eq!(s.thinking, "HelloWait worldWait.\n");
    assert_eq!((s.waits, s.think_tokens, s.budget_used), (2, 3, 5));
    assert_eq!(s.think_stop, Some(StopReason::Natural));
}

#[test]
fn waits_past_the_minimum_count_against_the_allowance() {
    // Minimum 2, one "Wait" allowed: the end at 1 is below the minimum (free), the end at
    // 3 spends the allowance, the end at 5 is accepted.
    let run = drive(
        &mut min_reasoner(100, 1, 2),
        &[
            HELLO, IM_START, WORLD, IM_END, DOT, IM_END, LETTER_B, IM_END,
        ],
    );
    let s = &run.summary;
    assert_eq!(s.thinking, "HelloWait worldWait.\n");
    assert_eq!((s.waits, s.budget_used), (2, 5));
    // Without the minimum the same script takes its one "Wait" at the first end, and the
    // second end is accepted.
    let run = drive(
        &mut min_reasoner(100, 1, 0),
        &[HELLO, IM_START, WORLD, IM_END, LETTER_B, IM_END],
    );
    assert_eq!(run.summary.thinking, "HelloWait world\n");
    assert_eq!(run.summary.waits, 1);
}

#[test]
fn min_thinking_yields_to_the_budget() {
    // A minimum above the budget: "Wait" is forced while it fits below the budget (1 + 1
    // < 3), then the budget ends thinking as usual.
    let run = drive(
        &mut min_reasoner(3, 0, 10),
        &[HELLO, IM_START, WORLD, LETTER_B, IM_END],
    );
    let s = &run.summary;
    assert_eq!((s.waits, s.budget_used), (1, 3));
    assert_eq!(s.think_stop, Some(StopReason::Budget));
    assert_eq!(s.thinking, "HelloWait world\n");
    // An end where "Wait" would fill the budget (2 + 1 = 3) is accepted even below the
    // minimum, as the reference skips any such extension.
    let run = drive(
        &mut min_reasoner(3, 0, 10),
        &[HELLO, WORLD, IM_END, LETTER_B, IM_END],
    );
    let s = &run.summary;
    assert_eq!((s.waits, s.budget_used), (0, 2));
    assert_eq!(s.think_stop, Some(StopReason::Natural));
}

#[test]
fn min_thinking_round_trips_and_defaults_to_off() {
    let config: ReasonConfig = serde_json::from_str(r#"{"min_thinking":256}"#).unwrap();
    assert_eq!(config.min_thinking, 256);
    assert_eq!(ReasonConfig::default().min_thinking, 0);
}

#[test]
fn multi_token_wait_is_charged_to_the_budget() {
    // Without a "Wait" token the fake vocabulary spells it in 4 byte tokens.
    let codec = FakeCodec::without(&["Wait", " Wait"]);
    let wait_ids: Vec<u32> = b"Wait".iter().map(|&b| BYTE_BASE + u32::from(b)).collect();
    let run = drive(
        &mut reasoner_with(codec, 7, 1, 1024),
        &[HELLO, IM_START, WORLD, DOT, LETTER_B, IM_END],
    );
    assert_eq!(run.acts[4], feed(&wait_ids));
    // 1 + 4 + 2 = 7: the budget is spent on the second token after "Wait".
    assert_eq!(
        run.acts[8],
        feed(&concat([&[DOT, NL][..], &BUDGET_ANSWER_TOKENS]))
    );
    let s = &run.summary;
    assert_eq!((s.waits, s.think_tokens, s.budget_used), (1, 3, 7));
    assert_eq!(s.think_stop, Some(StopReason::Budget));
    assert_eq!(s.thinking, "HelloWait world.\n");
}

#[test]
fn every_stop_token_ends_the_answer() {
    for stop in [IM_START, IM_END, END_OF_TEXT] {
        let run = drive(&mut reasoner(10, 0, 1024), &[HELLO, IM_END, LETTER_B, stop]);
        assert_eq!(run.acts.last(), Some(&Act::Sample(stop)), "stop {stop}");
        assert_eq!(run.summary.stop, StopReason::Natural, "stop {stop}");
        assert_eq!(run.summary.answer, "B", "stop {stop}");
        assert_eq!(run.summary.answer_tokens, 1, "stop {stop}");
        assert_eq!(run.summary.sampled_tokens, 4, "stop {stop}");
    }
}

#[test]
fn answer_cap_ends_the_run_without_feeding_the_last_token() {
    let run = drive(
        &mut reasoner(10, 0, 2),
        &[HELLO, IM_START, BOXED_OPEN, LETTER_B],
    );
    assert_eq!(
        run.acts[4..],
        [
            feed(&concat([&[NL][..], &ANSWER_TOKENS])),
            Act::Sample(BOXED_OPEN),
            feed(&[BOXED_OPEN]),
            Act::Sample(LETTER_B),
        ]
    );
    let s = &run.summary;
    assert_eq!(s.stop, StopReason::MaxTokens);
    assert_eq!(s.answer, "\\boxed{B");
    assert_eq!(s.answer_tokens, 2);
    // The box never closed: the whole text is searched and the lone B wins.
    assert_eq!(s.choice.as_deref(), Some("B"));
    assert_eq!(s.choice_rule, Some(ExtractRule::LastLetter));
}

#[test]
fn zero_answer_tokens_ends_at_the_prefix() {
    let run = drive(&mut reasoner(10, 0, 0), &[HELLO, IM_START]);
    assert_eq!(
        run.acts,
        vec![
            feed(&PROMPT),
            Act::Sample(HELLO),
            feed(&[HELLO]),
            Act::Sample(IM_START)
        ]
    );
    assert_eq!(stream(&run).last(), Some(&prefix("\n", false)));
    assert_eq!(run.summary.stop, StopReason::MaxTokens);
    assert_eq!(run.summary.answer, "");
    assert_eq!(run.summary.choice, None);
}

#[test]
fn cancel_mid_thinking() {
    let mut ctl = reasoner(10, 0, 1024);
    let run = drive_with(&mut ctl, &[HELLO, E_ACUTE_1, WORLD], Some(3));
    assert_eq!(
        run.acts,
        vec![
            feed(&PROMPT),
            Act::Sample(HELLO),
            feed(&[HELLO]),
            Act::Sample(E_ACUTE_1),
            feed(&[E_ACUTE_1]),
            // In flight when cancel() came: reported, ignored.
            Act::Sample(WORLD),
        ]
    );
    assert_eq!(
        stream(&run),
        &[prompt_event(), think(HELLO, "Hello"), think(E_ACUTE_1, "")]
    );
    let s = &run.summary;
    assert_eq!(s.stop, StopReason::Cancelled);
    assert_eq!(s.think_stop, Some(StopReason::Cancelled));
    assert_eq!(
        (s.think_tokens, s.sampled_tokens, s.answer_tokens),
        (2, 2, 0)
    );
    // The half character left pending becomes U+FFFD.
    assert_eq!(s.thinking, "Hello\u{FFFD}");
    assert_eq!(s.answer_prefix, "");
    assert_eq!(s.choice, None);
    assert_eq!(s.total_ms, 40.0);

    // Over is over: more tokens and cancels change nothing.
    ctl.on_token(LETTER_B, 50.0).unwrap();
    ctl.cancel(60.0);
    assert_eq!(ctl.drain_events().count(), 0);
    assert_eq!(
        ctl.next_step(70.0).unwrap(),
        Step::Done(run.summary.clone())
    );
}

#[test]
fn cancel_mid_answer() {
    let run = drive_with(
        &mut reasoner(10, 0, 1024),
        &[HELLO, IM_START, BOXED_OPEN, LETTER_B, CLOSE],
        Some(5),
    );
    assert_eq!(run.acts.last(), Some(&Act::Sample(CLOSE)));
    let s = &run.summary;
    assert_eq!(s.stop, StopReason::Cancelled);
    assert_eq!(s.think_stop, Some(StopReason::Natural));
    assert_eq!(s.answer, "\\boxed{B");
    assert_eq!(s.answer_tokens, 2);
    assert_eq!(s.choice.as_deref(), Some("B"));
}

#[test]
fn cancel_before_the_first_step() {
    let mut ctl = reasoner(10, 0, 1024);
    ctl.cancel(5.0);
    let Step::Done(summary) = ctl.next_step(6.0).unwrap() else {
        panic!("expected done");
    };
    assert_eq!(summary.stop, StopReason::Cancelled);
    assert_eq!(summary.think_stop, Some(StopReason::Cancelled));
    assert_eq!(summary.total_ms, 0.0);
    assert_eq!(summary.time_to_first_token_ms, None);
    assert_eq!(summary.prefill_tokens_per_s, None);
    assert_eq!(summary.decode_tokens_per_s, None);
    let events: Vec<Event> = ctl.drain_events().collect();
    assert_eq!(events, vec![Event::Done(summary)]);
}

#[test]
fn multibyte_characters_split_across_tokens() {
    let run = drive(
        &mut reasoner(20, 0, 1024),
        &[
            E_ACUTE_1,
            E_ACUTE_2,
            ZHONG_1,
            ZHONG_2,
            STETHOSCOPE_1,
            STETHOSCOPE_2,
            INVALID,
            IM_START,
            E_ACUTE_1,
            E_ACUTE_2,
            IM_END,
        ],
    );
    assert_eq!(
        stream(&run)[1..],
        [
            think(E_ACUTE_1, ""),
            think(E_ACUTE_2, "é"),
            think(ZHONG_1, ""),
            think(ZHONG_2, "中"),
            think(STETHOSCOPE_1, ""),
            think(STETHOSCOPE_2, "🩺"),
            think(INVALID, "\u{FFFD}"),
            prefix("\n", false),
            answer(E_ACUTE_1, ""),
            answer(E_ACUTE_2, "é"),
        ]
    );
    assert_eq!(run.summary.thinking, "é中🩺\u{FFFD}\n");
    assert_eq!(run.summary.answer, "é");
}

#[test]
fn budget_running_out_mid_character_closes_it_in_the_tail() {
    let run = drive(&mut reasoner(1, 0, 1024), &[ZHONG_1, LETTER_B, IM_END]);
    assert_eq!(
        stream(&run)[1..3],
        [think(ZHONG_1, ""), prefix("\u{FFFD}\n", true)]
    );
    assert_eq!(run.summary.thinking, "\u{FFFD}\n");
}

#[test]
fn natural_end_mid_character_closes_it_before_wait() {
    let run = drive(
        &mut reasoner(10, 1, 1024),
        &[ZHONG_1, IM_END, DOT, IM_START, LETTER_B, IM_END],
    );
    assert_eq!(
        stream(&run)[1..5],
        [
            think(ZHONG_1, ""),
            wait(1, "\u{FFFD}Wait"),
            think(DOT, "."),
            prefix("\n", false)
        ]
    );
    assert_eq!(run.summary.thinking, "\u{FFFD}Wait.\n");
}

#[test]
fn answer_cap_mid_character_closes_it_in_the_last_event() {
    let run = drive(&mut reasoner(10, 0, 1), &[HELLO, IM_START, E_ACUTE_1]);
    assert_eq!(stream(&run).last(), Some(&answer(E_ACUTE_1, "\u{FFFD}")));
    assert_eq!(run.summary.answer, "\u{FFFD}");
    assert_eq!(run.summary.stop, StopReason::MaxTokens);
}

#[test]
fn streamed_text_adds_up_to_the_summary() {
    let run = drive(
        &mut reasoner(6, 2, 1024),
        &[
            HELLO, SPACE, IM_END, ZHONG_1, ZHONG_2, DOT, WORLD, LETTER_B, IM_END,
        ],
    );
    let mut thinking = String::new();
    let mut answer_text = String::new();
    for event in stream(&run) {
        match event {
            Event::Think { text, .. } | Event::Wait { text, .. } => thinking.push_str(text),
            Event::AnswerPrefix { thinking_tail, .. } => thinking.push_str(thinking_tail),
            Event::Answer { text, .. } => answer_text.push_str(text),
            Event::Prompt { .. } | Event::Done(_) => {}
        }
    }
    assert_eq!(thinking, run.summary.thinking);
    assert_eq!(thinking, "Hello  Wait中.\n");
    assert_eq!(answer_text, run.summary.answer);
    assert_eq!(run.summary.think_stop, Some(StopReason::Budget));
}

#[test]
fn chat_mode_stops_at_im_end() {
    let run = drive(&mut chatter(10), &[HELLO, WORLD, IM_END]);
    assert_eq!(
        run.acts,
        vec![
            feed(&PROMPT),
            Act::Sample(HELLO),
            feed(&[HELLO]),
            Act::Sample(WORLD),
            feed(&[WORLD]),
            Act::Sample(IM_END),
        ]
    );
    assert_eq!(
        stream(&run),
        &[
            prompt_event(),
            answer(HELLO, "Hello"),
            answer(WORLD, " world")
        ]
    );
    let s = &run.summary;
    assert_eq!(s.stop, StopReason::Natural);
    assert_eq!(s.think_stop, None);
    assert_eq!((s.think_tokens, s.answer_tokens, s.budget_used), (0, 2, 0));
    assert_eq!((s.thinking.as_str(), s.answer_prefix.as_str()), ("", ""));
    assert_eq!(s.answer, "Hello world");
    assert_eq!(s.choice, None);
}

#[test]
fn chat_mode_does_not_stop_at_im_start_but_at_endoftext() {
    let run = drive(&mut chatter(10), &[LETTER_B, IM_START, END_OF_TEXT]);
    assert_eq!(run.acts[4], feed(&[IM_START]));
    assert_eq!(run.summary.answer, "B<|im_start|>");
    assert_eq!(run.summary.stop, StopReason::Natural);
    assert_eq!(run.summary.choice.as_deref(), Some("B"));
}

#[test]
fn chat_mode_token_cap() {
    let run = drive(&mut chatter(2), &[HELLO, WORLD]);
    assert_eq!(run.acts.last(), Some(&Act::Sample(WORLD)));
    assert_eq!(run.summary.stop, StopReason::MaxTokens);
    assert_eq!(run.summary.answer_tokens, 2);

    let run = drive(&mut chatter(0), &[]);
    assert!(run.acts.is_empty());
    assert_eq!(stream(&run), &[prompt_event()]);
    assert_eq!(run.summary.stop, StopReason::MaxTokens);
}

#[test]
fn driver_protocol_errors() {
    let mut ctl = reasoner(10, 0, 1024);
    assert_eq!(
        ctl.on_token(HELLO, 0.0),
        Err(ReasonError::UnexpectedToken { id: HELLO })
    );
    assert_eq!(ctl.next_step(0.0).unwrap(), Step::Feed(PROMPT.to_vec()));
    assert_eq!(
        ctl.on_token(HELLO, 1.0),
        Err(ReasonError::UnexpectedToken { id: HELLO })
    );
    assert_eq!(ctl.next_step(1.0).unwrap(), Step::Sample);
    assert_eq!(ctl.next_step(2.0), Err(ReasonError::TokenNotReported));
    // An id the vocabulary does not have: an error, and the sample is still awaited.
    assert!(matches!(
        ctl.on_token(99_999, 3.0),
        Err(ReasonError::Decode { id: 99_999, .. })
    ));
    ctl.on_token(HELLO, 4.0).unwrap();
    assert_eq!(
        ctl.on_token(WORLD, 5.0),
        Err(ReasonError::UnexpectedToken { id: WORLD })
    );
    assert_eq!(ctl.next_step(6.0).unwrap(), Step::Feed(vec![HELLO]));
}

#[test]
fn empty_prompt_is_rejected() {
    assert_eq!(
        Controller::reasoning(FakeCodec::new(), vec![], ReasonConfig::default()).err(),
        Some(ReasonError::EmptyPrompt)
    );
    assert_eq!(
        Controller::chat(FakeCodec::new(), vec![], ChatConfig::default()).err(),
        Some(ReasonError::EmptyPrompt)
    );
}

/// Fails or returns nothing for one string, to check construction surfaces codec trouble.
struct BrokenCodec {
    fail_on: &'static str,
    empty: bool,
}

impl TextCodec for BrokenCodec {
    fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError> {
        match (text == self.fail_on, self.empty) {
            (true, true) => Ok(vec![]),
            (true, false) => Err(CodecError::new("boom")),
            (false, _) => FakeCodec::new().encode(text),
        }
    }
    fn token_bytes(&self, id: u32) -> Result<Vec<u8>, CodecError> {
        FakeCodec::new().token_bytes(id)
    }
    fn special_tokens(&self) -> SpecialTokens {
        SpecialTokens::QWEN2
    }
}

#[test]
fn codec_failures_surface_at_construction() {
    let broken = BrokenCodec {
        fail_on: BUDGET_ANSWER_PREFIX,
        empty: false,
    };
    let err = Controller::reasoning(broken, PROMPT.to_vec(), ReasonConfig::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "tokenizer could not encode \"<|im_start|>answer\\nFinal Answer:\": boom"
    );

    let empty = BrokenCodec {
        fail_on: "\n",
        empty: true,
    };
    assert_eq!(
        Controller::reasoning(empty, PROMPT.to_vec(), ReasonConfig::default()).err(),
        Some(ReasonError::EmptyEncoding {
            text: "\n".to_string()
        })
    );
}

#[test]
fn max_sequence_len_bounds_the_context() {
    // 3 prompt + 10 budget + 1 newline + 6 (longer prefix) + 5 answer.
    assert_eq!(reasoner(10, 2, 5).max_sequence_len(), 25);
    assert_eq!(chatter(7).max_sequence_len(), 10);
}

#[test]
fn reasoning_for_builds_the_m1_prompt_and_extracts_the_choice() {
    let codec = FakeCodec::new();
    let question = Question {
        question: "Which anticoagulant?".to_string(),
        context: None,
        options: options(),
    };
    // A borrowed codec works through the forwarding impl.
    let mut ctl = Controller::reasoning_for(&codec, &question, ReasonConfig::default()).unwrap();
    let expected = codec.encode(&m1_prompt(&question)).unwrap();
    assert_eq!(ctl.prompt(), expected.as_slice());
    assert_eq!(expected[..2], [IM_START, BYTE_BASE + u32::from(b's')]);
    let run = drive(
        &mut ctl,
        &[HELLO, IM_START, BOXED_OPEN, LETTER_B, CLOSE, IM_END],
    );
    assert_eq!(
        run.events.first(),
        Some(&Event::Prompt {
            tokens: expected.clone()
        })
    );
    assert_eq!(run.summary.prompt_tokens, expected.len());
    assert_eq!(run.summary.choice.as_deref(), Some("B"));
    assert_eq!(run.summary.choice_rule, Some(ExtractRule::Exact));
}

#[test]
fn chat_for_builds_a_chatml_prompt() {
    let codec = FakeCodec::new();
    let question = Question {
        question: "Q?".to_string(),
        context: None,
        options: options(),
    };
    let ctl = Controller::chat_for(&codec, "Be brief.", &question, ChatConfig::default()).unwrap();
    let expected = codec
        .encode(&chat_prompt("Be brief.", &question.user_message()))
        .unwrap();
    assert_eq!(ctl.prompt(), expected.as_slice());
}

#[test]
fn event_json_shapes() {
    let cases = vec![
        (
            Event::Prompt { tokens: vec![1, 2] },
            r#"{"event":"prompt","tokens":[1,2]}"#,
        ),
        (think(5, "é"), r#"{"event":"think","id":5,"text":"é"}"#),
        (
            wait(1, " Wait"),
            r#"{"event":"wait","index":1,"text":" Wait"}"#,
        ),
        (
            prefix("\n", true),
            r#"{"event":"answer_prefix","thinking_tail":"\n","text":"<|im_start|>answer\nFinal Answer:","budget_exhausted":true}"#,
        ),
        (answer(7, "B"), r#"{"event":"answer","id":7,"text":"B"}"#),
        (
            Event::Done(Summary {
                stop: StopReason::MaxTokens,
                think_stop: Some(StopReason::Budget),
                prompt_tokens: 3,
                think_tokens: 4,
                waits: 1,
                budget_used: 5,
                answer_tokens: 6,
                sampled_tokens: 11,
                thinking: "t\n".to_string(),
                answer_prefix: ANSWER_PREFIX.to_string(),
                answer: "\\boxed{B}".to_string(),
                choice: Some("B".to_string()),
                choice_rule: Some(ExtractRule::Exact),
                time_to_first_token_ms: Some(16.5),
                prefill_tokens_per_s: Some(200.0),
                decode_tokens_per_s: None,
                total_ms: 92.0,
            }),
            concat!(
                r#"{"event":"done","stop":"max_tokens","think_stop":"budget","prompt_tokens":3,"#,
                r#""think_tokens":4,"waits":1,"budget_used":5,"answer_tokens":6,"sampled_tokens":11,"#,
                r#""thinking":"t\n","answer_prefix":"<|im_start|>answer","answer":"\\boxed{B}","#,
                r#""choice":"B","choice_rule":"exact","time_to_first_token_ms":16.5,"#,
                r#""prefill_tokens_per_s":200.0,"decode_tokens_per_s":null,"total_ms":92.0}"#
            ),
        ),
    ];
    for (event, json) in cases {
        assert_eq!(serde_json::to_string(&event).unwrap(), json);
        assert_eq!(serde_json::from_str::<Event>(json).unwrap(), event);
    }
    assert_eq!(
        serde_json::to_string(&StopReason::Cancelled).unwrap(),
        r#""cancelled""#
    );
}

#[test]
fn configs_deserialize_with_defaults() {
    let config: ReasonConfig = serde_json::from_str(r#"{"budget":512}"#).unwrap();
    assert_eq!(
        config,
        ReasonConfig {
            budget: 512,
            waits: 0,
            min_thinking: 0,
            max_answer_tokens: 1024
        }
    );
    let chat: ChatConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(chat.max_tokens, 1024);
}
