//! The m1 web app: the Leptos UI on the main thread and the engine in a dedicated Web
//! Worker, talking through [`protocol`].

pub mod cache_index;
pub mod evaluation;
pub mod options;
pub mod protocol;
pub mod remedy;
pub mod samples;

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod worker;
