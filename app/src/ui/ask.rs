//! The question form: question, options A..E, optional context, samples, the thinking
//! budget slider, the "Wait" count and an advanced drawer for sampling.

use leptos::prelude::*;
use m1_engine::backend::Sampling;
use m1_engine::reason::DEFAULT_BUDGET;

use super::engine::EngineHandle;
use super::fields::{MinThinkingField, SampleSelect, WaitCountField};
use super::state::{AppState, AskDraft, QuestionDraft};
use crate::options::{letters, marks, RowMark};
use crate::protocol::{AskSettings, Request};
const PRESETS: [u32; 5] = [128, 512, 1024, 4096, 8192];

#[component]
pub fn AskForm(
    engine: EngineHandle,
    state: AppState,
    draft: QuestionDraft,
    settings: AskDraft,
) -> impl IntoView {
    let QuestionDraft {
        question,
        context,
        options,
        expected,
        ..
    } = draft;
    let AskDraft {
        waits,
        min_thinking,
        temperature,
        top_p,
        seed,
        advanced,
    } = settings;
    let defaults = Sampling::default();
    let budget = state.budget;
    let e_stop = engine.clone();

    let submit = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let question = match draft.take_question() {
            Ok(q) => q,
            Err(message) => {
                state
                    .error
                    .set(Some((crate::protocol::ErrorKind::BadRequest, message)));
                return;
            }
        };
        let sampling = settings.sampling();
        let b = budget.get_untracked();
        state.start_run(b, expected.get_untracked(), question.options.clone());
        engine.send(&Request::Ask {
            question,
            settings: AskSettings {
                budget: b,
                waits: waits.get_untracked(),
                min_thinking: min_thinking.get_untracked(),
                max_answer_tokens: state.max_answer.get_untracked(),
                sampling,
            },
        });
    };

    view! {
        <form class="panel ask" on:submit=submit aria-labelledby="ask-h">
            <h2 id="ask-h">"Question"</h2>
            <label class="field">"Try a sample: "
                <SampleSelect draft=draft placeholder="Choose…" testid="sample-select" label=None />
            </label>
            <label class="field" for="context">"Context (optional, e.g. an abstract)"</label>
            <textarea id="context" rows="2" prop:value=move || context.get() on:input=move |ev| context.set(event_target_value(&ev))></textarea>
            <label class="field" for="question">"Question"</label>
            <textarea id="question" rows="3" required prop:value=move || question.get()
                on:input=move |ev| draft.edit_question(event_target_value(&ev))></textarea>
            <fieldset class="options">
                <legend>"Options"</legend>
                {move || {
                    let rows = options.get();
                    // After an answer: the model's choice and, for a sample, the correct one.
                    let marked = match state.summary.get() {
                        Some(s) => marks(&rows, &state.asked.get(), s.choice.as_deref(), state.expected.get().as_deref()),
                        None => vec![RowMark::default(); rows.len()],
                    };
                    rows.into_iter().zip(letters()).zip(marked).enumerate().map(|(i, ((text, letter), m))| view! {
                        <div class="option-row" class:is-choice=m.chosen class:is-correct=m.correct
                            aria-current=m.chosen.then_some("true") data-testid=format!("option-row-{i}")>
                            <label for=format!("opt-{i}")>{letter}". "</label>
                            <input id=format!("opt-{i}") type="text" prop:value=text aria-label=format!("Option {letter}")
                                on:change=move |ev| options.update(|o| o[i] = event_target_value(&ev)) />
                            {m.chosen.then(|| view! { <span class="tag chosen-tag" data-testid="chosen-tag">"Model's choice"</span> })}
                            {m.correct.then(|| view! { <span class="tag correct-tag" data-testid="correct-tag">"Correct answer"</span> })}
                        </div>
                    }).collect_view()
                }}
                <div class="row">
                    <button type="button" class="secondary" disabled=move || { options.get().len() >= 5 }
                        on:click=move |_| options.update(|o| o.push(String::new()))>"Add option"</button>
                    <button type="button" class="secondary" disabled=move || options.get().len() <= 2
                        on:click=move |_| options.update(|o| { o.pop(); })>"Remove option"</button>
                </div>
            </fieldset>
            <div class="budget">
                <label for="budget">"Thinking budget"</label>
                <input id="budget" type="range" min="128" max="8192" step="64"
                    prop:value=move || budget.get().to_string()
                    on:input=move |ev| budget.set(event_target_value(&ev).parse().unwrap_or(DEFAULT_BUDGET as u32)) />
                <output for="budget" data-testid="budget-value">{move || format!("{} tokens", budget.get())}</output>
                <label class="field inline">"Exact: "
                    <input type="number" min="0" max="32768" aria-label="Exact thinking budget"
                        prop:value=move || budget.get().to_string()
                        on:change=move |ev| { if let Ok(b) = event_target_value(&ev).parse::<u32>() { budget.set(b.min(32768)) } } />
                </label>
                <div class="presets" role="group" aria-label="Budget presets">
                    {PRESETS.iter().map(|&p| view! {
                        <button type="button" class="chip" class:active=move || budget.get() == p on:click=move |_| budget.set(p)>{p.to_string()}</button>
                    }).collect_view()}
                </div>
            </div>
            <WaitCountField value=waits label="Wait count" />
            <MinThinkingField value=min_thinking label="Minimum thinking tokens" />
            <details class="advanced" prop:open=move || advanced.get() on:toggle=move |ev| {
                advanced.set(event_target::<web_sys::Element>(&ev).has_attribute("open"))
            }>
                <summary>"Advanced sampling"</summary>
                <label class="field inline">"Temperature " <input type="number" min="0" max="2" step="0.1" prop:value=move || temperature.get().to_string()
                    on:input=move |ev| temperature.set(event_target_value(&ev).parse().unwrap_or(defaults.temperature)) /></label>
                <label class="field inline">"Top-p " <input type="number" min="0.05" max="1" step="0.05" prop:value=move || top_p.get().to_string()
                    on:input=move |ev| top_p.set(event_target_value(&ev).parse().unwrap_or(defaults.top_p)) /></label>
                <label class="field inline">"Seed " <input type="number" min="0" prop:value=move || seed.get().to_string()
                    on:input=move |ev| seed.set(event_target_value(&ev).parse().unwrap_or(defaults.seed)) /></label>
                <p class="muted">"Temperature 0 is greedy decoding, as in the m1 paper."</p>
            </details>
            <div class="row actions">
                <button type="submit" disabled=move || state.running.get() || state.loading.get() || state.model.get().is_none()>"Ask"</button>
                <button type="button" class="secondary" disabled=move || !state.running.get()
                    on:click=move |_| e_stop.send(&Request::Stop {})>"Stop"</button>
            </div>
        </form>
    }
}
