//! "Evaluate": the budget sweep over a data set (the bundled PubMedQA test split, the
//! built-in samples, or an uploaded MedQA-form JSONL), with progress, Stop and Resume, a
//! results table, the accuracy-by-budget chart, CSV/JSON export, and a second evaluation on
//! the same chart. Every finished item is saved to OPFS at once (`store`), so a reload
//! shows the results and an interrupted evaluation resumes at the item it stopped in.

use leptos::prelude::*;
use m1_engine::backend::Sampling;
use m1_engine::reason::StopReason;
use send_wrapper::SendWrapper;

use super::chart::{AccuracyChart, Series};
use super::engine::EngineHandle;
use super::fields::{default_budgets_text, BudgetsField, MinThinkingField};
use super::state::{now_ms, AppState};
use super::store;
use super::sweep::{self, SweepState};
use crate::evaluation::{
    parse_budgets, pick, read_items, sample_items, Evaluation, Item, ItemResult, FORMAT,
};
use crate::protocol::{ErrorKind, Request, SweepSettings};

const PUBMEDQA_URL: &str = "data/pubmedqa-test.jsonl";
const PUBMEDQA: &str = "PubMedQA PQA-L test";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    PubMedQa,
    Samples,
    File,
}

fn fmt_duration(ms: f64) -> String {
    let s = (ms / 1000.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn iso_now() -> String {
    String::from(js_sys::Date::new_0().to_iso_string())
}

#[component]
pub fn EvaluateView(engine: EngineHandle, state: AppState, sweep: SweepState) -> impl IntoView {
    let source = RwSignal::new(Source::PubMedQa);
    // A picked JSONL: its name and text (read when picked, so a bad file is said at once).
    let file = RwSignal::new(None::<(String, String)>);
    let limit = RwSignal::new(20u32);
    // At random by default: the PubMedQA file is ordered by answer (its first 60 items are
    // all "yes"), so its first N would measure one kind of item only.
    let random = RwSignal::new(true);
    let seed = RwSignal::new(1u64);
    let budgets_text = RwSignal::new(default_budgets_text());
    let min_thinking = RwSignal::new(0u32);
    let current = RwSignal::new(None::<Evaluation>);
    let saved = RwSignal::new(Vec::<Evaluation>::new());
    let compare_with = RwSignal::new(None::<String>);
    let driving = RwSignal::new(false);
    let stop_requested = RwSignal::new(false);
    let selected = RwSignal::new(None::<usize>);
    let note = RwSignal::new(None::<String>);
    // This session's pace, for the ETA: (items finished, ms spent on them).
    let pace = RwSignal::new((0usize, 0.0f64));

    let refresh = move || {
        leptos::task::spawn_local(async move {
            match store::list().await {
                Ok((list, unreadable)) => {
                    if current.get_untracked().is_none() {
                        current.set(list.first().cloned());
                    }
                    saved.set(list);
                    if !unreadable.is_empty() {
                        note.set(Some(format!(
                            "Some stored evaluations could not be read and were left alone: {}",
                            unreadable.join("; ")
                        )));
                    }
                }
                Err(e) => note.set(Some(format!(
                    "Evaluations cannot be kept in this browser's storage ({e}); results last until the page is closed."
                ))),
            }
        });
    };
    refresh();

    let busy =
        move || state.running.get() || sweep.running.get() || state.loading.get() || driving.get();
    let persist = move |e: Evaluation| async move {
        if let Err(err) = store::save(&e).await {
            note.set(Some(format!("Could not save the evaluation: {err}")));
        }
        saved.update(|list| match list.iter_mut().find(|s| s.id == e.id) {
            Some(s) => *s = e,
            None => list.insert(0, e),
        });
    };

    // Runs the current evaluation's remaining items, one sweep each, saving after each.
    let engine_d = engine.clone();
    let drive = move || {
        let engine = engine_d.clone();
        stop_requested.set(false);
        driving.set(true);
        pace.set((0, 0.0));
        leptos::task::spawn_local(async move {
            loop {
                let next = current.with_untracked(|e| {
                    e.as_ref().and_then(|e| {
                        e.next_item().map(|(i, item)| {
                            (i, item.question.clone(), e.settings.clone(), e.items.len())
                        })
                    })
                });
                let Some((i, question, settings, total)) = next else {
                    state.status.set("Evaluation finished.".into());
                    break;
                };
                if stop_requested.get_untracked() {
                    state
                        .status
                        .set("Evaluation stopped: Resume goes on from here.".into());
                    break;
                }
                state
                    .status
                    .set(format!("Evaluating item {} of {total}…", i + 1));
                let t0 = now_ms();
                match sweep::run(&engine, sweep, question, settings).await {
                    Ok(summary) if summary.stop == StopReason::Cancelled => {
                        state.status.set(format!(
                            "Evaluation stopped in item {}: Resume runs it again from its start.",
                            i + 1
                        ));
                        break;
                    }
                    Ok(summary) => {
                        let mut recorded = None;
                        current.update(|e| {
                            if let Some(e) = e {
                                if e.record(&summary).is_ok() {
                                    recorded = Some(e.clone());
                                }
                            }
                        });
                        pace.update(|(n, ms)| {
                            *n += 1;
                            *ms += now_ms() - t0;
                        });
                        if let Some(e) = recorded {
                            persist(e).await;
                        }
                    }
                    Err(_) => break, // the worker's error is on screen
                }
            }
            driving.set(false);
        });
    };

    let drive_start = drive.clone();
    let start = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let Some(model) = state.model.get_untracked() else {
            return state
                .error
                .set(Some((ErrorKind::BadRequest, "Load a model first.".into())));
        };
        let budgets = match parse_budgets(&budgets_text.get_untracked()) {
            Ok(b) => b,
            Err(m) => return state.error.set(Some((ErrorKind::BadRequest, m))),
        };
        let n = limit.get_untracked().max(1) as usize;
        let seed = random.get_untracked().then(|| seed.get_untracked());
        let src = source.get_untracked();
        let picked = file.get_untracked();
        let drive = drive_start.clone();
        state.error.set(None);
        leptos::task::spawn_local(async move {
            let loaded: Result<(String, Vec<Item>), String> = match src {
                Source::PubMedQa => match store::fetch_text(PUBMEDQA_URL).await {
                    Ok(text) => read_items(&text).map(|items| (PUBMEDQA.to_string(), items)),
                    Err(e) => Err(format!("the bundled PubMedQA set could not be read: {e}")),
                },
                Source::Samples => Ok(("Built-in samples".to_string(), sample_items())),
                Source::File => match picked {
                    Some((name, text)) => read_items(&text).map(|items| (name, items)),
                    None => Err("Choose a JSONL file first.".into()),
                },
            };
            let (label, items) = match loaded {
                Ok(l) => l,
                Err(m) => return state.error.set(Some((ErrorKind::BadRequest, m))),
            };
            let items = pick(items, n, seed);
            let e = Evaluation {
                format: FORMAT,
                id: format!("eval-{}", js_sys::Date::now() as u64),
                created: iso_now(),
                model: model.name.clone(),
                device: model.device.clone(),
                context: model.context,
                source: match seed {
                    Some(s) => format!("{label}, {} at random (seed {s})", items.len()),
                    None => format!("{label}, first {}", items.len()),
                },
                settings: SweepSettings {
                    budgets,
                    waits: 0,
                    min_thinking: min_thinking.get_untracked(),
                    max_answer_tokens: state.max_answer.get_untracked(),
                    sampling: Sampling::default(),
                },
                items,
                results: Vec::new(),
            };
            selected.set(None);
            compare_with.set(None);
            current.set(Some(e.clone()));
            persist(e).await;
            drive();
        });
    };

    let e_stop = engine.clone();
    let stop = move |_| {
        stop_requested.set(true);
        e_stop.send(&Request::Stop {});
    };
    // Resuming needs the model the evaluation began with, at the same context size.
    let resume_blocker = move || -> Option<String> {
        let e = current.get()?;
        if e.is_finished() {
            return None;
        }
        match state.model.get() {
            None => Some(format!("Load {} to resume this evaluation.", e.model)),
            Some(m) if m.name != e.model || m.context != e.context => Some(format!(
                "This evaluation ran on {} with a {}-token context; load that model to resume it.",
                e.model, e.context
            )),
            Some(_) => None,
        }
    };
    let can_resume = move || {
        current.get().is_some_and(|e| !e.is_finished()) && resume_blocker().is_none() && !busy()
    };
    let drive_resume = drive.clone();

    let on_file = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(f) = input.files().and_then(|l| l.get(0)) else {
            return;
        };
        let f = SendWrapper::new(f);
        leptos::task::spawn_local(async move {
            match store::file_text(&f).await {
                Ok(text) => match read_items(&text) {
                    Ok(items) => {
                        note.set(Some(format!("{}: {} questions.", f.name(), items.len())));
                        file.set(Some((f.name(), text)));
                    }
                    Err(m) => {
                        file.set(None);
                        state
                            .error
                            .set(Some((ErrorKind::BadRequest, format!("{}: {m}", f.name()))));
                    }
                },
                Err(m) => state
                    .error
                    .set(Some((ErrorKind::BadRequest, format!("{}: {m}", f.name())))),
            }
        });
    };

    let series = Signal::derive(move || {
        let mut out = Vec::new();
        if let Some(e) = current.get() {
            out.push(Series {
                label: e.label(),
                rows: e.accuracy(),
            });
            if let Some(other) = compare_with
                .get()
                .and_then(|id| saved.get().into_iter().find(|s| s.id == id && s.id != e.id))
            {
                out.push(Series {
                    label: other.label(),
                    rows: other.accuracy(),
                });
            }
        }
        out
    });

    let progress = move || {
        let e = current.get()?;
        let (done, total) = (e.results.len(), e.items.len());
        let (n, ms) = pace.get();
        let eta = (driving.get() && n > 0 && done < total).then(|| {
            format!(
                " · about {} left",
                fmt_duration(ms / n as f64 * (total - done) as f64)
            )
        });
        let rate = driving
            .get()
            .then(|| sweep.clock.tokens_per_s())
            .flatten()
            .map(|r| format!(" · {r:.1} tok/s"));
        Some(view! {
            <div class="progress-line">
                <progress max=total.to_string() value=done.to_string() aria-label="Evaluation progress"></progress>
                <span data-testid="eval-progress">{format!("{done} / {total} items")}</span>
                <span class="muted">{rate.unwrap_or_default()}{eta.unwrap_or_default()}</span>
            </div>
        })
    };

    let export = move |csv: bool| {
        if let Some(e) = current.get_untracked() {
            let r = if csv {
                store::download(&format!("{}.csv", e.id), "text/csv", &e.to_csv())
            } else {
                store::download(&format!("{}.json", e.id), "application/json", &e.to_json())
            };
            if let Err(m) = r {
                note.set(Some(format!("The download could not start: {m}")));
            }
        }
    };

    let results_table = move || {
        let e = current.get()?;
        let budgets = e.settings.budgets.clone();
        let head = budgets
            .iter()
            .map(|b| view! { <th scope="col">{format!("{b} tokens")}</th> })
            .collect_view();
        let rows = e
            .results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let cells = budgets
                    .iter()
                    .map(|&b| {
                        let c = r.cell(b);
                        let choice = c.and_then(|c| c.choice.clone()).unwrap_or_else(|| "–".into());
                        let (mark, class) = match c.and_then(|c| c.correct) {
                            Some(true) => ("✓", "right"),
                            Some(false) => ("✗", "wrong"),
                            None => ("", ""),
                        };
                        view! { <td class=class data-budget=b.to_string() data-choice=choice.clone()>{format!("{choice} {mark}")}</td> }
                    })
                    .collect_view();
                view! {
                    <tr data-testid="eval-row" data-id=r.id.clone() class:selected=move || selected.get() == Some(i)>
                        <td><button type="button" class="link" aria-label=format!("Read the reasoning of item {}", i + 1)
                            on:click=move |_| selected.set(Some(i))>{(i + 1).to_string()}</button></td>
                        <td class="id">{r.id.clone()}</td>
                        <td data-col="gold">{r.gold.clone().unwrap_or_else(|| "–".into())}</td>
                        {cells}
                    </tr>
                }
            })
            .collect_view();
        Some(view! {
            <table class="results" data-testid="eval-table">
                <caption>"Choices per item and budget (✓ right, ✗ wrong); pick an item's number to read its reasoning"</caption>
                <thead><tr><th scope="col">"#"</th><th scope="col">"Item"</th><th scope="col">"Gold"</th>{head}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
        })
    };

    let detail = move || {
        let i = selected.get()?;
        let e = current.get()?;
        let r: ItemResult = e.results.get(i)?.clone();
        let item = e.items.get(i)?.clone();
        Some(view! {
            <section class="panel detail" role="region" aria-label="Item reasoning" data-testid="eval-detail">
                <h3>{format!("Item {} ({})", i + 1, r.id)}</h3>
                <p class="question-shown">{item.question.question.clone()}</p>
                <ol type="A">{item.question.options.iter().map(|(_, t)| view! { <li>{t.clone()}</li> }).collect_view()}</ol>
                <details open>
                    <summary>{format!("Reasoning ({} tokens)", r.think_tokens)}</summary>
                    <div class="think">{r.thinking.clone()}</div>
                </details>
                <ul>{r.budgets.iter().map(|c| view! {
                    <li>{format!("{} tokens: {} → {}", c.budget, c.answer.trim(), c.choice.clone().unwrap_or_else(|| "no option read".into()))}</li>
                }).collect_view()}</ul>
                <button type="button" class="secondary" on:click=move |_| selected.set(None)>"Close"</button>
            </section>
        })
    };

    view! {
        <section class="panel evaluate" aria-labelledby="eval-h">
            <h2 id="eval-h">"Evaluate"</h2>
            <p class="muted">"Each item is answered at every budget from one thinking trace; accuracy per budget with 95% Wilson intervals. Greedy decoding, as in the m1 paper. Everything runs on this device."</p>
            <form class="eval-form" on:submit=start>
                <label class="field">"Data "
                    <select aria-label="Data" on:change=move |ev| source.set(match event_target_value(&ev).as_str() {
                        "samples" => Source::Samples, "file" => Source::File, _ => Source::PubMedQa })>
                        <option value="pubmedqa" selected>"PubMedQA test set (500 items, bundled)"</option>
                        <option value="samples">{format!("Built-in samples ({})", crate::samples::SAMPLES.len())}</option>
                        <option value="file">"A JSONL file (MedQA form)…"</option>
                    </select>
                </label>
                {move || (source.get() == Source::PubMedQa).then(|| view! {
                    <p class="muted">"276 yes, 169 no, 55 maybe, in that order: draw the items at random for a fair sample."</p>
                })}
                {move || (source.get() == Source::File).then(|| view! {
                    <input type="file" accept=".jsonl,.json,application/json" aria-label="Questions file" on:change=on_file />
                })}
                <label class="field inline">"Items "
                    <input type="number" min="1" aria-label="Items" prop:value=move || limit.get().to_string()
                        on:input=move |ev| limit.set(event_target_value(&ev).parse::<u32>().unwrap_or(1).max(1)) />
                </label>
                <label class="field inline">
                    <input type="checkbox" aria-label="Items at random" prop:checked=move || random.get() on:change=move |ev| random.set(event_target_checked(&ev)) />
                    " at random, seed "
                    <input type="number" min="0" aria-label="Seed" disabled=move || !random.get() prop:value=move || seed.get().to_string()
                        on:input=move |ev| seed.set(event_target_value(&ev).parse().unwrap_or(1)) />
                </label>
                <BudgetsField value=budgets_text label="Evaluation budgets" />
                <MinThinkingField value=min_thinking label="Evaluation minimum thinking" />
                <div class="row actions">
                    <button type="submit" disabled=move || busy() || state.model.get().is_none()>"Run evaluation"</button>
                    <button type="button" class="secondary" disabled=move || !driving.get() on:click=stop>"Stop"</button>
                    <button type="button" class="secondary" disabled=move || !can_resume()
                        on:click=move |_| drive_resume()>"Resume"</button>
                </div>
                {move || resume_blocker().map(|m| view! { <p class="muted" data-testid="resume-note">{m}</p> })}
            </form>
            {move || note.get().map(|n| view! { <p class="muted" data-testid="eval-note">{n}</p> })}
            {progress}
            {move || current.get().map(|e| view! {
                <p class="eval-label" data-testid="eval-label">{e.label()}</p>
            })}
            {move || current.get().is_some().then(|| view! {
                <AccuracyChart series=series />
                <div class="row">
                    <button type="button" class="secondary" on:click=move |_| export(true)>"Download CSV"</button>
                    <button type="button" class="secondary" on:click=move |_| export(false)>"Download JSON"</button>
                    <label class="field inline">"Compare with "
                        <select aria-label="Compare with" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            compare_with.set((!v.is_empty()).then_some(v));
                        }>
                            <option value="">"(none)"</option>
                            {move || {
                                let cur = current.get().map(|e| e.id).unwrap_or_default();
                                saved.get().into_iter().filter(|s| s.id != cur && !s.results.is_empty()).map(|s| view! {
                                    <option value=s.id.clone() selected=compare_with.get().as_deref() == Some(s.id.as_str())>{s.label()}</option>
                                }).collect_view()
                            }}
                        </select>
                    </label>
                </div>
            })}
            <div class="scroll-x">{results_table}</div>
            {detail}
            <details class="saved" data-testid="saved-evaluations">
                <summary>{move || format!("Saved evaluations ({})", saved.get().len())}</summary>
                <ul>
                    {move || saved.get().into_iter().map(|s| {
                        let (id_open, id_del) = (s.id.clone(), s.id.clone());
                        let open = s.clone();
                        view! {
                            <li>
                                <span>{format!("{} · {}", s.created.get(..16).unwrap_or(&s.created).replace('T', " "), s.label())}</span>
                                <button type="button" class="secondary" disabled=move || driving.get()
                                    aria-label=format!("Open {id_open}")
                                    on:click=move |_| { selected.set(None); current.set(Some(open.clone())) }>"Open"</button>
                                <button type="button" class="secondary" disabled=move || driving.get()
                                    aria-label=format!("Delete {id_del}")
                                    on:click=move |_| {
                                        let id = id_del.clone();
                                        leptos::task::spawn_local(async move {
                                            if let Err(e) = store::delete(&id).await {
                                                note.set(Some(format!("Could not delete {id}: {e}")));
                                            }
                                            saved.update(|l| l.retain(|s| s.id != id));
                                            if current.get_untracked().is_some_and(|c| c.id == id) {
                                                current.set(None);
                                            }
                                        });
                                    }>"Delete"</button>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </details>
        </section>
    }
}
