//! Evaluations kept in the origin's private file system (OPFS), one JSON file each in
//! `evaluations/`, beside the worker's `models/`: a reload shows them and an interrupted one
//! resumes. Also the page's small file bridges: reading a fetched or picked text, and
//! offering a text for download.

use js_sys::Array;
use wasm_bindgen::prelude::*;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemWritableFileStream,
};

use crate::browser::{await_promise, describe, names};
use crate::evaluation::{Evaluation, FORMAT};

const DIR: &str = "evaluations";

async fn dir() -> Result<FileSystemDirectoryHandle, String> {
    let storage = web_sys::window().ok_or("no window")?.navigator().storage();
    let root: FileSystemDirectoryHandle = await_promise(storage.get_directory())
        .await?
        .unchecked_into();
    let opts = FileSystemGetDirectoryOptions::new();
    opts.set_create(true);
    Ok(
        await_promise(root.get_directory_handle_with_options(DIR, &opts))
            .await?
            .unchecked_into(),
    )
}

fn file_name(id: &str) -> String {
    // Ids are made by the page ("eval-<ms>"); anything else is refused rather than used as
    // a path.
    let safe: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("{safe}.json")
}

/// Writes `e` whole (a new file replaces the old one only once it is closed, so a crash
/// mid-write keeps the previous copy).
pub async fn save(e: &Evaluation) -> Result<(), String> {
    let d = dir().await?;
    let opts = FileSystemGetFileOptions::new();
    opts.set_create(true);
    let file: FileSystemFileHandle =
        await_promise(d.get_file_handle_with_options(&file_name(&e.id), &opts))
            .await?
            .unchecked_into();
    let stream: FileSystemWritableFileStream = await_promise(file.create_writable())
        .await?
        .unchecked_into();
    let json = serde_json::to_string(e).map_err(|e| e.to_string())?;
    await_promise(stream.write_with_str(&json).map_err(|e| describe(&e))?).await?;
    await_promise(stream.close()).await?;
    Ok(())
}

pub async fn delete(id: &str) -> Result<(), String> {
    await_promise(dir().await?.remove_entry(&file_name(id))).await?;
    Ok(())
}

/// Every stored evaluation, newest first, and a line for each file that could not be read
/// (left in place: a newer page may read it).
pub async fn list() -> Result<(Vec<Evaluation>, Vec<String>), String> {
    let d = dir().await?;
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for name in names(&d).await? {
        if !name.ends_with(".json") {
            continue;
        }
        match read(&d, &name).await {
            Ok(e) => found.push(e),
            Err(why) => unreadable.push(format!("{name}: {why}")),
        }
    }
    found.sort_by(|a: &Evaluation, b| b.created.cmp(&a.created));
    Ok((found, unreadable))
}

async fn read(d: &FileSystemDirectoryHandle, name: &str) -> Result<Evaluation, String> {
    let file: FileSystemFileHandle = await_promise(d.get_file_handle(name))
        .await?
        .unchecked_into();
    let blob: web_sys::File = await_promise(file.get_file()).await?.unchecked_into();
    let text = await_promise(blob.text())
        .await?
        .as_string()
        .unwrap_or_default();
    let e: Evaluation =
        serde_json::from_str(&text).map_err(|e| format!("not an evaluation ({e})"))?;
    if e.format != FORMAT {
        return Err(format!("written by another version (format {})", e.format));
    }
    Ok(e)
}

/// A same-origin text file (the bundled data set).
pub async fn fetch_text(url: &str) -> Result<String, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response = await_promise(window.fetch_with_str(url))
        .await?
        .unchecked_into();
    if !resp.ok() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    Ok(await_promise(resp.text().map_err(|e| describe(&e))?)
        .await?
        .as_string()
        .unwrap_or_default())
}

/// The text of a file the visitor picked.
pub async fn file_text(file: &web_sys::File) -> Result<String, String> {
    Ok(await_promise(file.text())
        .await?
        .as_string()
        .unwrap_or_default())
}

/// Offers `text` as a download named `name` (nothing leaves the device: a blob URL).
pub fn download(name: &str, mime: &str, text: &str) -> Result<(), String> {
    let parts = Array::of1(&JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts)
        .map_err(|e| describe(&e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| describe(&e))?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| describe(&e))?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    // The click has started the download; the URL may go once it has been read.
    let revoke = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    if let Some(w) = web_sys::window() {
        let _ =
            w.set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 60_000);
    }
    Ok(())
}
