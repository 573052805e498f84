//! Human-readable Markdown report for one training run.
//!
//! The report is the artefact a reader opens first, so it puts the headline
//! test metrics, per-class behaviour, the confusion matrix, efficiency, the
//! training curves and the exact recipe in one self-contained file.

use std::fmt::Write as _;
use std::path::Path;

use crate::fs::{create_parent_dir, io_err};
use crate::markdown::{cell, code_block, table};
use crate::{ClassificationReport, Efficiency, EvalError};

/// Everything needed to render a run report; borrowed so the caller keeps
/// ownership of its results.
#[derive(Debug, Clone, Copy)]
pub struct RunReport<'a> {
    /// Run name, used as the title.
    pub name: &'a str,
    /// The recipe file exactly as used, reproduced verbatim.
    pub recipe_toml: &'a str,
    /// Metrics on the test split.
    pub test: &'a ClassificationReport,
    /// Metrics on the validation split, if evaluated.
    pub valid: Option<&'a ClassificationReport>,
    /// Efficiency measurements, if taken.
    pub efficiency: Option<&'a Efficiency>,
    /// Free-form key → value summary (steps, epochs, wall_s, best_step,
    /// padding_fraction, device, ...). A JSON object renders as a table.
    pub train_summary: &'a serde_json::Value,
    /// File name of the training-curve image, relative to the report.
    pub plot_png: Option<&'a str>,
    /// The "Data" section (Markdown: class counts per split, length percentiles, truncation
    /// share, duplicates, warnings), if the caller has one.
    pub data_md: Option<&'a str>,
    /// The test accuracy against the majority-class baseline (Markdown; with a warning when
    /// the model did not beat it), shown under the title.
    pub baseline_md: Option<&'a str>,
    /// The "Defaults chosen for the data's size" section (Markdown), if the run had one.
    pub size_md: Option<&'a str>,
}

/// Render `r` as Markdown and write it to `path` atomically ([`crate::write_atomic`]; parent
/// dirs created).
///
/// # Errors
/// [`EvalError::Io`] naming `path`.
pub fn write_report_md(r: &RunReport, path: &Path) -> Result<(), EvalError> {
    let md = render(r);
    create_parent_dir(path)?;
    crate::write_atomic(path, md.as_bytes()).map_err(|e| io_err(path, e))
}

/// Thousands-separated integer, e.g. `1234567` → `"1,234,567"`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Build the whole document.
fn render(r: &RunReport) -> String {
    let mut md = format!("# Run report: {}\n\n", r.name);
    if let Some(b) = r.baseline_md {
        md.push_str(b);
        if !b.ends_with('\n') {
            md.push('\n');
        }
        md.push('\n');
    }
    md.push_str("## Summary\n\n");
    md.push_str(&summary_table(r));
    md.push_str("\n## Test metrics\n\n");
    md.push_str(&headline_table(r.test, r.valid));
    md.push_str("\n### Per-class (test)\n\n");
    md.push_str(&per_class_table(r.test));
    md.push_str("\n### Confusion matrix (test; rows = true, columns = predicted)\n\n");
    md.push_str(&confusion_table(r.test));
    if let Some(data) = r.data_md {
        md.push_str("\n## Data\n\n");
        md.push_str(data);
        if !data.ends_with('\n') {
            md.push('\n');
        }
    }
    if let Some(size) = r.size_md {
        md.push_str("\n## Defaults chosen for the data's size\n\n");
        md.push_str(size);
        if !size.ends_with('\n') {
            md.push('\n');
        }
    }
    if let Some(eff) = r.efficiency {
        md.push_str("\n## Efficiency\n\n");
        md.push_str(&efficiency_table(eff));
    }
    if let Some(png) = r.plot_png {
        let target = if png.contains(' ') {
            format!("<{png}>")
        } else {
            png.to_string()
        };
        let _ = write!(md, "\n## Training curves\n\n![]({target})\n");
    }
    md.push_str("\n## Recipe\n\n");
    md.push_str(&code_block("toml", r.recipe_toml));
    md
}

/// Key/value table from the free-form summary plus the test-set size.
fn summary_table(r: &RunReport) -> String {
    let mut rows: Vec<Vec<String>> = match r.train_summary {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| vec![cell(k), cell(&json_value(v))])
            .collect(),
        serde_json::Value::Null => vec![],
        other => vec![vec!["summary".into(), cell(&json_value(other))]],
    };
    rows.push(vec!["test examples".into(), format_count(r.test.n as u64)]);
    if let Some(v) = r.valid {
        rows.push(vec!["validation examples".into(), format_count(v.n as u64)]);
    }
    table(&["key".into(), "value".into()], &[false, true], &rows)
}

