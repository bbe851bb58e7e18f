//! An evaluation in the page: which items, at which budgets, what the model chose at each,
//! and the accuracy per budget. Plain data with no browser in it (tested natively); the
//! Evaluate view drives it one sweep per item, and `ui/store.rs` keeps it in OPFS so a
//! reload shows it and an interrupted run resumes at the item it stopped in.

use m1_engine::reason::{
    medqa_records, pick_items, AccuracyRow, AccuracyTable, BudgetResult, Question, SweepSummary,
};
use serde::{Deserialize, Serialize};

use crate::protocol::SweepSettings;
use crate::samples::SAMPLES;

/// Bumped when a stored evaluation can no longer be read as this struct.
pub const FORMAT: u32 = 1;

/// The most budgets one sweep takes: enough for the paper's range, few enough to chart.
pub const MAX_BUDGETS: usize = 12;
/// The largest budget the page offers (its slider's range is 128..8192; a sweep may go to
/// m1's longest reported runs).
pub const MAX_BUDGET: u32 = 32_768;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub format: u32,
    /// Unique within the browser: also the stored file's name.
    pub id: String,
    /// When it was started, as the browser's ISO time.
    pub created: String,
    pub model: String,
    pub device: String,
    pub context: u32,
    /// Where the items came from ("PubMedQA PQA-L test", "Built-in samples", a file name).
    pub source: String,
    pub settings: SweepSettings,
    /// The items to run, in order; kept in full so a resume needs nothing but this.
    pub items: Vec<Item>,
    /// One per finished item, in item order: `results.len()` is the next item to run.
    pub results: Vec<ItemResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The record's `id`, else its line number in the file.
    pub id: String,
    pub question: Question,
    /// The correct option's letter, where the record gives one.
    pub gold: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: String,
    pub gold: Option<String>,
    /// Ascending budgets.
    pub budgets: Vec<BudgetCell>,
    /// The shared thinking trace (the largest budget's).
    pub thinking: String,
    pub think_tokens: usize,
    pub sampled_tokens: usize,
    pub total_ms: f64,
}

/// One item at one budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetCell {
    pub budget: u32,
    pub choice: Option<String>,
    /// `None` where the item has no gold answer.
    pub correct: Option<bool>,
    pub answer: String,
    pub answer_tokens: Vec<u32>,
    pub think_tokens: usize,
}

impl Evaluation {
    /// The next item to run, with its index; `None` once every item has a result.
    pub fn next_item(&self) -> Option<(usize, &Item)> {
        let i = self.results.len();
        self.items.get(i).map(|item| (i, item))
    }

    pub fn is_finished(&self) -> bool {
        self.results.len() >= self.items.len()
    }

    /// Records the next item's finished sweep. A cancelled sweep is not a result: the item
    /// runs again from the start on resume, so a resumed evaluation equals an uninterrupted
    /// one.
    pub fn record(&mut self, summary: &SweepSummary) -> Result<(), String> {
        let (_, item) = self.next_item().ok_or("every item already has a result")?;
        if summary.stop == m1_engine::reason::StopReason::Cancelled {
            return Err("the sweep was stopped before every budget was answered".into());
        }
        let result = ItemResult::from_sweep(item, summary);
        self.results.push(result);
        Ok(())
    }

    /// Accuracy per budget over the finished items, with 95% Wilson intervals: the same
    /// table `m1 eval` prints.
    pub fn accuracy(&self) -> Vec<AccuracyRow> {
        let budgets: Vec<usize> = self.settings.budgets.iter().map(|&b| b as usize).collect();
        let mut table = AccuracyTable::new(&budgets);
        for r in &self.results {
            for c in &r.budgets {
                table.add(c.budget as usize, c.correct);
            }
        }
        table.rows()
    }

