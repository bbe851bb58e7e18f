//! "Accuracy by thinking budget": a line chart in SVG with 95% Wilson intervals, one line
//! per evaluation, and the same figures as a table for screen readers and for copying.

use leptos::prelude::*;
use m1_engine::reason::AccuracyRow;

/// One evaluation's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub rows: Vec<AccuracyRow>,
}

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;
const CLASSES: [&str; 2] = ["series-a", "series-b"];
/// Short names of the lines: the legend gives each one's full label.
const NAMES: [&str; 2] = ["A", "B"];

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

#[component]
pub fn AccuracyChart(series: Signal<Vec<Series>>) -> impl IntoView {
    let chart = move || {
        let series = series.get();
        // Budgets sit evenly spaced in order: a sweep's budgets usually double, so this is
        // the log scale the paper draws, and a budget of 0 needs no special case.
        let mut budgets: Vec<usize> = series
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| r.budget))
            .collect();
        budgets.sort_unstable();
        budgets.dedup();
        let n = budgets.len().max(1);
        let x = |b: usize| {
            let i = budgets.iter().position(|&v| v == b).unwrap_or(0);
            if n == 1 {
                LEFT + (W - LEFT - RIGHT) / 2.0
            } else {
                LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
            }
        };
        let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v);
        let grid = [0.0, 0.25, 0.5, 0.75, 1.0]
            .into_iter()
            .map(|v| {
                view! {
                    <line class="grid" x1=LEFT x2=W - RIGHT y1=y(v) y2=y(v) />
                    <text class="tick" x=LEFT - 8.0 y=y(v) + 4.0 text-anchor="end">{pct(v)}</text>
                }
            })
            .collect_view();
        let ticks = budgets
            .iter()
            .map(|&b| {
                view! { <text class="tick" x=x(b) y=H - BOTTOM + 18.0 text-anchor="middle">{b.to_string()}</text> }
            })
            .collect_view();
        let lines = series
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let class = CLASSES[si % CLASSES.len()];
                let pts: Vec<(f64, f64, &AccuracyRow)> = s
                    .rows
                    .iter()
                    .filter_map(|r| r.accuracy.map(|a| (x(r.budget), y(a), r)))
                    .collect();
                let path = pts
                    .iter()
                    .map(|(px, py, _)| format!("{px:.1},{py:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let marks = pts
                    .iter()
                    .map(|&(px, py, r)| {
                        let (lo, hi) = (r.low.unwrap_or(0.0), r.high.unwrap_or(1.0));
                        let acc = r.accuracy.unwrap_or(0.0);
                        let tip = format!(
                            "{}: budget {}, {} of {} correct ({}, 95% interval {}–{})",
                            s.label, r.budget, r.correct, r.n, pct(acc), pct(lo), pct(hi)
                        );
                        view! {
                            <g class="point">
                                <line class="interval" x1=px x2=px y1=y(lo) y2=y(hi) />
                                <line class="interval" x1=px - 4.0 x2=px + 4.0 y1=y(lo) y2=y(lo) />
                                <line class="interval" x1=px - 4.0 x2=px + 4.0 y1=y(hi) y2=y(hi) />
                                <circle cx=px cy=py r="4.5" data-testid="chart-point" data-series=si.to_string()
                                    data-budget=r.budget.to_string() data-accuracy=format!("{acc:.6}") data-n=r.n.to_string()>
                                    <title>{tip}</title>
                                </circle>
                            </g>
                        }
                    })
                    .collect_view();
                view! { <g class=format!("series {class}")><polyline points=path />{marks}</g> }
            })
            .collect_view();
        view! {
            <svg class="chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label="Accuracy by thinking budget"
                data-testid="accuracy-chart" preserveAspectRatio="xMidYMid meet">
                {grid}
                {ticks}
                <text class="axis-label" x=(LEFT + W - RIGHT) / 2.0 y=H - 6.0 text-anchor="middle">"Thinking budget (tokens)"</text>
                <text class="axis-label" x=14.0 y=(TOP + H - BOTTOM) / 2.0 text-anchor="middle"
                    transform=format!("rotate(-90 14 {})", (TOP + H - BOTTOM) / 2.0)>"Accuracy"</text>
                {lines}
            </svg>
        }
    };
    let legend = move || {
        series
            .get()
            .into_iter()
            .enumerate()
            .map(|(si, s)| {
                let items = s.rows.iter().map(|r| r.n).max().unwrap_or(0);
                view! {
                    <li class=CLASSES[si % CLASSES.len()]><span class="swatch" aria-hidden="true"></span>
                        {format!("{}: {} (n = {items} scored items; bars: 95% Wilson interval)", NAMES[si % NAMES.len()], s.label)}</li>
                }
            })
            .collect_view()
    };
    let table = move || {
        series
            .get()
            .into_iter()
            .enumerate()
            .flat_map(|(si, s)| {
                s.rows.into_iter().map(move |r| {
                    let interval = r.low.zip(r.high).map_or("–".to_string(), |(lo, hi)| {
                        format!("{}–{}", pct(lo), pct(hi))
                    });
                    view! {
                        <tr data-testid="accuracy-row">
                            <td title=s.label.clone()>{NAMES[si % NAMES.len()]}</td>
                            <td data-col="budget">{r.budget.to_string()}</td>
                            <td data-col="n">{r.n.to_string()}</td>
                            <td data-col="correct">{r.correct.to_string()}</td>
                            <td data-col="accuracy">{r.accuracy.map_or("–".to_string(), pct)}</td>
                            <td>{interval}</td>
                        </tr>
                    }
                })
            })
            .collect_view()
    };
    view! {
        <figure class="chart-figure">
            {chart}
            <figcaption><ul class="legend">{legend}</ul></figcaption>
        </figure>
        <div class="scroll-x"><table class="accuracy" data-testid="accuracy-table">
            <caption>"Accuracy by thinking budget (table)"</caption>
            <thead><tr><th>"Line"</th><th>"Budget"</th><th>"Items"</th><th>"Correct"</th><th>"Accuracy"</th><th>"95% interval"</th></tr></thead>
            <tbody>{table}</tbody>
        </table></div>
    }
}
