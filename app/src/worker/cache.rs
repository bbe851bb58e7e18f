//! The model cache in the Origin Private File System. OPFS rather than the Cache API or
//! IndexedDB: those hit quota errors and whole-file ArrayBuffers with multi-GB models,
//! while OPFS sync access handles write at offsets straight from each streamed chunk (on
//! the cache thread, `www/cache_thread.js`, off the load's critical path).
//! `index.json` records the entries whose download completed and verified, and the
//! downloads still under way or broken off (with their URL and the byte ranges stored), so
//! a download resumes even after the page was closed. A partial copy is never loaded.

use m1_engine::units::fmt_bytes;
use sha2::{Digest, Sha256};

use std::rc::Rc;

use super::hash::StreamHash;
use super::helper::{failed, field, Helper};
use super::source::{read_blob, BlobError};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    File, FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemSyncAccessHandle, StorageManager,
};

use super::js::{await_promise, describe, scope};
use crate::cache_index::{Index, PartialRecord};
use crate::protocol::CacheEntry;

const DIR: &str = "models";
const INDEX: &str = "index.json";

/// Records `partial` in the stored index in place of anything of the same name.
async fn keep_partial(partial: &PartialRecord) -> Result<(), String> {
    let mut index = read_index().await;
    index.keep_partial(partial);
    write_index(&index).await
}

fn storage() -> Result<StorageManager, String> {
    let s = scope().ok_or("not in a worker")?;
    Ok(s.navigator().storage())
}

async fn dir() -> Result<FileSystemDirectoryHandle, String> {
    let root = await_promise(storage()?.get_directory())
        .await
        .map_err(|e| {
            format!("this browser offers no private file system (OPFS) for the model cache: {e}")
        })?;
    let root: FileSystemDirectoryHandle = root.unchecked_into();
    let opts = FileSystemGetDirectoryOptions::new();
    opts.set_create(true);
    let d = await_promise(root.get_directory_handle_with_options(DIR, &opts)).await?;
    Ok(d.unchecked_into())
}

async fn file_handle(name: &str, create: bool) -> Result<FileSystemFileHandle, String> {
    let opts = FileSystemGetFileOptions::new();
    opts.set_create(create);
    let h = await_promise(dir().await?.get_file_handle_with_options(name, &opts)).await?;
    Ok(h.unchecked_into())
}

async fn read_index() -> Index {
    let Ok(blob) = open(INDEX).await else {
        return Index::default();
    };
    let Ok(text) = await_promise(blob.text()).await else {
        return Index::default();
    };
    text.as_string()
        .map(|t| Index::parse(&t))
        .unwrap_or_default()
}

async fn write_index(index: &Index) -> Result<(), String> {
    let text = index.to_json()?;
    let h = sync_handle(INDEX).await?;
    let result = (|| {
        h.truncate_with_f64(0.0).map_err(|e| describe(&e))?;
        h.write_with_u8_array(text.as_bytes())
            .map_err(|e| describe(&e))?;
        h.flush().map_err(|e| describe(&e))
    })();
    h.close();
    result
}

async fn sync_handle(name: &str) -> Result<FileSystemSyncAccessHandle, String> {
    let h = file_handle(name, true).await?;
    let s = await_promise(h.create_sync_access_handle()).await?;
    Ok(s.unchecked_into())
}

/// The cached file as a `File` (a Blob read by slices, never whole).
pub async fn open(name: &str) -> Result<File, String> {
    let h = file_handle(name, false).await?;
    Ok(await_promise(h.get_file()).await?.unchecked_into())
}

/// Complete entries whose file is still there with the recorded size, then the
/// incomplete downloads (resumable, or to delete).
pub async fn list() -> Vec<CacheEntry> {
    let index = read_index().await;
    let mut out = Vec::new();
    for e in index.entries {
        if let Ok(f) = open(&e.file).await {
            if f.size() as u64 == e.size {
                out.push(e);
            }
        }
    }
    for p in index.partials {
        if open(&p.file).await.is_ok() {
            out.push(p.to_entry());
        }
    }
    out
}

