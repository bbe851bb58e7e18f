//! The fields that several views ask for, each written once: its bounds, how its text is
//! read, its hint. Each view passes its own signal and accessible name.

use leptos::prelude::*;
use m1_engine::reason::DEFAULT_SWEEP_BUDGETS;

use super::state::QuestionDraft;
use crate::samples::SAMPLES;

/// The most "Wait" insertions a view offers: each adds a stretch of thinking, and past a
/// few the page would only show the budget running out.
const MAX_WAITS: u32 = 8;

/// How many times an end of thinking is replaced by "Wait" (budget forcing's extension).
#[component]
pub fn WaitCountField(value: RwSignal<u32>, label: &'static str) -> impl IntoView {
    view! {
        <label class="field inline">"Wait count "
            <input type="number" min="0" max=MAX_WAITS aria-label=label prop:value=move || value.get().to_string()
                on:input=move |ev| value.set(event_target_value(&ev).parse::<u32>().unwrap_or(0).min(MAX_WAITS)) />
        </label>
    }
}

/// s1's minimum thinking: an earlier end of thinking is replaced by "Wait".
#[component]
pub fn MinThinkingField(value: RwSignal<u32>, label: &'static str) -> impl IntoView {
    view! {
        <label class="field inline" title="An earlier end of thinking is replaced by 'Wait' (s1's minimum thinking); these do not count against the Wait count">"Minimum thinking "
            <input type="number" min="0" step="64" aria-label=label prop:value=move || value.get().to_string()
                on:input=move |ev| value.set(event_target_value(&ev).parse::<u32>().unwrap_or(0)) />
        </label>
    }
}

/// The engine's default sweep budgets, as the field shows them.
pub fn default_budgets_text() -> String {
    DEFAULT_SWEEP_BUDGETS
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The budgets of a sweep, as typed ("0, 256, 1024"); read by `parse_budgets` on submit,
/// so a bad list is said then.
#[component]
pub fn BudgetsField(value: RwSignal<String>, label: &'static str) -> impl IntoView {
    view! {
        <label class="field inline">"Budgets "
            <input type="text" size="32" aria-label=label prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev)) />
        </label>
    }
}

/// The sample questions; picking one fills the draft, and the picker shows the draft's
/// sample (none once the question is edited or cleared).
#[component]
pub fn SampleSelect(
    draft: QuestionDraft,
    placeholder: &'static str,
    testid: &'static str,
    label: Option<&'static str>,
) -> impl IntoView {
    view! {
        <select aria-label=label data-testid=testid
            prop:value=move || draft.sample.get().map(|i| i.to_string()).unwrap_or_default()
            on:change=move |ev| { if let Ok(i) = event_target_value(&ev).parse::<usize>() { draft.load_sample(i) } }>
            <option value="">{placeholder}</option>
            {SAMPLES.iter().enumerate().map(|(i, s)| view! {
                <option value=i.to_string()>{format!("{}: {}", s.specialty, s.question.chars().take(60).collect::<String>())}</option>
            }).collect_view()}
        </select>
    }
}
