//! A transfer set for distillation: unlabelled in-domain sentences that the teacher labels
//! (TinyBERT's data augmentation, Jiao et al. 2020, with real sentences instead of
//! word-replaced ones).

use whetstone_compress::Result;
use whetstone_data::{load_splits, DataSource};

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
    // A seeded Fisher–Yates shuffle (splitmix64), so the subset does not favour early reviews.
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
    all.truncate(max);
    Ok(all)
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