/// Puts right what a crashed tab or a damaged disk left in the cache, once per page (the
/// UI's first `list_cache`): an unreadable index is reset and the files it no longer
/// describes are deleted; records whose file is gone or has another size are dropped; a
/// partial download's impossible ranges are cleared. Returns what was done, in words.
pub async fn repair() -> Vec<String> {
    let text = match open(INDEX).await {
        Ok(blob) => match await_promise(blob.text()).await {
            Ok(t) => t.as_string().unwrap_or_default(),
            Err(e) => return vec![format!("The model cache's list could not be read: {e}")],
        },
        // No index yet: nothing cached, nothing to repair.
        Err(_) => return Vec::new(),
    };
    let (mut index, repairs) = Index::parse_repaired(&text);
    let mut notes = repairs.notes;
    let mut sizes = Vec::new();
    for f in index.files().map(str::to_string).collect::<Vec<_>>() {
        let len = open(&f).await.ok().map(|b| b.size() as u64);
        sizes.push((f, len));
    }
    let gone = index.drop_missing(|f| sizes.iter().find(|(n, _)| n == f).and_then(|(_, l)| *l));
    let changed = repairs.reset || repairs.changed || !gone.is_empty();
    notes.extend(gone);
    if repairs.reset {
        // Without the index, no file can be trusted (or resumed): clear them. A file another
        // tab is writing is locked and stays.
        if let Ok(d) = dir().await {
            let names = crate::browser::names(&d).await.unwrap_or_default();
            let mut removed = 0;
            for n in names.iter().filter(|n| *n != INDEX) {
                if await_promise(d.remove_entry(n)).await.is_ok() {
                    removed += 1;
                }
            }
            if removed > 0 {
                notes.push(format!(
                    "{removed} cached file(s) the damaged list no longer described were deleted."
                ));
            }
        }
    }
    if changed {
        if let Err(e) = write_index(&index).await {
            notes.push(format!(
                "The repaired list could not be saved ({e}); it is repaired again next time."
            ));
        }
    }
    notes
}

/// A complete, verified entry.
pub async fn entry(name: &str) -> Option<CacheEntry> {
    list()
        .await
        .into_iter()
        .find(|e| e.file == name && e.incomplete.is_none())
}

