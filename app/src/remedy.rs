//! What the page offers after a failed load or a lost GPU, and how the options list marks
//! the model's choice: pure rules over protocol types, tested natively.

use crate::protocol::{ErrorKind, LoadSource, ModelInfo};

/// The action offered next to an error message.
#[derive(Debug, Clone, PartialEq)]
pub enum Remedy {
    /// Load the same URL again: the worker kept the bytes it stored, so this resumes.
    Retry(LoadSource),
    /// The GPU device was lost with the model: load it again (from the cache when stored).
    Reload(LoadSource),
    /// The model came from a picked file, whose handle the worker does not keep.
    PickAgain,
}

pub fn remedy(kind: ErrorKind, last: Option<&LoadSource>) -> Option<Remedy> {
    match (kind, last) {
        (ErrorKind::Network, Some(s @ LoadSource::Url { .. })) => Some(Remedy::Retry(s.clone())),
        (ErrorKind::DeviceLost, Some(LoadSource::Picked { .. })) => Some(Remedy::PickAgain),
        (ErrorKind::DeviceLost, Some(s)) => Some(Remedy::Reload(s.clone())),
        _ => None,
    }
}

/// Where the loaded model can be read again: its cache copy when there is one (no
/// network), else the source it was loaded from.
pub fn reload_source(sent: Option<LoadSource>, model: &ModelInfo) -> Option<LoadSource> {
    match &model.cached_as {
        Some(file) => Some(LoadSource::Cached { file: file.clone() }),
        None => sent,
    }
}

pub const LETTERS: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H"];

/// The option rows with the filled ones first, in order: the form shows rows lettered by
/// position, so moving empty rows last keeps the letters on screen the ones the model is
/// asked under.
pub fn compact(rows: &[String]) -> Vec<String> {
    let (filled, empty): (Vec<String>, Vec<String>) =
        rows.iter().cloned().partition(|t| !t.trim().is_empty());
    filled.into_iter().chain(empty).collect()
}

/// The options as sent to the engine: (letter, trimmed text) of the filled rows.
pub fn lettered(rows: &[String]) -> Vec<(String, String)> {
    compact(rows)
        .iter()
        .zip(LETTERS)
        .filter(|(t, _)| !t.trim().is_empty())
        .map(|(t, l)| (l.to_string(), t.trim().to_string()))
        .collect()
}

/// How one option row is marked after an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowMark {
    pub chosen: bool,
    pub correct: bool,
}

/// Marks the rows the model chose and the sample's correct answer, but only rows that
/// still read as they did when asked: an edited option is no longer the one answered.
pub fn marks(
    rows: &[String],
    asked: &[(String, String)],
    choice: Option<&str>,
    expected: Option<&str>,
) -> Vec<RowMark> {
    rows.iter()
        .zip(LETTERS)
        .map(|(text, letter)| {
            if text.trim().is_empty() {
                return RowMark::default();
            }
            let as_asked = asked.iter().any(|(l, t)| l == letter && t == text.trim());
            RowMark {
                chosen: as_asked && choice == Some(letter),
                correct: as_asked && expected == Some(letter),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    fn url() -> LoadSource {
        LoadSource::Url {
            url: "models/m.gguf".into(),
            name: "m".into(),
            size: Some(10),
            sha256: None,
        }
    }

    #[test]
    fn a_network_failure_offers_retry_of_the_same_url_only() {
        assert_eq!(
            remedy(ErrorKind::Network, Some(&url())),
            Some(Remedy::Retry(url()))
        );
        let cached = LoadSource::Cached {
            file: "m.gguf".into(),
        };
        assert_eq!(remedy(ErrorKind::Network, Some(&cached)), None);
        assert_eq!(remedy(ErrorKind::Network, None), None);
        assert_eq!(remedy(ErrorKind::Quota, Some(&url())), None);
        assert_eq!(remedy(ErrorKind::BadModel, Some(&url())), None);
    }

    #[test]
    fn a_lost_device_offers_a_reload_from_the_cache_copy() {
        let model = ModelInfo {
            name: "m".into(),
            architecture: "llama".into(),
            is_m1: false,
            file_bytes: 10,
            n_layers: 1,
            context: 64,
            device: "GPU".into(),
            load_ms: 1.0,
            cached_as: Some("m.gguf".into()),
            gpu_memory: None,
            worker_memory: Default::default(),
        };
        let again = reload_source(Some(url()), &model);
        assert_eq!(
            again,
            Some(LoadSource::Cached {
                file: "m.gguf".into()
            })
        );
        assert_eq!(
            remedy(ErrorKind::DeviceLost, again.as_ref()),
            Some(Remedy::Reload(LoadSource::Cached {
                file: "m.gguf".into()
            }))
        );
        // Not cached (no OPFS): the URL again.
        let uncached = ModelInfo {
            cached_as: None,
            ..model
        };
        assert_eq!(reload_source(Some(url()), &uncached), Some(url()));
        let picked = LoadSource::Picked {
            name: "m.gguf".into(),
        };
        assert_eq!(
            remedy(ErrorKind::DeviceLost, Some(&picked)),
            Some(Remedy::PickAgain)
        );
        assert_eq!(remedy(ErrorKind::DeviceLost, None), None);
    }

    #[test]
    fn empty_rows_move_last_so_the_letters_shown_are_the_letters_asked() {
        let r = rows(&["x", "  ", "y", "z"]);
        assert_eq!(compact(&r), rows(&["x", "y", "z", "  "]));
        assert_eq!(
            lettered(&r),
            vec![
                ("A".into(), "x".into()),
                ("B".into(), "y".into()),
                ("C".into(), "z".into())
            ]
        );
        assert_eq!(lettered(&compact(&r)), lettered(&r));
    }

    #[test]
    fn marks_follow_the_letters_as_asked_and_drop_after_an_edit() {
        let r = rows(&["Sodium", "Potassium", "Calcium", ""]);
        let asked = lettered(&r);
        let m = marks(&r, &asked, Some("B"), Some("C"));
        assert_eq!(
            m,
            vec![
                RowMark::default(),
                RowMark {
                    chosen: true,
                    correct: false
                },
                RowMark {
                    chosen: false,
                    correct: true
                },
                RowMark::default(),
            ]
        );
        // A row moved to another letter is not the option answered under that letter.
        let moved = rows(&["Sodium", "Calcium", "Potassium", ""]);
        assert_eq!(
            marks(&moved, &asked, Some("B"), Some("C")),
            vec![RowMark::default(); 4]
        );
        // The chosen row edited after the answer: no longer marked.
        let edited = rows(&["Sodium", "Chloride", "Calcium", ""]);
        assert!(!marks(&edited, &asked, Some("B"), None)[1].chosen);
        assert_eq!(marks(&r, &asked, None, None), vec![RowMark::default(); 4]);
    }
}
