//! The Leptos UI (main thread). All engine work happens in the worker.

mod answer;
mod ask;
mod chart;
mod compare;
mod device;
mod engine;
mod evaluate;
mod fields;
mod models;
mod state;
mod store;
mod sweep;

use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use crate::protocol::{ErrorKind, Event, Request};
use crate::remedy::{remedy, Remedy};
use answer::{AnswerPanel, ReasoningPanel};
use ask::AskForm;
use compare::CompareView;
use device::DevicePanel;
use engine::EngineHandle;
use evaluate::EvaluateView;
use models::{load, load_listed, load_model_list, ModelPanel};
use state::{AppState, AskDraft, QuestionDraft};
use sweep::SweepState;

/// The page's three views; the model panel and "About this device" are shared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum View {
    Ask,
    Compare,
    Evaluate,
}

impl View {
    const ALL: [View; 3] = [View::Ask, View::Compare, View::Evaluate];

    fn name(self) -> &'static str {
        match self {
            View::Ask => "Ask",
            View::Compare => "Compare budgets",
            View::Evaluate => "Evaluate",
        }
    }

    /// `?view=compare|evaluate`: a class can link straight to a view.
    fn from_param(v: &str) -> View {
        match v {
            "compare" => View::Compare,
            "evaluate" => View::Evaluate,
            _ => View::Ask,
        }
    }
}

/// `?kiosk=1[&model=ID][&budget=N][&idle=SECONDS]`: a full-screen, large-type page with no
/// model management that returns to the start after the idle time.
#[derive(Clone, Debug, Default)]
struct Kiosk {
    on: bool,
    model: Option<String>,
    budget: Option<u32>,
    idle_s: u32,
}

fn query() -> Vec<(String, String)> {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    search
        .trim_start_matches('?')
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "1"));
            let dec = |s: &str| {
                js_sys::decode_uri_component(s)
                    .ok()
                    .and_then(|v| v.as_string())
                    .unwrap_or_default()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn param(q: &[(String, String)], k: &str) -> Option<String> {
    q.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone())
}

