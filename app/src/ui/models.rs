//! Choosing a model: the site's list (models.json plus any GGUF in the models folder),
//! the OPFS cache (loads offline), a local file (picker or drop), or a URL.

use leptos::prelude::*;
use m1_engine::units::fmt_bytes;
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::engine::EngineHandle;
use super::state::AppState;
use crate::protocol::{LoadSource, ModelInfo, Phase, Request};

/// Context the engine's KV cache is sized for: m1's 4K-token budget plus question and answer.
pub const DEFAULT_CONTEXT: u32 = 8192;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListedModel {
    pub id: String,
    pub name: String,
    pub architecture: String,
    pub size: Option<u64>,
    pub url: String,
    pub sha256: Option<String>,
    pub is_m1: bool,
    #[serde(default)]
    pub note: String,
}

#[derive(Deserialize)]
struct ModelList {
    models: Vec<ListedModel>,
}

#[derive(Deserialize)]
struct FolderEntry {
    file: String,
    size: u64,
}

async fn fetch_json(url: &str) -> Option<String> {
    let w = web_sys::window()?;
    let resp = JsFuture::from(w.fetch_with_str(url))
        .await
        .ok()?
        .dyn_into::<web_sys::Response>()
        .ok()?;
    if !resp.ok() {
        return None;
    }
    JsFuture::from(resp.text().ok()?).await.ok()?.as_string()
}

/// models.json, then the folder listing: a file present in the folder is offered, and an
/// entry of models.json whose file is absent (the m1 slot before conversion) is not.
pub async fn load_model_list() -> Vec<ListedModel> {
    let listed: Vec<ListedModel> = fetch_json("models.json")
        .await
        .and_then(|t| serde_json::from_str::<ModelList>(&t).ok())
        .map(|l| l.models)
        .unwrap_or_default();
    let folder: Option<Vec<FolderEntry>> = fetch_json("models/index.json")
        .await
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(folder) = folder else { return listed };
    let mut out: Vec<ListedModel> = listed
        .into_iter()
        .filter_map(|mut m| {
            let file = m.url.rsplit('/').next().unwrap_or("").to_string();
            let present = folder.iter().find(|f| f.file == file)?;
            m.size = Some(present.size);
            Some(m)
        })
        .collect();
    for f in folder {
        if !out.iter().any(|m| m.url.ends_with(&format!("/{}", f.file))) {
            out.push(ListedModel {
                id: f.file.clone(),
                name: f.file.clone(),
                architecture: "unknown until loaded".into(),
                size: Some(f.size),
                url: format!("models/{}", f.file),
                sha256: None,
                // Whatever its name, the loaded model's badge comes from its own metadata.
                is_m1: false,
                note: "A GGUF file from the models folder.".into(),
            });
        }
    }
    out
}

pub fn load_listed(engine: &EngineHandle, state: &AppState, m: &ListedModel) {
    let source = LoadSource::Url {
        url: m.url.clone(),
        name: m.name.clone(),
        size: m.size,
        sha256: m.sha256.clone(),
    };
    state.start_load(&source, format!("Loading {}…", m.name));
    load(engine, source);
}

/// " 98 MB · 30 layers · <device> · on the GPU: … · engine memory … · loaded in 6.6 s".
fn loaded_details(m: &ModelInfo) -> String {
    let gpu = m
        .gpu_memory
        .map(|g| {
            format!(
                " · on the GPU: {} of weights, {} of cache and activations",
                fmt_bytes(g.weights),
                fmt_bytes(g.state)
            )
        })
        .unwrap_or_default();
    let w = m.worker_memory;
    format!(
        " {} · {} layers · {}{gpu} · engine memory {} (this load added {}) · loaded in {:.1} s",
        fmt_bytes(m.file_bytes),
        m.n_layers,
        m.device,
        fmt_bytes(w.after_load),
        fmt_bytes(w.after_load.saturating_sub(w.before_load)),
        m.load_ms / 1000.0
    )
}

/// Sends a load (a listed or typed URL, a cached copy, or a Retry/Reload of one).
pub fn load(engine: &EngineHandle, source: LoadSource) {
    engine.send(&Request::Load {
        source,
        context: DEFAULT_CONTEXT,
    });
}

