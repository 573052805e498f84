//! What the data looks like, for the run log and the "Data" section of `report.md`: warnings
//! that do not stop a run (imbalance, leaked duplicates, very short texts, dropped rows,
//! merged label spellings) and the numbers behind them (class counts per split, length
//! percentiles, the share of examples at the truncation length, duplicates).

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::dataset::{Split, Splits};

/// Majority : minority ratio in the training split from which imbalance is "extreme".
pub const IMBALANCE_RATIO: usize = 10;

/// Average words per training text below which texts are "very short".
pub const SHORT_TEXT_WORDS: f64 = 3.0;

/// A problem with the data that does not stop a run; shown in the log and in `report.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DataWarning {
    /// Rows with a missing, empty, null or NaN-like label were dropped (`--drop-bad-labels`).
    #[error("{file}: dropped {count} row(s) whose `{column}` label is missing, empty, null or NaN-like (first: line {first_line}, {first_what})")]
    DroppedBadLabels {
        /// The file.
        file: String,
        /// The label column.
        column: String,
        /// Rows dropped.
        count: usize,
        /// Line of the first one.
        first_line: usize,
        /// What was wrong with the first one.
        first_what: String,
    },
    /// Numeric labels spelled differently but of the same value were read as one class.
    #[error("{file}: labels {} are the same number; read as one class `{canonical}`", spellings.iter().map(|(s, n)| format!("`{s}` ({n}×)")).collect::<Vec<_>>().join(", "))]
    LabelsMerged {
        /// The file.
        file: String,
        /// The class they became.
        canonical: String,
        /// Each spelling and how often it occurs.
        spellings: Vec<(String, usize)>,
    },
    /// The training split is dominated by one class.
    #[error("extreme class imbalance in train: `{majority}` has {majority_n} of {total} examples ({:.1}%), `{minority}` only {minority_n}; always answering `{majority}` already scores {:.3} accuracy (the majority-class baseline in report.md) — compare models on macro-F1 (--set train.metric=\"macro_f1\")", 100.0 * *majority_n as f64 / (*total).max(1) as f64, *majority_n as f64 / (*total).max(1) as f64)]
    Imbalance {
        /// The most frequent class.
        majority: String,
        /// Its count.
        majority_n: usize,
        /// The least frequent class.
        minority: String,
        /// Its count.
        minority_n: usize,
        /// Training examples.
        total: usize,
    },
    /// Texts of the valid or test split also occur in train.
    #[error("{leaked} of {total} {split} examples also occur in train (same text, ignoring case and spacing): {split} scores overstate generalisation — remove the duplicates from the data")]
    Leakage {
        /// "valid" or "test".
        split: String,
        /// Examples whose text is also in train.
        leaked: usize,
        /// Examples in that split.
        total: usize,
    },
    /// The average training text is very short.
    #[error("very short texts: the average training text has {:.1} words; is the text column (--text-col, data.text_col) the right one?", *words as f64 / (*examples).max(1) as f64)]
    ShortTexts {
        /// Words in all training texts.
        words: usize,
        /// Training texts.
        examples: usize,
    },
    /// A class of the training split has no example in a fixed valid or test file.
    #[error("class `{class}` has no example in the {split} split ({file}); its {split} metrics will be undefined")]
    ClassMissing {
        /// "valid" or "test".
        split: String,
        /// The class.
        class: String,
        /// The file of that split.
        file: String,
    },
}

