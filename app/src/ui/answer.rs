//! The two streams: the Reasoning panel (collapsible, auto-scrolling until the reader
//! scrolls up, a "used / budget" counter, markers where "Wait" was forced or the budget cut
//! thinking off) and the Answer panel (Markdown, the extracted option highlighted).

use leptos::prelude::*;
use pulldown_cmark::{html, Event as Md, Options, Parser};

use super::state::{AppState, Piece};

#[component]
pub fn ReasoningPanel(state: AppState) -> impl IntoView {
    let scroller = NodeRef::<leptos::html::Div>::new();
    let follow = RwSignal::new(true);
    // Follow the stream while the reader is at the bottom; stop when they scroll up.
    Effect::new(move |_| {
        state.pieces.track();
        if follow.get_untracked() {
            if let Some(el) = scroller.get() {
                el.set_scroll_top(el.scroll_height());
            }
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = scroller.get() {
            follow.set(el.scroll_top() + el.client_height() + 24 >= el.scroll_height());
        }
    };
    view! {
        <section class="panel reasoning" role="region" aria-label="Reasoning">
            <details open>
                <summary>
                    "Reasoning "
                    <span class="counter" data-testid="think-counter">
                        {move || format!("{} / {}", state.think_tokens.get(), state.run_budget.get().unwrap_or_else(|| state.budget.get()))}
                    </span>
                </summary>
                <div class="think" node_ref=scroller on:scroll=on_scroll data-testid="reasoning-text">
                    {move || state.pieces.get().into_iter().map(|p| match p {
                        Piece::Text(t) => view! { <span>{t}</span> }.into_any(),
                        Piece::Wait(i) => view! { <mark class="marker wait" data-testid="wait-marker">{format!(" Wait #{i} ")}</mark> }.into_any(),
                        Piece::End { budget: true } => view! { <mark class="marker cut" data-testid="budget-marker">" ⟂ budget reached: answer forced "</mark> }.into_any(),
                        Piece::End { budget: false } => view! { <mark class="marker end">" thinking ended "</mark> }.into_any(),
                    }).collect_view()}
                </div>
            </details>
        </section>
    }
}

#[component]
pub fn AnswerPanel(state: AppState) -> impl IntoView {
    let html = move || render_markdown(&state.answer.get());
    view! {
        <section class="panel answer" role="region" aria-label="Answer">
            <h2>"Answer"</h2>
            {move || state.answer_prefix.get().filter(|p| !p.is_empty()).map(|p| view! {
                <p class="prefix" data-testid="answer-prefix">{p}</p>
            })}
            <div class="md" data-testid="answer-text" inner_html=html></div>
            {move || state.summary.get().map(|s| {
                let choice = s.choice.clone();
                let expected = state.expected.get();
                view! {
                    <p class="choice" data-testid="choice">
                        {match &choice {
                            Some(c) => view! { "Chosen option: " <mark class="chosen" data-testid="chosen-option">{c.clone()}</mark> }.into_any(),
                            None => view! { "No option could be read from the answer." }.into_any(),
                        }}
                        {expected.map(|e| {
                            let right = choice.as_deref() == Some(e.as_str());
                            view! { <span class=if right { "verdict right" } else { "verdict wrong" } data-testid="verdict">
                                {format!(" · correct answer: {e} ({})", if right { "right" } else { "wrong" })}
                            </span> }
                        })}
                    </p>
                    <p class="stats muted" data-testid="stats">{format!(
                        "{} thinking + {} answer tokens · stop: {:?} · first token {} · prefill {} · decode {}",
                        s.think_tokens, s.answer_tokens, s.think_stop.unwrap_or(s.stop),
                        s.time_to_first_token_ms.map(|t| format!("{:.0} ms", t)).unwrap_or("–".into()),
                        s.prefill_tokens_per_s.map(|t| format!("{t:.1} tok/s")).unwrap_or("–".into()),
                        s.decode_tokens_per_s.map(|t| format!("{t:.1} tok/s")).unwrap_or("–".into()),
                    )}</p>
                }
            })}
            {move || (state.running.get()).then(|| view! {
                <p class="stats muted" data-testid="live-stats">{move || format!(
                    "{} tokens · {}",
                    state.clock.sampled.get(),
                    state.clock.tokens_per_s().map(|t| format!("{t:.1} tok/s")).unwrap_or("waiting for the first token…".into())
                )}</p>
            })}
        </section>
    }
}

/// Markdown to HTML with raw HTML shown as text: model output is untrusted and must never
/// become markup or script in the page.
pub fn render_markdown(src: &str) -> String {
    let parser =
        Parser::new_ext(src, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(|ev| {
            match ev {
                Md::Html(t) | Md::InlineHtml(t) => Md::Text(t),
                other => other,
            }
        });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}