pub async fn delete(name: &str) -> Result<(), String> {
    let mut index = read_index().await;
    index.forget(name);
    write_index(&index).await?;
    match await_promise(dir().await?.remove_entry(name)).await {
        Ok(_) => Ok(()),
        // Already gone is what the user wanted.
        Err(e) if e.contains("NotFound") || e.contains("could not be found") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Tells the UI what the cache holds and how much the origin may store.
pub async fn post_list(notes: Vec<String>) {
    let entries = list().await;
    let (usage, quota) = estimate().await;
    super::post(&crate::protocol::Event::Cache {
        entries,
        usage,
        quota,
        notes,
    });
}

/// (usage, quota) of this origin, where the browser says.
pub async fn estimate() -> (Option<u64>, Option<u64>) {
    let Ok(sm) = storage() else {
        return (None, None);
    };
    let Ok(p) = sm.estimate() else {
        return (None, None);
    };
    let Ok(v) = await_promise(p).await else {
        return (None, None);
    };
    let num = |k: &str| {
        js_sys::Reflect::get(&v, &k.into())
            .ok()
            .and_then(|x| x.as_f64())
            .map(|x| x as u64)
    };
    (num("usage"), num("quota"))
}

thread_local! {
    /// The cache thread (`www/cache_thread.js`), which holds a download's file and writes
    /// its blocks, so the worker places weights while the disk takes the bytes. `None`
    /// where the worker cannot start one (then nothing is cached).
    static THREAD: Option<Rc<Helper>> =
        Helper::start("./cache_thread.js", "m1 cache thread").map(Rc::new);
}

/// A write the cache refused: where, and why.
pub struct WriteFailed {
    pub at: u64,
    pub reason: String,
}

/// Writes a download into the cache at the offsets it arrives at, through the cache thread.
pub struct CacheWriter {
    thread: Rc<Helper>,
    /// The download and the byte ranges sent to be written (sorted, merged): what the index
    /// records, once they are written, when the download is suspended. The thread handles
    /// requests in order, so a read of them sees their bytes.
    record: PartialRecord,
    /// The sha256 of the bytes written in order from the file's start: a download written
    /// front to back needs no second pass to verify. A resumed one, or one written out of
    /// order, is read back instead.
    streamed: Option<StreamHash>,
    /// The write in flight (its offset and answer): one at a time, so a full store stops the
    /// download within a block.
    writing: Option<(u64, js_sys::Promise)>,
    /// Whether the thread still holds the file.
    open: bool,
    /// The buffer the last write gave back: the next block is copied into it (a new 8 MiB
    /// buffer a block faulted its memory in each time).
    spare: Option<js_sys::ArrayBuffer>,
}

impl CacheWriter {
    /// Checks the quota first, so a 4.7 GB download does not fail at 90%.
    /// The index records the download as partial from its first byte: a page closed
    /// mid-download leaves a copy that is listed (to resume or delete), never a hidden one.
    pub async fn create(file: &str, url: &str, size: u64) -> Result<Self, CacheError> {
        let (usage, quota) = estimate().await;
        if let (Some(u), Some(q)) = (usage, quota) {
            if q.saturating_sub(u) < size {
                return Err(CacheError::Quota(format!(
                    "This model won't fit: it needs {} but this site may store only {} more \
                     (quota {}, {} used). Free disk space or delete cached models, then load it again.",
                    fmt_bytes(size),
                    fmt_bytes(q.saturating_sub(u)),
                    fmt_bytes(q),
                    fmt_bytes(u)
                )));
            }
        }
        // Persistence keeps the browser from evicting a multi-GB model under storage pressure.
        if let Ok(p) = storage().and_then(|s| s.persist().map_err(|e| describe(&e))) {
            let _ = await_promise(p).await;
        }
        // The file's handle first: it is exclusive, so a second tab loading the same model
        // while this one downloads it is refused here, before it touches the index (where
        // it would overwrite the first tab's record of the bytes it holds).
        let record = PartialRecord {
            file: file.to_string(),
            url: url.to_string(),
            size,
            covered: Vec::new(),
        };
        let (mut writer, _) = match Self::open(record, true).await {
            Ok(opened) => opened,
            Err(e)
                if field(&e, "name").as_string().as_deref()
                    == Some("NoModificationAllowedError") =>
            {
                return Err(CacheError::InUse(format!(
                    "{file} is being downloaded by another tab of this site: this tab \
                     loads it without keeping its own copy (the other tab's copy is kept)."
                )))
            }
            Err(e) => return Err(CacheError::Other(failed(&e))),
        };
        // A stale entry of the same name, complete or not, is replaced.
        if let Err(e) = keep_partial(&writer.record).await {
            let _ = writer.close().await;
            return Err(CacheError::Other(e));
        }
        Ok(writer)
    }

    /// Has the cache thread open `record`'s file (emptied when `fresh`): the writer and the
    /// file's size, or the thread's answer when it could not.
    async fn open(record: PartialRecord, fresh: bool) -> Result<(Self, u64), JsValue> {
        let thread = THREAD
            .with(Clone::clone)
            .ok_or_else(|| JsValue::from("this browser cannot start the model cache's thread"))?;
        let fields = [
            ("op", "open".into()),
            ("dir", DIR.into()),
            ("file", record.file.as_str().into()),
            ("fresh", fresh.into()),
        ];
        let answer = JsFuture::from(thread.call(&fields, &[]).0).await?;
        let size = field(&answer, "size").as_f64().unwrap_or(0.0) as u64;
        let writer = Self {
            thread,
            record,
            streamed: Some(StreamHash::new()),
            writing: None,
            open: true,
            spare: None,
        };
        Ok((writer, size))
    }

    /// Reopens the partial copy of a download of `url` (same file name and size) with the
    /// ranges it recorded, so only the rest is fetched; `None` when there is none to resume.
    pub async fn resume(file: &str, url: &str, size: u64) -> Option<Self> {
        let index = read_index().await;
        let record = index
            .partials
            .into_iter()
            .find(|p| p.file == file && p.url == url && p.size == size)?;
        let (mut writer, len) = Self::open(record, false).await.ok()?;
        // The recorded ranges must lie inside what the file holds (a copy cut short by a
        // crash before its flush starts over).
        if !writer.record.fits(len) {
            let _ = writer.close().await;
            return None;
        }
        Some(writer)
    }

    /// Asks the thread for `op` on this writer's file.
    fn call(
        &self,
        op: &str,
        mut fields: Vec<(&str, JsValue)>,
        transfer: &[JsValue],
    ) -> js_sys::Promise {
        fields.push(("op", op.into()));
        fields.push(("file", self.record.file.as_str().into()));
        self.thread.call(&fields, transfer).0
    }

    /// Flushes the copy and has the thread let go of it: the file's size.
    async fn close(&mut self) -> Result<u64, String> {
        let written = self.written().await;
        self.open = false;
        let answer = JsFuture::from(self.call("close", Vec::new(), &[]))
            .await
            .map_err(|e| failed(&e))?;
        written.map_err(|e| e.reason)?;
        Ok(field(&answer, "size").as_f64().unwrap_or(0.0) as u64)
    }

    /// Keeps the partial copy for a later resume (the network broke off): flushes it and
    /// records the ranges it holds. A copy missing a write it was sent is dropped instead.
    pub async fn suspend(mut self) -> Result<(), String> {
        if let Err(e) = self.close().await {
            let _ = delete(&self.record.file).await;
            return Err(e);
        }
        keep_partial(&self.record).await
    }

    /// Sends a block of the download, as it arrived, to be written and, when it continues
    /// the bytes hashed so far, hashes it. The thread takes a copy (the loader still reads
    /// `bytes`), in the buffer the write before gave back, once that write has landed.
    pub async fn write_block(
        &mut self,
        offset: u64,
        bytes: &js_sys::Uint8Array,
    ) -> Result<(), WriteFailed> {
        self.written().await?;
        let len = bytes.length();
        let copy = match self.spare.take() {
            Some(b) if b.byte_length() >= len => b,
            _ => js_sys::ArrayBuffer::new(len),
        };
        js_sys::Uint8Array::new(&copy).set(bytes, 0);
        let fields = vec![
            ("at", (offset as f64).into()),
            ("bytes", copy.clone().into()),
            ("len", len.into()),
        ];
        self.writing = Some((offset, self.call("write", fields, &[copy.into()])));
        let len = u64::from(len);
        self.record.cover(offset, offset + len);
        if let Some(hash) = self.streamed.as_mut().filter(|h| h.len() == offset) {
            hash.update(bytes).await;
        }
        Ok(())
    }

    /// Waits for the write in flight, if any.
    pub async fn written(&mut self) -> Result<(), WriteFailed> {
        let Some((at, answer)) = self.writing.take() else {
            return Ok(());
        };
        match JsFuture::from(answer).await {
            Ok(answer) => {
                self.spare = field(&answer, "bytes").dyn_into().ok();
                Ok(())
            }
            Err(e) => Err(WriteFailed {
                at,
                reason: failed(&e),
            }),
        }
    }

    /// From `pos` (before `end`): whether the copy already holds that byte, and where that
    /// run (held or missing) stops.
    pub fn run_at(&self, pos: u64, end: u64) -> (bool, u64) {
        self.record.run_at(pos, end)
    }

    /// Reads bytes the copy already holds (a resumed download).
    pub async fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        let fields = vec![
            ("at", (offset as f64).into()),
            ("len", (buf.len() as f64).into()),
        ];
        let answer = JsFuture::from(self.call("read", fields, &[]))
            .await
            .map_err(|e| format!("reading the partial cache copy failed: {}", failed(&e)))?;
        let bytes = js_sys::Uint8Array::new(&field(&answer, "bytes"));
        if bytes.length() as usize != buf.len() {
            return Err(format!(
                "the partial cache copy gave {} of {} bytes at byte {offset}",
                bytes.length(),
                buf.len()
            ));
        }
        bytes.copy_to(buf);
        Ok(())
    }

    /// Ranges the loader never read (padding, metadata it skipped): fetched before the copy
    /// can be complete.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        self.record.gaps()
    }

    /// Checks size and (when known) sha256, hashed as the bytes were written or else read
    /// back, then records it as complete. A mismatch deletes the copy: it is never trusted.
    pub async fn finish(
        mut self,
        sha256: Option<&str>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<CacheEntry, CacheError> {
        let result = match self.close().await {
            Ok(len) => {
                let streamed = self.streamed.take();
                self.verify(len, streamed, sha256, &mut progress).await
            }
            Err(e) => Err(CacheError::Other(e)),
        };
        let digest = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = delete(&self.record.file).await;
                return Err(e);
            }
        };
        let entry = CacheEntry {
            file: self.record.file.clone(),
            size: self.record.size,
            sha256: Some(digest),
            incomplete: None,
        };
        let mut index = read_index().await;
        index.keep_entry(&entry);
        write_index(&index).await.map_err(CacheError::Other)?;
        Ok(entry)
    }

    async fn verify(
        &self,
        len: u64,
        streamed: Option<StreamHash>,
        sha256: Option<&str>,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<String, CacheError> {
        if len != self.record.size {
            return Err(CacheError::Corrupt(format!(
                "the cached copy has {len} bytes, expected {}",
                self.record.size
            )));
        }
        let whole = streamed.filter(|h| h.len() == len);
        let digest = match whole {
            Some(hash) => hash.finish().await,
            None => None,
        };
        let digest = match digest {
            Some(d) => {
                progress(len, len);
                hex(&d)
            }
            None => self.read_back(len, progress).await?,
        };
        if let Some(want) = sha256 {
            if !digest.eq_ignore_ascii_case(want) {
                return Err(CacheError::Corrupt(format!(
                    "the downloaded model's sha256 is {digest}, but the list says {want}: the copy was discarded"
                )));
            }
        }
        Ok(digest)
    }

    /// The sha256 of the whole copy, read back from the file (closed by then).
    async fn read_back(
        &self,
        len: u64,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<String, CacheError> {
        let file = open(&self.record.file).await.map_err(CacheError::Other)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 8 << 20];
        let mut at = 0u64;
        while at < len {
            let n = ((len - at) as usize).min(buf.len());
            read_blob(&file, at, &mut buf[..n])
                .await
                .map_err(|e| match e {
                    BlobError::Short(m) => CacheError::Corrupt(m),
                    BlobError::Read(m) => CacheError::Other(m),
                })?;
            hasher.update(&buf[..n]);
            at += n as u64;
            progress(at, len);
        }
        Ok(hex(hasher.finalize().as_slice()))
    }

    /// Drops a partial copy (cancel, network failure the user gave up on).
    pub async fn abandon(mut self) {
        let _ = self.close().await;
        let _ = delete(&self.record.file).await;
    }
}

impl Drop for CacheWriter {
    /// A writer dropped on a path that neither kept nor dropped its copy still lets go of
    /// the file, so the next load is not refused as if another tab held it.
    fn drop(&mut self) {
        if self.open {
            self.thread.tell(
                &[
                    ("op", "close".into()),
                    ("file", self.record.file.as_str().into()),
                ],
                &[],
            );
        }
    }
}

#[derive(Debug)]
pub enum CacheError {
    Quota(String),
    Corrupt(String),
    /// Another tab holds the file (OPFS access handles are exclusive).
    InUse(String),
    Other(String),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::Quota(m)
            | CacheError::Corrupt(m)
            | CacheError::InUse(m)
            | CacheError::Other(m) => f.write_str(m),
        }
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