/// Accuracy / macro-F1 / MCC for test (and validation when present).
fn headline_table(test: &ClassificationReport, valid: Option<&ClassificationReport>) -> String {
    let mut header = vec!["metric".to_string(), "test".to_string()];
    if valid.is_some() {
        header.push("validation".into());
    }
    let rows = [
        ("accuracy", "accuracy"),
        ("macro-F1", "macro_f1"),
        ("MCC", "mcc"),
    ]
    .iter()
    .map(|&(shown, key)| {
        let mut row = vec![shown.to_string()];
        row.extend(
            std::iter::once(test)
                .chain(valid)
                .map(|rep| metric_cell(rep.metric(key))),
        );
        row
    })
    .collect::<Vec<_>>();
    let mut rows = rows;
    // What always answering the most frequent class would score: the floor a model must beat.
    let mut baseline = vec!["majority-class baseline (accuracy)".to_string()];
    baseline.extend(std::iter::once(test).chain(valid).map(|rep| match rep.majority_baseline() {
        Some((acc, label)) => format!("{acc:.4} ({})", cell(label)),
        None => "—".to_string(),
    }));
    rows.push(baseline);
    table(&header, &[false, true, true], &rows)
}

/// Four-decimal metric value; `—` for a metric that does not exist.
fn metric_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{x:.4}"))
}

fn per_class_table(rep: &ClassificationReport) -> String {
    let rows: Vec<Vec<String>> = rep
        .per_class
        .iter()
        .map(|m| {
            vec![
                cell(&m.label),
                format!("{:.4}", m.precision),
                format!("{:.4}", m.recall),
                format!("{:.4}", m.f1),
                format_count(m.support),
            ]
        })
        .collect();
    let header = ["class", "precision", "recall", "F1", "support"].map(String::from);
    table(&header, &[false, true, true, true, true], &rows)
}

fn confusion_table(rep: &ClassificationReport) -> String {
    let names: Vec<String> = rep.per_class.iter().map(|m| cell(&m.label)).collect();
    let mut header = vec!["true \\\\ predicted".to_string()];
    header.extend(names.iter().cloned());
    let rows: Vec<Vec<String>> = rep
        .confusion
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let name = names.get(i).cloned().unwrap_or_else(|| i.to_string());
            std::iter::once(format!("**{name}**"))
                .chain(row.iter().map(|&c| format_count(c)))
                .collect()
        })
        .collect();
    let align: Vec<bool> = (0..header.len()).map(|i| i > 0).collect();
    table(&header, &align, &rows)
}

fn efficiency_table(e: &Efficiency) -> String {
    let lat = &e.latency_b1;
    let rows = vec![
        vec!["parameters".into(), format_count(e.params)],
        // Decimal megabytes (10^6), as file managers and model cards report.
        vec![
            "checkpoint size".into(),
            format!("{:.2} MB", e.checkpoint_bytes as f64 / 1e6),
        ],
        vec![
            "latency p50 (batch 1)".into(),
            format!("{:.2} ms", lat.p50_ms),
        ],
        vec![
            "latency p95 (batch 1)".into(),
            format!("{:.2} ms", lat.p95_ms),
        ],
        vec![
            "latency mean (batch 1)".into(),
            format!(
                "{:.2} ms over {} runs",
                lat.mean_ms,
                format_count(lat.iters as u64)
            ),
        ],
        vec![
            "throughput (batch 32)".into(),
            format!("{} seq/s", format_rate(e.throughput_b32)),
        ],
    ];
    table(&["measure".into(), "value".into()], &[false, true], &rows)
}

/// Rates ≥ 100 are shown as separated integers; smaller ones keep a decimal.
fn format_rate(x: f64) -> String {
    if x.is_finite() && x >= 100.0 {
        format_count(x.round() as u64)
    } else {
        format!("{x:.1}")
    }
}