    /// One line per item and budget, as `m1 eval --json` gives them.
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("item,id,gold,budget,choice,correct,think_tokens,answer_tokens,answer\n");
        for (i, r) in self.results.iter().enumerate() {
            for c in &r.budgets {
                let fields = [
                    (i + 1).to_string(),
                    r.id.clone(),
                    r.gold.clone().unwrap_or_default(),
                    c.budget.to_string(),
                    c.choice.clone().unwrap_or_default(),
                    c.correct.map_or(String::new(), |v| v.to_string()),
                    c.think_tokens.to_string(),
                    c.answer_tokens.len().to_string(),
                    c.answer.clone(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
        }
        out
    }

    /// The whole evaluation with its accuracy table, for download.
    pub fn to_json(&self) -> String {
        let export = serde_json::json!({
            "evaluation": self,
            "accuracy": self.accuracy(),
        });
        serde_json::to_string_pretty(&export).unwrap_or_default()
    }

    /// "m1-7B q4_k_m · 512-token context · PubMedQA PQA-L test · 20 items": what tells two
    /// evaluations apart on a shared chart.
    pub fn label(&self) -> String {
        format!(
            "{} · {} context · {} · {} of {} items",
            self.model,
            self.context,
            self.source,
            self.results.len(),
            self.items.len()
        )
    }
}

impl ItemResult {
    pub fn from_sweep(item: &Item, summary: &SweepSummary) -> Self {
        let budgets = summary
            .results
            .iter()
            .map(|r| BudgetCell::from_result(r, item.gold.as_deref()))
            .collect();
        let thinking = summary
            .results
            .last()
            .map(|r| r.summary.thinking.clone())
            .unwrap_or_default();
        Self {
            id: item.id.clone(),
            gold: item.gold.clone(),
            budgets,
            thinking,
            think_tokens: summary.think_tokens,
            sampled_tokens: summary.sampled_tokens,
            total_ms: summary.total_ms,
        }
    }

    pub fn cell(&self, budget: u32) -> Option<&BudgetCell> {
        self.budgets.iter().find(|c| c.budget == budget)
    }
}

impl BudgetCell {
    /// One budget's outcome of a sweep, scored against `gold` where there is one.
    pub fn from_result(r: &BudgetResult, gold: Option<&str>) -> Self {
        Self {
            budget: u32::try_from(r.budget).unwrap_or(u32::MAX),
            choice: r.summary.choice.clone(),
            correct: gold.map(|g| r.summary.choice.as_deref() == Some(g)),
            answer: r.summary.answer.clone(),
            answer_tokens: r.answer_ids.clone(),
            think_tokens: r.summary.think_tokens,
        }
    }
}

/// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Budgets as a visitor types them ("128, 256 512"): ascending, without repeats.
pub fn parse_budgets(text: &str) -> Result<Vec<u32>, String> {
    let mut budgets = Vec::new();
    for word in text
        .split([',', ' ', ';', '\n', '\t'])
        .filter(|w| !w.is_empty())
    {
        let b: u32 = word
            .parse()
            .map_err(|_| format!("“{word}” is not a number of tokens"))?;
        if b > MAX_BUDGET {
            return Err(format!(
                "{b} is more than the largest budget, {MAX_BUDGET} tokens"
            ));
        }
        budgets.push(b);
    }
    budgets.sort_unstable();
    budgets.dedup();
    match budgets.len() {
        0 => Err("Give at least one thinking budget, e.g. 128, 256, 512.".into()),
        n if n > MAX_BUDGETS => Err(format!(
            "{n} budgets: at most {MAX_BUDGETS} fit on one chart"
        )),
        _ => Ok(budgets),
    }
}

/// The items of a MedQA-form JSONL text (`question`, `options` as an object or a list,
/// `answer_idx`, optional `context` and `id`). A bad record is reported with its line and
/// nothing is taken, so a typo never silently shrinks an evaluation.
pub fn read_items(text: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (line, record) in medqa_records(text) {
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        items.push(Item {
            id: record.id.unwrap_or_else(|| line.to_string()),
            question: record.question,
            gold: record.answer,
        });
    }
    if items.is_empty() {
        return Err("the file holds no questions (one JSON object per line)".into());
    }
    Ok(items)
}

/// The built-in samples as items (their ids are their place in the list, from 1).
pub fn sample_items() -> Vec<Item> {
    SAMPLES
        .iter()
        .enumerate()
        .map(|(i, s)| Item {
            id: format!("sample-{}", i + 1),
            question: Question {
                question: s.question.to_string(),
                context: s.context.map(str::to_string),
                options: s
                    .options
                    .iter()
                    .map(|(l, t)| (l.to_string(), t.to_string()))
                    .collect(),
            },
            gold: Some(s.answer.to_string()),
        })
        .collect()
}

/// The first `limit` items, or with a seed `limit` items drawn at random (the engine's
/// `pick_items`, so `m1 eval --limit N --shuffle --seed S` picks the same ones).
pub fn pick(items: Vec<Item>, limit: usize, seed: Option<u64>) -> Vec<Item> {
    let keep = pick_items(items.len(), Some(limit), seed);
    let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| items[i].take()).collect()
}

/// Where the chosen option changes from one budget to the next: (smaller budget, its
/// choice, larger budget, its choice). An unreadable answer counts as a choice of its own.
pub fn choice_changes(cells: &[BudgetCell]) -> Vec<(u32, Option<String>, u32, Option<String>)> {
    cells
        .windows(2)
        .filter(|w| w[0].choice != w[1].choice)
        .map(|w| {
            (
                w[0].budget,
                w[0].choice.clone(),
                w[1].budget,
                w[1].choice.clone(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use m1_engine::backend::Sampling;
    use m1_engine::reason::{StopReason, Summary};

    fn item(id: &str, gold: Option<&str>) -> Item {
        Item {
            id: id.into(),
            question: Question {
                question: "q".into(),
                context: None,
                options: vec![("A".into(), "yes".into()), ("B".into(), "no".into())],
            },
            gold: gold.map(str::to_string),
        }
    }

    fn summary(choices: &[(usize, Option<&str>)], stop: StopReason) -> SweepSummary {
        let results = choices
            .iter()
            .map(|&(budget, choice)| BudgetResult {
                budget,
                answered_with: budget,
                position: 10 + budget,
                answer_ids: vec![1, 2, 3],
                cut_ms: Some(1.0),
                answer_ms: Some(2.0),
                summary: Summary {
                    stop: StopReason::Natural,
                    think_stop: Some(StopReason::Budget),
                    prompt_tokens: 10,
                    think_tokens: budget,
                    waits: 0,
                    budget_used: budget,
                    answer_tokens: 3,
                    sampled_tokens: budget + 4,
                    thinking: "x".repeat(budget),
                    answer_prefix: "Final Answer:".into(),
                    answer: format!("The answer is {}, \"really\"", choice.unwrap_or("?")),
                    choice: choice.map(str::to_string),
                    choice_rule: None,
                    time_to_first_token_ms: None,
                    prefill_tokens_per_s: None,
                    decode_tokens_per_s: None,
                    total_ms: 1.0,
                },
            })
            .collect();
        SweepSummary {
            stop,
            results,
            prompt_tokens: 10,
            think_tokens: 8,
            fed_tokens: 30,
            sampled_tokens: 20,
            rewinds: 1,
            total_ms: 50.0,
        }
    }

    fn evaluation(items: Vec<Item>) -> Evaluation {
        Evaluation {
            format: FORMAT,
            id: "eval-1".into(),
            created: "2026-12-05T00:00:00Z".into(),
            model: "m".into(),
            device: "CPU".into(),
            context: 512,
            source: "test".into(),
            settings: SweepSettings {
                budgets: vec![0, 8],
                waits: 0,
                min_thinking: 0,
                max_answer_tokens: 16,
                sampling: Sampling::default(),
            },
            items,
            results: Vec::new(),
        }
    }

    #[test]
    fn records_items_in_order_and_scores_each_budget() {
        let mut e = evaluation(vec![
            item("a", Some("A")),
            item("b", Some("B")),
            item("c", None),
        ]);
        assert_eq!(
            e.next_item().map(|(i, it)| (i, it.id.clone())),
            Some((0, "a".into()))
        );
        e.record(&summary(
            &[(0, Some("A")), (8, Some("A"))],
            StopReason::Natural,
        ))
        .unwrap();
        e.record(&summary(&[(0, None), (8, Some("B"))], StopReason::Natural))
            .unwrap();
        // An ungraded item counts in no row.
        e.record(&summary(
            &[(0, Some("A")), (8, Some("A"))],
            StopReason::Natural,
        ))
        .unwrap();
        assert!(e.is_finished() && e.next_item().is_none());
        assert!(e
            .record(&summary(&[(0, None)], StopReason::Natural))
            .is_err());
        let rows = e.accuracy();
        assert_eq!((rows[0].budget, rows[0].n, rows[0].correct), (0, 2, 1));
        assert_eq!((rows[1].budget, rows[1].n, rows[1].correct), (8, 2, 2));
        assert_eq!(rows[0].accuracy, Some(0.5));
        // 2/2: the Wilson interval of a perfect score stops short of 0.
        assert!(rows[1].low.unwrap() > 0.3 && rows[1].high == Some(1.0));
        assert_eq!(e.results[1].cell(0).unwrap().correct, Some(false));
        assert_eq!(e.results[2].cell(8).unwrap().correct, None);
    }

    #[test]
    fn a_cancelled_sweep_is_not_a_result() {
        let mut e = evaluation(vec![item("a", Some("A"))]);
        let err = e.record(&summary(&[(0, Some("A"))], StopReason::Cancelled));
        assert!(err.is_err());
        assert!(e.results.is_empty() && e.next_item().is_some());
    }

    #[test]
    fn csv_has_one_quoted_line_per_item_and_budget() {
        let mut e = evaluation(vec![item("a,1", Some("A"))]);
        e.record(&summary(&[(0, Some("A")), (8, None)], StopReason::Natural))
            .unwrap();
        let csv = e.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert_eq!(
            lines[0],
            "item,id,gold,budget,choice,correct,think_tokens,answer_tokens,answer"
        );
        assert_eq!(
            lines[1],
            r#"1,"a,1",A,0,A,true,0,3,"The answer is A, ""really""""#
        );
        assert_eq!(
            lines[2],
            r#"1,"a,1",A,8,,false,8,3,"The answer is ?, ""really""""#
        );
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(json["accuracy"][0]["correct"], 1);
        assert_eq!(json["evaluation"]["results"][0]["budgets"][1]["budget"], 8);
    }

    #[test]
    fn evaluations_survive_a_round_trip_through_storage() {
        let mut e = evaluation(vec![item("a", Some("A")), item("b", Some("B"))]);
        e.record(&summary(
            &[(0, Some("A")), (8, Some("B"))],
            StopReason::Natural,
        ))
        .unwrap();
        let back: Evaluation = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.next_item().map(|(i, _)| i), Some(1));
    }

    #[test]
    fn budgets_parse_sorted_and_checked() {
        assert_eq!(
            parse_budgets("512, 128 256,128").unwrap(),
            vec![128, 256, 512]
        );
        assert_eq!(parse_budgets("0;8\n32").unwrap(), vec![0, 8, 32]);
        assert!(parse_budgets("").unwrap_err().contains("at least one"));
        assert!(parse_budgets("12a").unwrap_err().contains("12a"));
        assert!(parse_budgets("40000").unwrap_err().contains("32768"));
        let many: Vec<String> = (1..=13).map(|b| b.to_string()).collect();
        assert!(parse_budgets(&many.join(","))
            .unwrap_err()
            .contains("at most 12"));
    }

    #[test]
    fn items_read_from_jsonl_with_line_numbers_and_errors() {
        let text = "{\"question\":\"Q1\",\"options\":{\"A\":\"yes\",\"B\":\"no\"},\"answer_idx\":\"B\"}\n\n\
                    {\"id\":\"x7\",\"question\":\"Q2\",\"options\":[\"a\",\"b\",\"c\"],\"answer_idx\":\"C\",\"context\":\"ctx\"}\n";
        let items = read_items(text).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].id.as_str(), items[0].gold.as_deref()),
            ("1", Some("B"))
        );
        assert_eq!(
            (items[1].id.as_str(), items[1].gold.as_deref()),
            ("x7", Some("C"))
        );
        assert_eq!(items[1].question.context.as_deref(), Some("ctx"));
        let bad = "{\"question\":\"Q1\",\"options\":{\"A\":\"yes\"},\"answer_idx\":\"A\"}\n{\"question\":3}\n";
        assert!(read_items(bad).unwrap_err().starts_with("line 2:"));
        assert!(read_items("\n\n").is_err());
    }

    #[test]
    fn picks_the_first_n_or_a_seeded_sample_in_file_order() {
        let items: Vec<Item> = (0..50).map(|i| item(&i.to_string(), None)).collect();
        let first: Vec<String> = pick(items.clone(), 3, None)
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(first, ["0", "1", "2"]);
        let a: Vec<String> = pick(items.clone(), 5, Some(7))
            .into_iter()
            .map(|i| i.id)
            .collect();
        let b: Vec<String> = pick(items.clone(), 5, Some(7))
            .into_iter()
            .map(|i| i.id)
            .collect();
        let c: Vec<String> = pick(items, 5, Some(8)).into_iter().map(|i| i.id).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let idx: Vec<usize> = a.iter().map(|s| s.parse().unwrap()).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "{idx:?}");
        assert_eq!(idx, pick_items(50, Some(5), Some(7)));
    }

    #[test]
    fn samples_are_graded_items() {
        let s = sample_items();
        assert_eq!(s.len(), SAMPLES.len());
        assert!(s
            .iter()
            .all(|i| i.gold.is_some() && i.question.options.len() >= 2));
    }

    #[test]
    fn choice_changes_name_both_budgets() {
        let cell = |budget, choice: Option<&str>| BudgetCell {
            budget,
            choice: choice.map(str::to_string),
            correct: None,
            answer: String::new(),
            answer_tokens: vec![],
            think_tokens: 0,
        };
        let cells = [
            cell(128, Some("A")),
            cell(256, Some("A")),
            cell(512, Some("C")),
            cell(1024, None),
        ];
        assert_eq!(
            choice_changes(&cells),
            vec![
                (256, Some("A".into()), 512, Some("C".into())),
                (512, Some("C".into()), 1024, None)
            ]
        );
        assert!(choice_changes(&cells[..2]).is_empty());
    }
}
