//! The question form's option rows: the letters they are asked under and how the list marks
//! the model's choice after an answer. Pure rules, tested natively.

use m1_engine::reason::OPTION_LETTERS;

/// The option letters in order, as the engine asks and extracts them: "A", "B", ...
pub fn letters() -> impl Iterator<Item = &'static str> {
    // ASCII letters: each is one byte.
    (0..OPTION_LETTERS.len()).map(|i| &OPTION_LETTERS[i..=i])
}

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
        .zip(letters())
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
        .zip(letters())
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

    #[test]
    fn the_letters_are_the_engines() {
        assert_eq!(letters().take(5).collect::<String>(), "ABCDE");
        assert_eq!(letters().collect::<String>(), OPTION_LETTERS);
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
