//! The model cache's `models/index.json` in OPFS, as data: what it records, how it is read
//! and the byte-range bookkeeping of a partial download. Pure (no OPFS, no JS), so it
//! compiles natively: the worker's cache (`worker/cache.rs`, wasm only) calls it, and so do
//! the native tests and the fuzz target, because a tab that crashed mid-write or another
//! tab's copy can leave any bytes in that file.

use serde::{Deserialize, Serialize};

use crate::protocol::CacheEntry;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub entries: Vec<CacheEntry>,
    #[serde(default)]
    pub partials: Vec<PartialRecord>,
}

/// A download that has not completed: where it comes from and which bytes the copy holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialRecord {
    pub file: String,
    pub url: String,
    pub size: u64,
    /// Sorted, merged byte ranges `[start, end)` written and flushed.
    pub covered: Vec<(u64, u64)>,
}

impl Index {
    /// The index a stored `index.json` describes. Text that is not an index reads as an
    /// empty one: the cache then lists nothing rather than failing the page.
    pub fn parse(text: &str) -> Index {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| e.to_string())
    }

    pub fn forget(&mut self, file: &str) {
        self.entries.retain(|e| e.file != file);
        self.partials.retain(|p| p.file != file);
    }

    /// Records `partial` in place of anything of the same name.
    pub fn keep_partial(&mut self, partial: &PartialRecord) {
        self.forget(&partial.file);
        self.partials.push(partial.clone());
    }

    /// Records a complete entry in place of anything of the same name.
    pub fn keep_entry(&mut self, entry: &CacheEntry) {
        self.forget(&entry.file);
        self.entries.push(entry.clone());
    }
}

impl PartialRecord {
    /// How the cache list shows it: incomplete, with the bytes it holds.
    pub fn to_entry(&self) -> CacheEntry {
        CacheEntry {
            incomplete: Some(self.covered.iter().map(|(s, e)| e - s).sum()),
            file: self.file.clone(),
            size: self.size,
            sha256: None,
        }
    }

    /// Whether the recorded ranges lie inside a copy of `len` bytes (a copy cut short by a
    /// crash before its flush holds less than its record says).
    pub fn fits(&self, len: u64) -> bool {
        !self.covered.last().is_some_and(|&(_, end)| end > len)
    }

    /// Adds `[start, end)` to the ranges held, keeping them sorted and merged.
    pub fn cover(&mut self, start: u64, end: u64) {
        self.covered.push((start, end));
        self.covered.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.covered.len());
        for &(s, e) in &self.covered {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.covered = merged;
    }

    /// Ranges not held yet: fetched before the copy can be complete.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for &(s, e) in &self.covered {
            if s > at {
                gaps.push((at, s));
            }
            at = at.max(e);
        }
        if at < self.size {
            gaps.push((at, self.size));
        }
        gaps
    }

    /// From `pos` (before `end`): whether the copy already holds that byte, and where that
    /// run (held or missing) stops.
    pub fn run_at(&self, pos: u64, end: u64) -> (bool, u64) {
        for &(s, e) in &self.covered {
            if pos < s {
                return (false, s.min(end));
            }
            if pos < e {
                return (true, e.min(end));
            }
        }
        (false, end)
    }
}
