//! Entity-level precision, recall and F1 for BIO-tagged sequences, as seqeval computes them
//! in its default mode (the CoNLL-2000 `conlleval` chunking; Nakayama 2018).
//!
//! A chunk is a `(type, start, end)` span. A gold chunk counts as found only if a predicted
//! chunk has the same type and the same boundaries. Chunks are read leniently, as conlleval
//! does: an `I-X` after `O` or after a chunk of another type starts a new chunk, and a type
//! change ends one. Sentences are joined with an `O` between them, so no chunk spans two.
//!
//! ```
//! use whetstone_eval::entities::{entity_scores, get_entities};
//! let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
//! // seqeval's README example.
//! let gold = vec![s(&["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"]), s(&["B-PER", "I-PER", "O"])];
//! let pred = vec![s(&["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"]), s(&["B-PER", "I-PER", "O"])];
//! let r = entity_scores(&gold, &pred)?;
//! assert_eq!((r.precision, r.recall, r.f1), (0.5, 0.5, 0.5));
//! assert_eq!(get_entities(&s(&["B-PER", "I-PER", "O", "B-LOC"])), vec![("PER".to_string(), 0, 1), ("LOC".to_string(), 3, 3)]);
//! # Ok::<(), whetstone_eval::EvalError>(())
//! ```

use crate::EvalError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Scores of one entity type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityTypeScores {
    /// The entity type (`PER`, `geo-loc`, …).
    pub entity: String,
    /// Exact-match precision over this type's predicted chunks (0 when none was predicted).
    pub precision: f64,
    /// Exact-match recall over this type's gold chunks (0 when there are none).
    pub recall: f64,
    /// Harmonic mean of the two (0 when both are 0).
    pub f1: f64,
    /// Gold chunks of this type.
    pub support: usize,
}

/// Micro-averaged entity scores (seqeval's `f1_score`, `precision_score`, `recall_score`)
/// and the per-type table of its `classification_report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityScores {
    /// Correct predicted chunks / predicted chunks.
    pub precision: f64,
    /// Correct predicted chunks / gold chunks.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Gold chunks.
    pub support: usize,
    /// Per entity type, sorted by name.
    pub per_type: Vec<EntityTypeScores>,
}

/// The chunks `(type, first, last)` of one tag sequence (positions inclusive), in seqeval's
/// default mode: IOB2 read leniently, with `E-`/`S-` (IOBES) understood too.
pub fn get_entities(tags: &[String]) -> Vec<(String, usize, usize)> {
    let mut chunks = Vec::new();
    let (mut prev_tag, mut prev_type, mut begin) = ('O', String::new(), 0usize);
    let end = String::from("O");
    for (i, chunk) in tags.iter().chain(std::iter::once(&end)).enumerate() {
        let tag = chunk.chars().next().unwrap_or('O');
        let ty = split_type(chunk);
        if end_of_chunk(prev_tag, tag, &prev_type, &ty) {
            chunks.push((prev_type.clone(), begin, i - 1));
        }
        if start_of_chunk(prev_tag, tag, &prev_type, &ty) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = ty;
    }
    chunks
}

/// seqeval: `chunk[1:].split('-', maxsplit=1)[-1] or '_'`.
fn split_type(chunk: &str) -> String {
    let rest: String = chunk.chars().skip(1).collect();
    let ty = match rest.split_once('-') {
        Some((_, t)) => t.to_string(),
        None => rest,
    };
    if ty.is_empty() {
        "_".into()
    } else {
        ty
    }
}

fn end_of_chunk(prev: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(prev, 'E' | 'S')
        || (matches!(prev, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev != 'O' && prev != '.' && prev_type != ty)
}

fn start_of_chunk(prev: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != ty)
}

fn prf(correct: usize, predicted: usize, gold: usize) -> (f64, f64, f64) {
    let p = if predicted == 0 { 0.0 } else { correct as f64 / predicted as f64 };
    let r = if gold == 0 { 0.0 } else { correct as f64 / gold as f64 };
    let f = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
    (p, r, f)
}

/// Entity-level scores of `pred` against `gold` (one tag sequence per sentence; each
/// predicted sentence as long as its gold one).
///
/// # Errors
/// [`EvalError::LengthMismatch`] when the number of sentences, or a sentence's length,
/// differs; [`EvalError::Empty`] when there are no sentences.
pub fn entity_scores(gold: &[Vec<String>], pred: &[Vec<String>]) -> Result<EntityScores, EvalError> {
    if gold.len() != pred.len() {
        return Err(EvalError::LengthMismatch { labels: gold.len(), preds: pred.len() });
    }
    if gold.is_empty() {
        return Err(EvalError::Empty);
    }
    if let Some((g, p)) = gold.iter().zip(pred).find(|(g, p)| g.len() != p.len()) {
        return Err(EvalError::LengthMismatch { labels: g.len(), preds: p.len() });
    }
    // seqeval joins the sentences with an `O` between them.
    let join = |s: &[Vec<String>]| -> BTreeSet<(String, usize, usize)> {
        let flat: Vec<String> = s.iter().flat_map(|t| t.iter().cloned().chain(std::iter::once("O".to_string()))).collect();
        get_entities(&flat).into_iter().collect()
    };
    let (g, p) = (join(gold), join(pred));
    let correct = g.intersection(&p).count();
    let (precision, recall, f1) = prf(correct, p.len(), g.len());
    let mut types: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for e in &g {
        types.entry(&e.0).or_default().2 += 1;
    }
    for e in &p {
        let t = types.entry(&e.0).or_default();
        t.1 += 1;
        if g.contains(e) {
            t.0 += 1;
        }
    }
    let per_type = types
        .into_iter()
        .map(|(entity, (c, np, ng))| {
            let (precision, recall, f1) = prf(c, np, ng);
            EntityTypeScores { entity: entity.to_string(), precision, recall, f1, support: ng }
        })
        .collect();
    Ok(EntityScores { precision, recall, f1, support: g.len(), per_type })
}
