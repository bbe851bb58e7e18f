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
    /// empty one: the cache then lists nothing rather than failing the page. A partial
    /// download whose ranges are not what [`PartialRecord::cover`] keeps (sorted, apart,
    /// inside the file) holds nothing the loader can trust: it is kept, listed, with no
    /// ranges, so a resume fetches it all again.
    pub fn parse(text: &str) -> Index {
        let mut index: Index = serde_json::from_str(text).unwrap_or_default();
        for p in &mut index.partials {
            if !p.ranges_are_sound() {
                p.covered.clear();
            }
        }
        index
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

    /// Sorted, apart (merged), not reversed, and inside the file: the shape `cover` keeps.
    fn ranges_are_sound(&self) -> bool {
        let mut prev_end = None;
        self.covered.iter().all(|&(s, e)| {
            let sound = s <= e && e <= self.size && prev_end.is_none_or(|p| s > p);
            prev_end = Some(e);
            sound
        })
    }

    /// Whether the recorded ranges lie inside a copy of `len` bytes (a copy cut short by a
    /// crash before its flush holds less than its record says).
    pub fn fits(&self, len: u64) -> bool {
        self.covered.last().is_none_or(|&(_, end)| end <= len)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz finding (fuzz/regressions/cache_index/ranges-reversed): a stored range with its
    /// end before its start underflowed the "bytes kept" of the cache list (a panic in a
    /// debug build, a wrapped count in release) and misled the resuming loader.
    #[test]
    fn unsound_ranges_are_dropped_on_read() {
        for covered in [
            "[[6,2],[0,1]]",
            "[[0,5],[8,20]]",
            "[[0,5],[3,8]]",
            "[[0,5],[5,8]]",
            "[[0,18446744073709551615],[0,18446744073709551615]]",
        ] {
            let text = format!(
                r#"{{"entries":[],"partials":[{{"file":"a","url":"u","size":10,"covered":{covered}}}]}}"#
            );
            let index = Index::parse(&text);
            assert_eq!(index.partials.len(), 1, "{covered}: the copy stays listed");
            let p = &index.partials[0];
            assert!(p.covered.is_empty(), "{covered}: kept {:?}", p.covered);
            assert_eq!(p.to_entry().incomplete, Some(0));
            assert_eq!(p.gaps(), vec![(0, 10)]);
        }
        let sound = r#"{"entries":[],"partials":[{"file":"a","url":"u","size":10,"covered":[[0,2],[4,10]]}]}"#;
        assert_eq!(
            Index::parse(sound).partials[0].covered,
            vec![(0, 2), (4, 10)]
        );
    }

    #[test]
    fn what_cover_writes_reads_back() {
        let mut p = PartialRecord {
            file: "m.gguf".into(),
            url: "u".into(),
            size: 100,
            covered: Vec::new(),
        };
        for (s, e) in [(50, 60), (0, 10), (10, 20), (55, 70), (90, 90), (30, 30)] {
            p.cover(s, e);
        }
        let mut index = Index::default();
        index.keep_partial(&p);
        let back = Index::parse(&index.to_json().unwrap());
        assert_eq!(back, index);
        assert_eq!(back.partials[0].to_entry().incomplete, Some(40));
    }
}
