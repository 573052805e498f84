//! Augmenting a labelled dataset into rows that keep each source example's id and label, and
//! writing them as JSON lines (what `whetstone augment` writes).

use serde::{Deserialize, Serialize};

use crate::augmenter::{augment_all, Augmenter};
use crate::error::{AugmentError, Result};

/// One row of an augmented dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AugmentedRow {
    /// The source example's id: its 0-based row in the input.
    pub id: usize,
    /// The (augmented) text.
    pub text: String,
    /// The source example's label, unchanged.
    pub label: String,
    /// Which augmentation of the source this is; absent for an original row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<usize>,
    /// The source text of an augmented row; absent for an original row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_text: Option<String>,
}

/// `n` augmentations of every example (preceded by the example itself when `keep_original`),
/// grouped by source in input order; deterministic for `seed` (see [`augment_all`]).
///
/// ```
/// use whetstone_augment::{augment_dataset, to_jsonl, RandomSwap};
/// let texts = vec!["a fine film".to_string()];
/// let rows = augment_dataset(&texts, &["1".to_string()], 2, 0, &RandomSwap::new(0.5)?, true)?;
/// assert_eq!(rows.len(), 3);
/// assert!(rows.iter().all(|r| r.id == 0 && r.label == "1"));
/// assert!(to_jsonl(&rows)?.starts_with(r#"{"id":0,"text":"a fine film","label":"1"}"#));
/// # Ok::<(), whetstone_augment::AugmentError>(())
/// ```
pub fn augment_dataset(texts: &[String], labels: &[String], n: usize, seed: u64, augmenter: &dyn Augmenter, keep_original: bool) -> Result<Vec<AugmentedRow>> {
    if texts.len() != labels.len() {
        return Err(AugmentError::InvalidArgument(format!("{} texts but {} labels", texts.len(), labels.len())));
    }
    let augmented = augment_all(texts, n, seed, augmenter)?;
    let mut rows = Vec::with_capacity(augmented.len() + if keep_original { texts.len() } else { 0 });
    for (id, chunk) in augmented.chunks(n.max(1)).enumerate().take(texts.len()) {
        if keep_original {
            rows.push(AugmentedRow { id, text: texts[id].clone(), label: labels[id].clone(), variant: None, source_text: None });
        }
        rows.extend(chunk.iter().map(|a| AugmentedRow { id: a.source, text: a.text.clone(), label: labels[a.source].clone(), variant: Some(a.variant), source_text: Some(texts[a.source].clone()) }));
    }
    if n == 0 && keep_original {
        rows.extend(texts.iter().zip(labels).enumerate().map(|(id, (t, l))| AugmentedRow { id, text: t.clone(), label: l.clone(), variant: None, source_text: None }));
    }
    Ok(rows)
}

/// The rows as JSON lines, one object per line.
pub fn to_jsonl(rows: &[AugmentedRow]) -> Result<String> {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r).map_err(|e| AugmentError::InvalidArgument(e.to_string()))?);
        out.push('\n');
    }
    Ok(out)
}