#[component]
pub fn ModelPanel(
    engine: EngineHandle,
    state: AppState,
    list: ReadSignal<Vec<ListedModel>>,
) -> impl IntoView {
    let url_input = RwSignal::new(String::new());
    let e1 = engine.clone();
    let e2 = engine.clone();
    let e3 = engine.clone();
    let e4 = engine.clone();
    let e5 = engine.clone();
    let pick = move |file: web_sys::File| {
        let name = file.name();
        let source = LoadSource::Picked { name: name.clone() };
        state.start_load(&source, format!("Reading {name}…"));
        e3.send_with_file(
            &Request::Load {
                source,
                context: DEFAULT_CONTEXT,
            },
            &file,
        );
    };
    let pick2 = pick.clone();
    let on_file = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(f) = input.files().and_then(|fl| fl.get(0)) {
            pick(f);
        }
        input.set_value("");
    };
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        if let Some(f) = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|fl| fl.get(0))
        {
            pick2(f);
        }
    };
    view! {
        <section class="panel models" aria-labelledby="models-h">
            <h2 id="models-h">"Model"</h2>
            {move || state.model.get().map(|m| view! {
                <p class="loaded" data-testid="loaded-model">
                    <strong>{m.name.clone()}</strong>
                    {if m.is_m1 {
                        view! { <span class="badge m1" data-testid="m1-badge">"m1"</span> }.into_any()
                    } else {
                        view! { <span class="badge demo" data-testid="m1-badge">"not m1: a general model that demonstrates the engine"</span> }.into_any()
                    }}
                    <span class="muted">{loaded_details(&m)}</span>
                </p>
            })}
            <ul class="model-list">
                {move || list.get().into_iter().map(|m| {
                    let e = e1.clone();
                    let m2 = m.clone();
                    view! {
                        <li>
                            <button class="secondary" disabled=move || state.loading.get() || state.running.get()
                                on:click=move |_| load_listed(&e, &state, &m2)>
                                {format!("Load {}", m.name)}
                            </button>
                            <span class="muted">{m.size.map(fmt_bytes).unwrap_or_default()}</span>
                            {if m.is_m1 { Some(view! { <span class="badge m1">"m1"</span> }) } else { None }}
                            <span class="note">{m.note.clone()}</span>
                        </li>
                    }
                }).collect_view()}
            </ul>
            <div class="drop" on:dragover=|ev: web_sys::DragEvent| ev.prevent_default() on:drop=on_drop>
                <label>"Open a .gguf file: " <input type="file" accept=".gguf" on:change=on_file /></label>
                <span class="muted">" or drop it here"</span>
            </div>
            <form class="url" on:submit=move |ev: web_sys::SubmitEvent| {
                ev.prevent_default();
                let url = url_input.get_untracked();
                if url.trim().is_empty() { return; }
                let name = url.rsplit('/').next().unwrap_or("model.gguf").to_string();
                let m = ListedModel { id: name.clone(), name, architecture: String::new(), size: None, url, sha256: None, is_m1: false, note: String::new() };
                load_listed(&e2, &state, &m);
            }>
                <label>"Model URL " <input type="url" placeholder="https://…/model.gguf" prop:value=move || url_input.get()
                    on:input=move |ev| url_input.set(event_target_value(&ev)) /></label>
                <button type="submit" class="secondary" disabled=move || state.loading.get()>"Load URL"</button>
            </form>
            <ProgressBar engine=e4 state=state />
            <details class="cache" on:toggle=move |_| e5.send(&Request::ListCache {})>
                <summary>"Cached models (work offline)"</summary>
                <CacheList engine=engine state=state />
            </details>
        </section>
    }
}

#[component]
fn ProgressBar(engine: EngineHandle, state: AppState) -> impl IntoView {
    view! {
        {move || state.progress.get().map(|p| {
            let pct = if p.total > 0 { p.done as f64 * 100.0 / p.total as f64 } else { 0.0 };
            let secs = (p.now_ms - p.started_ms) / 1000.0;
            let rate = if secs > 0.2 { (p.done - p.started_bytes) as f64 / secs } else { 0.0 };
            let left = if rate > 0.0 { (p.total - p.done) as f64 / rate } else { f64::NAN };
            let what = match p.phase { Phase::Download => "Downloading", Phase::Read => "Loading", Phase::Verify => "Verifying" };
            let e = engine.clone();
            view! {
                <div class="progress">
                    <progress max="100" value=format!("{pct:.1}") aria-label="Model load progress"></progress>
                    <span data-testid="progress-text">{format!(
                        "{what}: {} of {} ({pct:.0}%) · {:.1} MB/s · {} left",
                        fmt_bytes(p.done), fmt_bytes(p.total), rate / 1e6,
                        if left.is_finite() { format!("{left:.0} s") } else { "…".into() }
                    )}</span>
                    <button class="secondary" on:click=move |_| e.send(&Request::CancelLoad {})>"Cancel"</button>
                </div>
            }
        })}
    }
}

#[component]
fn CacheList(engine: EngineHandle, state: AppState) -> impl IntoView {
    view! {
        <ul class="cache-list" data-testid="cache-list">
            {move || {
                let entries = state.cache.get();
                if entries.is_empty() {
                    return view! { <li class="muted">"Nothing cached yet. A model you load from the list is kept here."</li> }.into_any();
                }
                entries.into_iter().map(|c| {
                    let e = engine.clone();
                    let e2 = engine.clone();
                    let f1 = c.file.clone();
                    let f2 = c.file.clone();
                    let load_button = match c.incomplete {
                        // Only a complete, verified copy loads; a partial one resumes when the
                        // model is loaded from its URL again.
                        Some(kept) => view! {
                            <span class="muted" data-testid="incomplete">{format!(" incomplete download: {} of {} kept; load this model again to resume ", fmt_bytes(kept), fmt_bytes(c.size))}</span>
                        }.into_any(),
                        None => view! {
                            <span class="muted">{format!(" {} ", fmt_bytes(c.size))}</span>
                            <button class="secondary" disabled=move || state.loading.get() || state.running.get() on:click=move |_| {
                                let source = LoadSource::Cached { file: f1.clone() };
                                state.start_load(&source, format!("Loading {f1} from the cache…"));
                                load(&e, source);
                            }>"Load"</button>
                        }.into_any(),
                    };
                    view! {
                        <li>
                            <span>{c.file.clone()}</span>
                            {load_button}
                            <button class="secondary danger" aria-label=format!("Delete {}", c.file) on:click=move |_| e2.send(&Request::DeleteCached { file: f2.clone() })>"Delete"</button>
                        </li>
                    }
                }).collect_view().into_any()
            }}
            {move || {
                let (u, q) = state.quota.get();
                u.zip(q).map(|(u, q)| view! { <li class="muted">{format!("Storage used by this site: {} of {}", fmt_bytes(u), fmt_bytes(q))}</li> })
            }}
        </ul>
    }
}
