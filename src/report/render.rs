//! A report as people read it in a terminal (JSON is the report's `Serialize`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{ArmResult, Report};
use crate::stats::Rate;

/// `12.3%`
pub fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `12.3% (10.1–14.8%)`
pub fn rate(r: &Rate) -> String {
    format!("{} ({:.1}–{:.1}%)", percent(r.rate), r.low * 100.0, r.high * 100.0)
}

/// `consent 3, holdout 10` (or `-`).
pub fn reasons(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// `+2.0 pp (+18.5%)`
pub fn uplift(arm: &ArmResult) -> String {
    match arm.uplift {
        None => "control".into(),
        Some(u) => {
            let relative = u.relative.map_or_else(String::new, |r| format!(" ({:+.1}%)", r * 100.0));
            format!("{:+.1} pp{relative}", u.absolute * 100.0)
        }
    }
}

/// Columns padded to their widest cell: the first left-aligned, the others right-aligned.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            line.push(' ');
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
            line.push(' ');
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The whole report as text.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let t = &report.totals;
    let _ = writeln!(
        out,
        "journey {}{}",
        report.journey,
        report.name.as_ref().map(|n| format!(" — {n}")).unwrap_or_default()
    );
    let _ = writeln!(out, "  goal        {}", report.goal.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "  entered     {}", t.entered);
    let _ = writeln!(out, "  converted   {} = {}", t.converted, rate(&t.conversion));
    let _ = writeln!(out, "  revenue     {} (minor units)", t.revenue);
    if t.unattributed > 0 {
        let _ = writeln!(out, "  unattributed {} (converted before any message)", t.unattributed);
    }
    if !t.refused.is_empty() {
        let _ = writeln!(out, "  not entered {}", reasons(&t.refused));
    }
    if !t.exited.is_empty() {
        let _ = writeln!(out, "  left early  {}", reasons(&t.exited));
    }
    let _ = writeln!(out, "\nfunnel (conversions by last touch)");
    let mut rows = vec![
        ["step", "kind", "entered", "sent", "pending", "failed", "skipped", "converted", "revenue"]
            .map(String::from)
            .to_vec(),
    ];
    for s in &report.funnel {
        rows.push(vec![
            s.step.clone(),
            s.kind.clone(),
            s.entered.map_or_else(|| "-".into(), |n| n.to_string()),
            s.sent.to_string(),
            s.pending.to_string(),
            s.failed.to_string(),
            reasons(&s.skipped),
            s.converted.to_string(),
            s.revenue.to_string(),
        ]);
    }
    table(&mut out, &rows);
    for e in &report.experiments {
        let _ = writeln!(
            out,
            "\nexperiment at step {} ({}; control: {}; conversions by assignment)",
            e.step,
            e.kind,
            e.control.as_deref().unwrap_or("-")
        );
        let mut rows = vec![
            [
                "arm",
                "weight",
                "entered",
                "sent",
                "delivered",
                "opened",
                "clicked",
                "converted",
                "rate (95% CI)",
                "P(beats control)",
                "uplift",
                "revenue",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for a in &e.arms {
            rows.push(vec![
                a.arm.clone(),
                a.weight.map_or_else(|| "-".into(), |w| format!("{w}%")),
                a.entered.to_string(),
                a.sent.to_string(),
                a.delivered.to_string(),
                a.opened.to_string(),
                a.clicked.to_string(),
                a.converted.to_string(),
                rate(&a.conversion),
                a.prob_beats_control.map_or_else(|| "-".into(), percent),
                uplift(a),
                a.revenue.to_string(),
            ]);
        }
        table(&mut out, &rows);
    }
    out
}
