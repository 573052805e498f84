//! Label hygiene: missing and NaN-like labels, numeric normalisation, mixed label types.
//!
//! A label column is the one place where a typo silently changes the task: `1`, `"1"` and
//! `1.0` would be three classes, and `NaN` or `N/A` an ordinary fourth. Labels are therefore
//! checked and normalised as they are read, before they become class ids.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::profile::DataWarning;
use crate::table::RawExample;

/// Spellings of "no value" (compared case-insensitively after trimming).
const MISSING_MARKERS: &[&str] = &[
    "nan", "-nan", "na", "n/a", "#n/a", "null", "none", "nil", "undefined", "missing", "?", "-",
    "--", "inf", "-inf", "+inf", "infinity", "-infinity",
];

/// Why a raw label cannot be a class, or `None` when it can.
///
/// `raw` is the label as read (`None` when the field is absent or JSON `null`).
pub fn label_problem(raw: Option<&str>) -> Option<String> {
    let Some(raw) = raw else {
        return Some("the label is missing (absent or null)".to_string());
    };
    let t = raw.trim();
    if t.is_empty() {
        return Some("the label is empty".to_string());
    }
    let lower = t.to_ascii_lowercase();
    if MISSING_MARKERS.contains(&lower.as_str()) {
        return Some(format!("label `{t}` is a missing-value marker, not a class"));
    }
    if let Some(n) = parse_number(t) {
        if !n.is_finite() {
            return Some(format!("label `{t}` is not a finite number"));
        }
    }
    None
}

/// The number a label spells, if it is one: an optionally signed decimal with an optional
/// fraction and exponent (`1`, `-2`, `1.0`, `1e3`). Words Rust would also parse as floats
/// (`inf`, `nan`) are not numbers here; [`label_problem`] catches those.
fn parse_number(t: &str) -> Option<f64> {
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let starts_numeric = body.starts_with(|c: char| c.is_ascii_digit())
        || (body.starts_with('.') && body[1..].starts_with(|c: char| c.is_ascii_digit()));
    if !starts_numeric || !body.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) {
        return None;
    }
    t.parse::<f64>().ok()
}

/// The canonical spelling of a label: numbers by value (`1`, `01`, `1.0` and `1e0` are all
/// `1`; `0.50` is `0.5`), anything else trimmed and unchanged.
pub fn canonical(label: &str) -> String {
    let t = label.trim();
    match parse_number(t) {
        Some(n) if n.is_finite() => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                format!("{}", n as i64)
            } else {
                format!("{n}")
            }
        }
        _ => t.to_string(),
    }
}

/// Normalises the labels of one file's examples in place.
///
/// Numeric labels that spell the same value become one class (with a
/// [`DataWarning::LabelsMerged`] note naming the spellings); a file whose labels mix numbers
/// and words is an error naming a line of each.
pub fn normalise(rows: &mut [RawExample], file: &Path, column: &str) -> Result<Vec<DataWarning>> {
    let mut first_number: Option<(String, usize)> = None;
    let mut first_word: Option<(String, usize)> = None;
    // canonical -> spelling -> count
    let mut spellings: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for row in rows.iter_mut() {
        let is_number = parse_number(row.label.trim()).is_some();
        let slot = if is_number { &mut first_number } else { &mut first_word };
        if slot.is_none() {
            *slot = Some((row.label.clone(), row.line));
        }
        if is_number {
            let c = canonical(&row.label);
            *spellings.entry(c.clone()).or_default().entry(row.label.clone()).or_default() += 1;
            row.label = c;
        }
    }
    if let (Some((number, number_line)), Some((word, word_line))) = (first_number, first_word) {
        return Err(DataError::MixedLabels {
            file: file.to_path_buf(),
            column: column.to_string(),
            number,
            number_line,
            word,
            word_line,
        });
    }
    Ok(spellings
        .into_iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(canonical, s)| DataWarning::LabelsMerged {
            file: file.display().to_string(),
            canonical,
            spellings: s.into_iter().collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_numbers() {
        for (raw, want) in [("1", "1"), ("1.0", "1"), ("01", "1"), (" 1e0 ", "1"), ("-2.00", "-2"), ("0.50", "0.5"), ("pos", "pos"), ("1st", "1st")] {
            assert_eq!(canonical(raw), want, "{raw}");
        }
    }

    #[test]
    fn problems() {
        assert!(label_problem(None).is_some());
        for bad in ["", "  ", "NaN", "nan", "N/A", "null", "NULL", "None", "inf", "-Infinity", "?", "1e999"] {
            assert!(label_problem(Some(bad)).is_some(), "{bad:?}");
        }
        for good in ["0", "1", "1.0", "pos", "neutral", "nanny", "n/a/b"] {
            assert!(label_problem(Some(good)).is_none(), "{good:?}");
        }
    }
}
