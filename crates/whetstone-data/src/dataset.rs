//! In-memory datasets: label vocabularies and train/valid/test splits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::profile::DataWarning;

/// The classes of a task: sorted, unique raw labels; a label's index is its class id.
///
/// Sorting makes the id assignment independent of file order, so a model trained on a
/// shuffled copy of the data still agrees with a saved label set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelSet {
    /// The raw labels in class-id order.
    pub names: Vec<String>,
}

impl LabelSet {
    /// Builds the label set from raw labels (duplicates and order do not matter).
    pub fn from_labels<I, S>(labels: I) -> LabelSet
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<String> = labels.into_iter().map(|s| s.as_ref().to_string()).collect();
        names.sort();
        names.dedup();
        LabelSet { names }
    }

    /// The class id of a raw label, if the label is known.
    pub fn id(&self, raw: &str) -> Option<i64> {
        self.names
            .binary_search_by(|n| n.as_str().cmp(raw))
            .ok()
            .map(|i| i as i64)
    }

    /// The raw label of a class id.
    pub fn name(&self, id: i64) -> Option<&str> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.names.get(i))
            .map(String::as_str)
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Human-readable class names in id order: `map[raw]` where the manifest gives one
    /// (e.g. "1" -> "positive"), else the raw label itself.
    pub fn display_names(&self, map: Option<&BTreeMap<String, String>>) -> Vec<String> {
        self.names
            .iter()
            .map(|n| map.and_then(|m| m.get(n)).unwrap_or(n).clone())
            .collect()
    }
}

/// One split: texts and their class ids, index-aligned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Split {
    /// The texts.
    pub texts: Vec<String>,
    /// The class id of each text.
    pub labels: Vec<i64>,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether the split has no examples.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// How many examples each of `n_classes` classes has; ids outside `0..n_classes` are
    /// not counted.
    pub fn class_counts(&self, n_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; n_classes];
        for &l in &self.labels {
            if let Some(c) = usize::try_from(l).ok().and_then(|i| counts.get_mut(i)) {
                *c += 1;
            }
        }
        counts
    }
}

/// The three splits of a task and the label set their ids refer to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Splits {
    /// Training examples.
    pub train: Split,
    /// Validation examples (model selection, early stopping).
    pub valid: Split,
    /// Held-out test examples.
    pub test: Split,
    /// The classes.
    pub labels: LabelSet,
    /// What loading noticed without stopping: rows dropped, label spellings merged, class
    /// imbalance, texts shared between train and valid/test, very short texts.
    #[serde(default)]
    pub warnings: Vec<DataWarning>,
}
