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

/// What reading the stored index put right.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Repairs {
    /// The text was no index: it reads as an empty one.
    pub reset: bool,
    /// Records were corrected: the index must be written back.
    pub changed: bool,
    pub notes: Vec<String>,
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
        Self::parse_repaired(text).0
    }

    /// As [`Index::parse`], with what was put right, in words for the page: a damaged
    /// index is reported (the caller resets it and clears the files it no longer
    /// describes), never passed over in silence.
    pub fn parse_repaired(text: &str) -> (Index, Repairs) {
        let mut repairs = Repairs::default();
        let mut index: Index = match serde_json::from_str(text) {
            Ok(i) => i,
            Err(e) => {
                repairs.reset = true;
                repairs.notes.push(format!(
                    "The model cache's list was damaged ({e}) and has been reset: models cached \
                     before it must be downloaded again."
                ));
                Index::default()
            }
        };
        for p in &mut index.partials {
            if !p.ranges_are_sound() {
                p.covered.clear();
                repairs.changed = true;
                repairs.notes.push(format!(
                    "The unfinished download of {} recorded byte ranges its file cannot hold; \
                     it will start again from the beginning.",
                    p.file
                ));
            }
        }
        (index, repairs)
    }

    /// Drops the records whose file is gone or has another size than recorded (`len` says
    /// what the cache holds: `None` for no file); returns what was dropped, in words.
    pub fn drop_missing(&mut self, len: impl Fn(&str) -> Option<u64>) -> Vec<String> {
        let mut notes = Vec::new();
        self.entries.retain(|e| match len(&e.file) {
            Some(n) if n == e.size => true,
            found => {
                notes.push(match found {
                    None => format!(
                        "{} was listed in the model cache but its file is missing; it was removed \
                         from the list.",
                        e.file
                    ),
                    Some(n) => format!(
                        "{} in the model cache holds {n} bytes where {} were recorded; it was \
                         removed from the list.",
                        e.file, e.size
                    ),
                });
                false
            }
        });
        self.partials.retain(|p| {
            let there = len(&p.file).is_some();
            if !there {
                notes.push(format!(
                    "The unfinished download of {} lost its file; it was removed from the list.",
                    p.file
                ));
            }
            there
        });
        notes
    }

    /// The files the index names.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(|e| e.file.as_str())
            .chain(self.partials.iter().map(|p| p.file.as_str()))
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

    #[test]
    fn damage_is_reported_and_repaired() {
        let (index, r) = Index::parse_repaired("{\"entries\": [{\"file\": \"a.gguf\"");
        assert_eq!(index, Index::default());
        assert!(r.reset && r.notes[0].contains("damaged"), "{r:?}");
        let text = r#"{"entries":[],"partials":[{"file":"p.gguf","url":"u","size":10,"covered":[[0,20]]}]}"#;
        let (index, r) = Index::parse_repaired(text);
        assert!(
            !r.reset && r.changed && r.notes[0].contains("p.gguf"),
            "{r:?}"
        );
        assert!(index.partials[0].covered.is_empty());
        let sound = r#"{"entries":[{"file":"a.gguf","size":5,"sha256":null}],"partials":[]}"#;
        assert_eq!(Index::parse_repaired(sound).1, Repairs::default());
    }

    #[test]
    fn records_without_their_file_are_dropped_with_a_note() {
        let text = r#"{"entries":[{"file":"a.gguf","size":5,"sha256":null},{"file":"b.gguf","size":7,"sha256":null},{"file":"c.gguf","size":9,"sha256":null}],"partials":[{"file":"p.gguf","url":"u","size":10,"covered":[]}]}"#;
        let mut index = Index::parse(text);
        let notes = index.drop_missing(|f| match f {
            "a.gguf" => Some(5),
            "b.gguf" => Some(3),
            _ => None,
        });
        assert_eq!(index.files().collect::<Vec<_>>(), ["a.gguf"]);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].contains("b.gguf") && notes[0].contains("3 bytes"));
        assert!(notes[1].contains("c.gguf") && notes[1].contains("missing"));
        assert!(notes[2].contains("p.gguf"));
    }
}