/// Plain rendering of a summary value: strings unquoted, floats to 4
/// decimals (trailing zeros trimmed), integers separated, others as JSON.
fn json_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                format_count(u)
            } else if let Some(i) = n.as_i64() {
                format!("-{}", format_count(i.unsigned_abs()))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                let s = format!("{f:.4}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
        }
        other => format!("`{other}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{classification_report, LatencyStats};
    use serde_json::json;

    #[test]
    fn counts() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(format_count(u64::MAX), "18,446,744,073,709,551,615");
    }

    fn names() -> Vec<String> {
        vec!["negative".into(), "positive".into(), "mixed|odd".into()]
    }

    #[test]
    fn full_report() {
        // 8 examples, 7 correct → accuracy 0.8750.
        let labels = [0, 0, 0, 1, 1, 1, 2, 2];
        let preds = [0, 0, 1, 1, 1, 1, 2, 2];
        let test = classification_report(&labels, &preds, &names()).unwrap();
        let valid = classification_report(&[0, 1], &[0, 1], &names()).unwrap();
        let eff = Efficiency {
            params: 4_386_050,
            checkpoint_bytes: 17_544_200,
            latency_b1: LatencyStats {
                p50_ms: 1.234,
                p95_ms: 2.5,
                mean_ms: 1.4,
                iters: 200,
            },
            throughput_b32: 12_345.6,
        };
        let summary = json!({"steps": 12000, "wall_s": 93.12345, "device": "cuda:0", "padding_fraction": 0.25});
        let r = RunReport {
            name: "sst2-bilstm",
            recipe_toml: "[model]\nkind = \"bilstm\"\n",
            test: &test,
            valid: Some(&valid),
            efficiency: Some(&eff),
            train_summary: &summary,
            plot_png: Some("curves.png"),
            data_md: Some("| class | train |\n|---|---:|\n| negative | 3 |\n"),
            baseline_md: Some("**test accuracy 0.8750 vs majority-class baseline 0.3750**"),
            size_md: Some("| setting | chosen | why |\n"),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report/README.md");
        write_report_md(&r, &path).unwrap();
        let md = std::fs::read_to_string(&path).unwrap();

        assert!(md.starts_with("# Run report: sst2-bilstm\n"));
        for needle in [
            "| accuracy | 0.8750 | 1.0000 |",
            "| negative | 1.0000 | 0.6667 | 0.8000 | 3 |",
            "| positive | 0.7500 | 1.0000 | 0.8571 | 3 |",
            "mixed\\|odd",
            "| **negative** | 2 | 1 | 0 |",
            "| **positive** | 0 | 3 | 0 |",
            "| **mixed\\|odd** | 0 | 0 | 2 |",
            "| parameters | 4,386,050 |",
            "| checkpoint size | 17.54 MB |",
            "| latency p50 (batch 1) | 1.23 ms |",
            "| latency p95 (batch 1) | 2.50 ms |",
            "| throughput (batch 32) | 12,346 seq/s |",
            "| steps | 12,000 |",
            "| wall_s | 93.1235 |",
            "| device | cuda:0 |",
            "| test examples | 8 |",
            "![](curves.png)",
            "| majority-class baseline (accuracy) | 0.3750 (negative) | 0.5000 (negative) |",
            "## Data\n\n| class | train |\n|---|---:|\n| negative | 3 |\n",
            "```toml\n[model]\nkind = \"bilstm\"\n```\n",
            "# Run report: sst2-bilstm\n\n**test accuracy 0.8750 vs majority-class baseline 0.3750**\n\n## Summary",
            "## Defaults chosen for the data's size\n\n| setting | chosen | why |\n",
        ] {
            assert!(md.contains(needle), "report lacks {needle:?}:\n{md}");
        }
    }

    #[test]
    fn minimal_report_omits_optional_sections() {
        let test = classification_report(&[0, 1], &[1, 1], &names()[..2]).unwrap();
        let r = RunReport {
            name: "x",
            recipe_toml: "",
            test: &test,
            valid: None,
            efficiency: None,
            train_summary: &serde_json::Value::Null,
            plot_png: None,
            data_md: None,
            baseline_md: None,
            size_md: None,
        };
        let md = render(&r);
        assert!(!md.contains("## Efficiency") && !md.contains("![") && !md.contains("## Data") && !md.contains("## Defaults chosen"));
        assert!(md.contains("| accuracy | 0.5000 |"));
        assert!(md.contains("| MCC | 0.0000 |"));
    }

    #[test]
    fn unwritable_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, "").unwrap();
        let test = classification_report(&[0], &[0], &names()).unwrap();
        let r = RunReport {
            name: "x",
            recipe_toml: "",
            test: &test,
            valid: None,
            efficiency: None,
            train_summary: &json!({}),
            plot_png: None,
            data_md: None,
            baseline_md: None,
            size_md: None,
        };
        let err = write_report_md(&r, &blocker.join("README.md")).unwrap_err();
        assert!(err.to_string().contains("blocker"), "{err}");
    }
}