#[component]
pub fn App() -> impl IntoView {
    let q = query();
    let kiosk = Kiosk {
        on: param(&q, "kiosk").is_some_and(|v| v != "0"),
        model: param(&q, "model"),
        budget: param(&q, "budget").and_then(|b| b.parse().ok()),
        idle_s: param(&q, "idle")
            .and_then(|b| b.parse().ok())
            .unwrap_or(120),
    };
    let force_cpu = param(&q, "cpu").is_some_and(|v| v != "0");
    let force_gpu = param(&q, "gpu").is_some_and(|v| v != "0");
    let threads = param(&q, "threads").and_then(|v| v.parse::<usize>().ok());
    let state = AppState::new();
    let sweep = SweepState::new();
    let draft = QuestionDraft::new();
    let settings = AskDraft::new();
    let view_now = RwSignal::new(param(&q, "view").map_or(View::Ask, |v| View::from_param(&v)));
    // `budget` and `max_answer` also serve classes (and tests) outside kiosk mode.
    if let Some(b) = kiosk.budget {
        state.budget.set(b.clamp(0, 32768));
    }
    if let Some(n) = param(&q, "max_answer").and_then(|v| v.parse::<u32>().ok()) {
        state.max_answer.set(n.clamp(1, 4096));
    }
    let (list, set_list) = signal(Vec::new());

    // Filled once the worker exists; the worker's first event asks for it.
    let engine_cell = std::rc::Rc::new(std::cell::OnceCell::<EngineHandle>::new());
    let cell = engine_cell.clone();
    let kiosk_model = kiosk.model.clone();
    let on_event = move |ev: Event| {
        match &ev {
            Event::Started {} => {
                if let Some(engine) = cell.get() {
                    engine.send(&Request::Init {
                        force_cpu,
                        force_gpu,
                        threads,
                    });
                    engine.send(&Request::ListCache {});
                }
            }
            Event::Ready { .. } if kiosk_model.is_some() => {
                // Kiosk: load the configured model from the cache when it is there, else the list.
                let want = kiosk_model.clone().unwrap_or_default();
                if let Some(engine) = cell.get().cloned() {
                    leptos::task::spawn_local(async move {
                        let models = load_model_list().await;
                        if let Some(m) = models.iter().find(|m| m.id == want || m.name == want) {
                            load_listed(&engine, &state, m);
                        }
                    });
                }
            }
            Event::Sweep { event } => sweep.apply(event.clone()),
            Event::Error { message, .. } => sweep.fail(message),
            _ => {}
        }
        state.apply(ev);
    };
    let engine = match EngineHandle::spawn(on_event) {
        Ok(engine) => {
            let _ = engine_cell.set(engine.clone());
            Some(engine)
        }
        Err(e) => {
            state.error.set(Some((ErrorKind::Internal, e)));
            None
        }
    };
    leptos::task::spawn_local(async move { set_list.set(load_model_list().await) });

    if kiosk.on {
        if let Some(body) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = body.class_list().add_1("kiosk");
        }
        let start_budget = state.budget.get_untracked();
        install_idle_reset(
            kiosk.idle_s,
            move || state.running.get_untracked() || state.loading.get_untracked(),
            move || {
                draft.clear();
                settings.reset();
                state.clear_run(start_budget);
                if let Some(w) = web_sys::window() {
                    w.scroll_to_with_x_and_y(0.0, 0.0);
                }
            },
        );
    }
    let offline_note = move || {
        web_sys::window().map(|w| !w.navigator().on_line()).unwrap_or(false).then(|| {
            view! { <p class="muted" data-testid="offline-note">"You are offline: cached models still work."</p> }
        })
    };
    // The action that fixes the error on screen: Retry resumes a broken download; after a
    // lost GPU the model loads again (from the cache copy when there is one).
    let remedy_engine = engine.clone();
    let remedy_view = move || {
        let (kind, _) = state.error.get()?;
        let lost = (kind == ErrorKind::DeviceLost).then(|| view! {
            <p class="error" data-testid="device-lost">"The GPU was reset and the model with it. Load the model again to continue."</p>
        });
        let action = remedy(kind, state.last_load.get().as_ref()).map(|r| {
            let engine = remedy_engine.clone();
            let (source, testid, label, status) = match r {
                Remedy::Retry(source) => (source, "retry", "Retry", "Resuming the download…"),
                Remedy::Reload(source) => (
                    source,
                    "reload-model",
                    "Reload the model",
                    "Loading the model again…",
                ),
                Remedy::PickAgain => {
                    return view! { <p>"Open the model file again to continue."</p> }.into_any()
                }
            };
            view! {
                <button type="button" data-testid=testid disabled=move || state.loading.get()
                    on:click=move |_| {
                        if let Some(e) = &engine {
                            state.start_load(&source, status.into());
                            load(e, source.clone());
                        }
                    }>{label}</button>
            }
            .into_any()
        });
        Some(view! { <div class="remedy">{lost}{action}</div> })
    };
    let kiosk_on = kiosk.on;

    view! {
        <header class="top">
            <h1>"m1"<span class="sub">" medical reasoning, in your browser"</span></h1>
            <p class="privacy">"Runs entirely on this device. Nothing you type leaves it. Not medical advice."</p>
        </header>
        <main>
            <p role="status" aria-live="polite" data-testid="engine-status">{move || state.status.get()}</p>
            {offline_note}
            {move || {
                let notes = state.cache_notes.get();
                (!notes.is_empty()).then(|| view! {
                    <div class="cache-notes" role="status" data-testid="cache-notes">
                        {notes.into_iter().map(|n| view! { <p class="muted">{n}</p> }).collect_view()}
                    </div>
                })
            }}
            {move || state.error.get().map(|(_, e)| view! { <p class="error" role="alert" data-testid="error">{e}</p> })}
            {remedy_view}
            {engine.map(|engine| view! {
                {(!kiosk_on).then(|| view! { <ModelPanel engine=engine.clone() state=state list=list /> })}
                {kiosk_on.then_some(move || state.model.get().map(|m| view! {
                    <p class="loaded">{m.name.clone()}{if m.is_m1 { " · m1" } else { " · not m1 (demo model)" }}</p>
                }))}
                {(!kiosk_on).then(|| view! {
                    <nav class="views" role="tablist" aria-label="Views">
                        {View::ALL.into_iter().map(|v| view! {
                            <button type="button" role="tab" class="tab" aria-selected=move || (view_now.get() == v).to_string()
                                on:click=move |_| view_now.set(v)>{v.name()}</button>
                        }).collect_view()}
                    </nav>
                })}
                <div class="columns" role="tabpanel" aria-label="Ask" hidden=move || view_now.get() != View::Ask>
                    <AskForm engine=engine.clone() state=state draft=draft settings=settings />
                    <div class="streams">
                        <ReasoningPanel state=state />
                        <AnswerPanel state=state />
                    </div>
                </div>
                {(!kiosk_on).then(|| view! {
                    <div role="tabpanel" aria-label="Compare budgets" hidden=move || view_now.get() != View::Compare>
                        <CompareView engine=engine.clone() state=state draft=draft sweep=sweep />
                    </div>
                    <div role="tabpanel" aria-label="Evaluate" hidden=move || view_now.get() != View::Evaluate>
                        <EvaluateView engine=engine.clone() state=state sweep=sweep />
                    </div>
                })}
            })}
            {(!kiosk_on).then(|| view! { <DevicePanel device=state.device.read_only() last_run=state.last_run.read_only() /> })}
        </main>
    }
}

/// Kiosk: after `idle_s` seconds without input, back to the start screen: the question,
/// the answer, the budget and the Ask form's settings as the kiosk began, the model still
/// loaded (a reload would read a multi-GB model again for every visitor). An answer still
/// streaming is not idle.
/// The listeners and the one interval are installed once, so a day of cycles adds nothing.
fn install_idle_reset(idle_s: u32, busy: impl Fn() -> bool + 'static, reset: impl Fn() + 'static) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let last = std::rc::Rc::new(std::cell::Cell::new(js_sys::Date::now()));
    // Whether anything happened since the last reset (a fresh start screen is left alone).
    let dirty = std::rc::Rc::new(std::cell::Cell::new(false));
    let (l2, d2) = (last.clone(), dirty.clone());
    let touch = Closure::<dyn FnMut()>::new(move || {
        l2.set(js_sys::Date::now());
        d2.set(true);
    });
    for ev in ["pointerdown", "keydown", "input", "wheel"] {
        let _ = window.add_event_listener_with_callback(ev, touch.as_ref().unchecked_ref());
    }
    touch.forget();
    let check = Closure::<dyn FnMut()>::new(move || {
        let now = js_sys::Date::now();
        if busy() {
            last.set(now);
            dirty.set(true);
        } else if dirty.get() && now - last.get() > f64::from(idle_s) * 1000.0 {
            dirty.set(false);
            reset();
        }
    });
    let _ = window.set_interval_with_callback_and_timeout_and_arguments_0(
        check.as_ref().unchecked_ref(),
        1000,
    );
    check.forget();
}