/// A text reduced for duplicate detection: lower case, whitespace runs collapsed.
fn dedup_key(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Duplicates: (train examples repeating an earlier train text, valid examples whose text is
/// in train, test examples whose text is in train).
pub fn duplicate_counts(splits: &Splits) -> (usize, usize, usize) {
    let mut seen = HashSet::new();
    let mut within = 0;
    for t in &splits.train.texts {
        if !seen.insert(dedup_key(t)) {
            within += 1;
        }
    }
    let leaked = |s: &Split| s.texts.iter().filter(|t| seen.contains(&dedup_key(t))).count();
    (within, leaked(&splits.valid), leaked(&splits.test))
}

/// The warnings a loaded set of splits deserves on its own (imbalance, leakage, short texts).
pub fn split_warnings(splits: &Splits) -> Vec<DataWarning> {
    let mut out = Vec::new();
    let counts = splits.train.class_counts(splits.labels.len());
    let total: usize = counts.iter().sum();
    let max = counts.iter().enumerate().max_by_key(|&(i, &n)| (n, std::cmp::Reverse(i)));
    let min = counts.iter().enumerate().min_by_key(|&(i, &n)| (n, i));
    if let (Some((ma, &ma_n)), Some((mi, &mi_n))) = (max, min) {
        if counts.len() >= 2 && ma_n >= IMBALANCE_RATIO * mi_n.max(1) {
            out.push(DataWarning::Imbalance {
                majority: splits.labels.names[ma].clone(),
                majority_n: ma_n,
                minority: splits.labels.names[mi].clone(),
                minority_n: mi_n,
                total,
            });
        }
    }
    let (_, valid, test) = duplicate_counts(splits);
    for (split, leaked, n) in [("valid", valid, splits.valid.len()), ("test", test, splits.test.len())] {
        if leaked > 0 {
            out.push(DataWarning::Leakage { split: split.to_string(), leaked, total: n });
        }
    }
    let words: usize = splits.train.texts.iter().map(|t| t.split_whitespace().count()).sum();
    let n = splits.train.len();
    if n > 0 && (words as f64) / (n as f64) < SHORT_TEXT_WORDS {
        out.push(DataWarning::ShortTexts { words, examples: n });
    }
    out
}

/// Percentiles (p50, p90, p99) and maximum of `values` (nearest rank); zeros when empty.
pub fn percentiles(values: &[usize]) -> [usize; 4] {
    if values.is_empty() {
        return [0; 4];
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    [at(0.5), at(0.9), at(0.99), v[v.len() - 1]]
}

/// Per-split numbers of a [`DataProfile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitProfile {
    /// "train", "valid" or "test".
    pub name: String,
    /// Examples.
    pub n: usize,
    /// Examples per class, in class-id order.
    pub class_counts: Vec<usize>,
    /// p50, p90, p99 and max of the text length in characters.
    pub chars: [usize; 4],
    /// p50, p90, p99 and max of the length in tokens (special tokens included, after
    /// truncation), when the token lengths were given.
    pub tokens: Option<[usize; 4]>,
    /// Share of examples that reach `max_len` tokens, i.e. were truncated (or fill it exactly).
    pub truncated: Option<f64>,
}

/// The data section of a run: what was trained and tested on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataProfile {
    /// Class names in id order.
    pub classes: Vec<String>,
    /// train, valid, test.
    pub splits: Vec<SplitProfile>,
    /// The truncation length the token numbers refer to.
    pub max_len: Option<usize>,
    /// Training examples whose text repeats an earlier training text.
    pub train_duplicates: usize,
    /// Validation examples whose text is also in train.
    pub valid_leaked: usize,
    /// Test examples whose text is also in train.
    pub test_leaked: usize,
    /// The warnings, as shown in the log.
    pub warnings: Vec<String>,
}

impl DataProfile {
    /// The profile of `splits`; `token_lengths` (train, valid, test; e.g.
    /// [`crate::Encoded::lengths`]) and `max_len` add token percentiles and the truncation share.
    pub fn new(splits: &Splits, token_lengths: Option<[&[usize]; 3]>, max_len: Option<usize>) -> Self {
        let k = splits.labels.len();
        let parts = [("train", &splits.train), ("valid", &splits.valid), ("test", &splits.test)];
        let split_profiles = parts
            .iter()
            .enumerate()
            .map(|(i, (name, s))| {
                let chars: Vec<usize> = s.texts.iter().map(|t| t.chars().count()).collect();
                let toks = token_lengths.map(|l| l[i]);
                SplitProfile {
                    name: name.to_string(),
                    n: s.len(),
                    class_counts: s.class_counts(k),
                    chars: percentiles(&chars),
                    tokens: toks.map(percentiles),
                    truncated: match (toks, max_len) {
                        (Some(t), Some(m)) if !t.is_empty() => Some(t.iter().filter(|&&x| x >= m).count() as f64 / t.len() as f64),
                        _ => None,
                    },
                }
            })
            .collect();
        let (train_duplicates, valid_leaked, test_leaked) = duplicate_counts(splits);
        DataProfile {
            classes: splits.labels.names.clone(),
            splits: split_profiles,
            max_len,
            train_duplicates,
            valid_leaked,
            test_leaked,
            warnings: splits.warnings.iter().map(ToString::to_string).collect(),
        }
    }

    /// The profile as Markdown (for a "## Data" section), with `display` names for the classes
    /// when given (else the raw labels).
    pub fn to_markdown(&self, display: Option<&[String]>) -> String {
        let names = display.filter(|d| d.len() == self.classes.len()).unwrap_or(&self.classes);
        let mut md = String::new();
        md.push_str("| class |");
        for s in &self.splits {
            let _ = write!(md, " {} |", s.name);
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(self.splits.len()));
        md.push('\n');
        for (c, name) in names.iter().enumerate() {
            let _ = write!(md, "| {} |", cell(name));
            for s in &self.splits {
                let n = s.class_counts.get(c).copied().unwrap_or(0);
                let _ = write!(md, " {n} ({:.1}%) |", 100.0 * n as f64 / s.n.max(1) as f64);
            }
            md.push('\n');
        }
        md.push_str("| **total** |");
        for s in &self.splits {
            let _ = write!(md, " {} |", s.n);
        }
        md.push_str("\n\n| split | chars p50 / p90 / p99 / max | tokens p50 / p90 / p99 / max |");
        let trunc_header = match self.max_len {
            Some(m) => format!(" at max_len ({m} tokens, truncated) |"),
            None => " truncated |".to_string(),
        };
        md.push_str(&trunc_header);
        md.push_str("\n|---|---:|---:|---:|\n");
        for s in &self.splits {
            let q = |v: &[usize; 4]| format!("{} / {} / {} / {}", v[0], v[1], v[2], v[3]);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                s.name,
                q(&s.chars),
                s.tokens.as_ref().map_or("–".to_string(), q),
                s.truncated.map_or("–".to_string(), |t| format!("{:.1}%", 100.0 * t))
            );
        }
        let _ = write!(
            md,
            "\nDuplicates (same text ignoring case and spacing): {} within train; {} valid and {} test examples also in train.\n",
            self.train_duplicates, self.valid_leaked, self.test_leaked
        );
        if !self.warnings.is_empty() {
            md.push_str("\nWarnings:\n\n");
            for w in &self.warnings {
                let _ = writeln!(md, "- {w}");
            }
        }
        md
    }
}

/// A Markdown table cell: pipes escaped, newlines flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

