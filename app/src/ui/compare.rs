//! "Compare budgets": one question answered at several thinking budgets from one thinking
//! trace. The shared reasoning shows a marker at each budget's cut; per budget, the answer,
//! the chosen option, whether it is right (for a sample) and the time; and where the choice
//! changes from one budget to the next, the page says so.

use leptos::prelude::*;
use m1_engine::backend::Sampling;

use super::engine::EngineHandle;
use super::fields::{
    default_budgets_text, BudgetsField, MinThinkingField, SampleSelect, WaitCountField,
};
use super::state::{AppState, QuestionDraft};
use super::sweep::{self, SweepState, TracePiece};
use crate::evaluation::{choice_changes, parse_budgets, BudgetCell};
use crate::protocol::{ErrorKind, Request, SweepSettings};

fn seconds(ms: Option<f64>) -> String {
    ms.map_or("–".into(), |ms| format!("{:.1} s", ms / 1000.0))
}

fn choice_text(c: &Option<String>) -> String {
    c.clone().unwrap_or_else(|| "none read".into())
}

#[component]
pub fn CompareView(
    engine: EngineHandle,
    state: AppState,
    draft: QuestionDraft,
    sweep: SweepState,
) -> impl IntoView {
    let budgets_text = RwSignal::new(default_budgets_text());
    let waits = RwSignal::new(0u32);
    let min_thinking = RwSignal::new(0u32);
    // The gold letter of the question the shown sweep ran on.
    let gold = RwSignal::new(None::<String>);
    let busy = move || state.running.get() || sweep.running.get() || state.loading.get();
    let e_run = engine.clone();
    let run = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let budgets = match parse_budgets(&budgets_text.get_untracked()) {
            Ok(b) => b,
            Err(m) => return state.error.set(Some((ErrorKind::BadRequest, m))),
        };
        let question = match draft.take_question() {
            Ok(q) => q,
            Err(m) => return state.error.set(Some((ErrorKind::BadRequest, m))),
        };
        state.error.set(None);
        gold.set(draft.expected.get_untracked());
        state
            .status
            .set("Comparing budgets: thinking once, answering at each budget…".into());
        let settings = SweepSettings {
            budgets,
            waits: waits.get_untracked(),
            min_thinking: min_thinking.get_untracked(),
            max_answer_tokens: state.max_answer.get_untracked(),
            sampling: Sampling::default(),
        };
        let engine = e_run.clone();
        leptos::task::spawn_local(async move {
            match sweep::run(&engine, sweep, question, settings).await {
                Ok(s) if s.stop == m1_engine::reason::StopReason::Cancelled => state
                    .status
                    .set("Stopped: the budgets answered so far are shown.".into()),
                Ok(_) => state.status.set("Done: every budget is answered.".into()),
                Err(_) => {} // the error is on screen already
            }
        });
    };
    let cells = move || -> Vec<BudgetCell> {
        sweep
            .results
            .get()
            .iter()
            .map(|r| BudgetCell::from_result(r, gold.get().as_deref()))
            .collect()
    };
    let changes = move || {
        if sweep.running.get() || sweep.results.get().is_empty() {
            return None;
        }
        let ch = choice_changes(&cells());
        Some(if ch.is_empty() {
            view! { <p data-testid="choice-changes">"The chosen option is the same at every budget."</p> }.into_any()
        } else {
            view! {
                <ul class="changes" data-testid="choice-changes">
                    {ch.into_iter().map(|(b0, c0, b1, c1)| view! {
                        <li data-testid="choice-change">{format!(
                            "The chosen option changes from {} at {b0} tokens to {} at {b1} tokens.",
                            choice_text(&c0), choice_text(&c1)
                        )}</li>
                    }).collect_view()}
                </ul>
            }
            .into_any()
        })
    };
    view! {
        <section class="panel compare" aria-labelledby="compare-h">
            <h2 id="compare-h">"Compare budgets"</h2>
            <p class="muted">"The model thinks once, up to the largest budget; at each smaller budget its thinking is cut there and the answer forced, exactly as a separate run at that budget would be."</p>
            <form class="sweep-form" on:submit=run>
                <label class="field">"Question: "
                    <SampleSelect draft=draft placeholder="the one in the Ask tab, or a sample…" testid="compare-sample" label=Some("Sample question") />
                </label>
                <blockquote class="question-shown" data-testid="compare-question">
                    {move || { let q = draft.question.get(); if q.trim().is_empty() { "No question yet: pick a sample or write one in the Ask tab.".to_string() } else { q } }}
                    <ol type="A">{move || draft.options.get().into_iter().filter(|o| !o.trim().is_empty()).map(|o| view! { <li>{o}</li> }).collect_view()}</ol>
                </blockquote>
                <BudgetsField value=budgets_text label="Budgets" />
                <WaitCountField value=waits label="Sweep wait count" />
                <MinThinkingField value=min_thinking label="Sweep minimum thinking" />
                <div class="row actions">
                    <button type="submit" disabled=move || busy() || state.model.get().is_none()>"Compare"</button>
                    <button type="button" class="secondary" disabled=move || !sweep.running.get()
                        on:click=move |_| engine.send(&Request::Stop {})>"Stop"</button>
                </div>
            </form>
            <div class="streams">
                <section class="panel reasoning" role="region" aria-label="Shared reasoning">
                    <h3>"Shared reasoning " <span class="counter" data-testid="sweep-counter">{move || format!("{} tokens", sweep.think_tokens.get())}</span></h3>
                    <div class="think" data-testid="sweep-reasoning">
                        {move || sweep.pieces.get().into_iter().map(|p| match p {
                            TracePiece::Text(t) => view! { <span>{t}</span> }.into_any(),
                            TracePiece::Wait(i) => view! { <mark class="marker wait">{format!(" Wait #{i} ")}</mark> }.into_any(),
                            TracePiece::Cut { budgets, think_tokens, budget_exhausted } => {
                                let names = budgets.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ");
                                let why = if budget_exhausted { "budget reached" } else { "thinking ended" };
                                view! { <mark class="marker cut" data-testid="cut-marker" data-budgets=names.clone()
                                    data-think-tokens=think_tokens.to_string()>{format!(" ⟂ {names}: {why} ")}</mark> }.into_any()
                            }
                        }).collect_view()}
                    </div>
                </section>
                <section class="panel" role="region" aria-label="Answers by budget">
                    <h3>"Answers by budget"</h3>
                    <table class="budgets" data-testid="budget-table">
                        <thead><tr><th>"Budget"</th><th>"Answer"</th><th>"Chosen"</th><th>"Correct?"</th><th>"Time"</th></tr></thead>
                        <tbody>
                            {move || {
                                let g = gold.get();
                                let results = sweep.results.get();
                                let answered: Vec<usize> = results.iter().map(|r| r.budget).collect();
                                let rows = results.iter().map(|r| {
                                    let c = BudgetCell::from_result(r, g.as_deref());
                                    let verdict = match c.correct { Some(true) => "right", Some(false) => "wrong", None => "–" };
                                    view! {
                                        <tr data-testid="budget-row" data-budget=r.budget.to_string()>
                                            <th scope="row">{r.budget.to_string()}</th>
                                            <td class="answer" data-col="answer">{r.summary.answer.trim().to_string()}</td>
                                            <td data-col="choice">{choice_text(&c.choice)}</td>
                                            <td data-col="correct">{verdict}</td>
                                            <td>{format!("cut at {} · answer {}", seconds(r.cut_ms), seconds(r.answer_ms))}</td>
                                        </tr>
                                    }
                                }).collect_view();
                                // The cut being answered now, while its answer streams.
                                let live = sweep.answers.get().into_iter().filter(|(b, _)| !answered.contains(b)).map(|(b, text)| view! {
                                    <tr class="live"><th scope="row">{b.to_string()}</th><td class="answer">{text}</td><td>"…"</td><td>"–"</td><td>"answering"</td></tr>
                                }).collect_view();
                                view! { {rows}{live} }
                            }}
                        </tbody>
                    </table>
                    {changes}
                </section>
            </div>
        </section>
    }
}
