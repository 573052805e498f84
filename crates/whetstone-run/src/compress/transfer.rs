//! A transfer set for distillation: unlabelled in-domain sentences that the teacher labels
//! (TinyBERT's data augmentation, Jiao et al. 2020): real sentences from another dataset
//! ([`transfer_sentences`]), or the training texts rewritten by embedding-neighbour
//! replacement ([`neighbour_transfer`], TinyBERT's own recipe).

use std::path::Path;
use std::sync::Arc;
use whetstone_augment::{augment_all, NeighbourReplace};
use whetstone_compress::{CompressError, Result};
use whetstone_data::{load_splits, DataSource};

/// The `distill.transfer` value for TinyBERT's augmented transfer set ([`neighbour_transfer`]).
pub const NEIGHBOUR: &str = "neighbour";

/// Cut `text` into sentences of 4 to 60 words (HTML line breaks removed).
fn sentences(text: &str) -> Vec<String> {
    let clean = text.replace("<br />", " ").replace("<br/>", " ");
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in clean.chars() {
        cur.push(ch);
        if matches!(ch, '.' | '!' | '?') {
            push_sentence(&mut out, &cur);
            cur.clear();
        }
    }
    push_sentence(&mut out, &cur);
    out
}

fn push_sentence(out: &mut Vec<String>, s: &str) {
    let s = s.trim();
    let words = s.split_whitespace().count();
    if (4..=60).contains(&words) {
        out.push(s.to_string());
    }
}

/// Up to `max` sentences from the training split of the manifest dataset `name` (its labels
/// are ignored), in a seeded order.
///
/// ```no_run
/// let s = whetstone_run::compress::transfer_sentences("imdb", 1000, 42)?;
/// assert_eq!(s.len(), 1000);
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
pub fn transfer_sentences(name: &str, max: usize, seed: u64) -> Result<Vec<String>> {
    let splits = load_splits(&DataSource::Named { name: name.to_string() }, 0.1, 0.1, seed)?;
    let mut all: Vec<String> = Vec::new();
    for t in &splits.train.texts {
        all.extend(sentences(t));
        if all.len() >= max * 3 {
            break;
        }
    }
    shuffle(&mut all, seed);
    all.truncate(max);
    Ok(all)
}

/// TinyBERT's augmented transfer set: each of `texts` rewritten `copies` times by
/// [`NeighbourReplace`] (p = 0.4 among the K = 15 nearest whole words of the word embeddings
/// of the checkpoint `checkpoint`, as [`crate::load_neighbours`] resolves it), deterministic
/// for a `seed` whatever the thread count; at most `max` of them, a seeded random subset
/// (as [`transfer_sentences`]).
///
/// ```no_run
/// let texts = vec!["a gorgeous, moving film".to_string()];
/// let s = whetstone_run::compress::neighbour_transfer(&texts, std::path::Path::new("minilm-l6"), 20, 1000, 42)?;
/// assert_eq!(s.len(), 20);
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
pub fn neighbour_transfer(texts: &[String], checkpoint: &Path, copies: usize, max: usize, seed: u64) -> Result<Vec<String>> {
    if copies == 0 {
        return Err(CompressError::Config("distill.transfer_copies must be >= 1".into()));
    }
    let neighbours = crate::load_neighbours(checkpoint, NeighbourReplace::DEFAULT_K)?;
    let augmenter = NeighbourReplace::new(Arc::new(neighbours), NeighbourReplace::DEFAULT_P).map_err(|e| CompressError::Config(e.to_string()))?;
    let augmented = augment_all(texts, copies, seed, &augmenter).map_err(|e| CompressError::Config(format!("neighbour transfer set: {e}")))?;
    let mut all: Vec<String> = augmented.into_iter().map(|a| a.text).collect();
    shuffle(&mut all, seed);
    all.truncate(max);
    Ok(all)
}

/// A seeded Fisher–Yates shuffle (splitmix64), so a capped subset does not favour early texts.
fn shuffle(all: &mut [String], seed: u64) {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..all.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        all.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::sentences;

    #[test]
    fn reviews_are_cut_into_sentences_of_reasonable_length() {
        let s = sentences("Great film. Loved it!<br />The acting was superb and the plot kept me guessing. Why? No idea at all really");
        assert_eq!(s, vec!["The acting was superb and the plot kept me guessing.", "No idea at all really"]);
    }
}
