//! Token and span cutoff at the word level (after Shen et al. 2020, "A Simple but
//! Tough-to-Beat Data Augmentation Approach", which erases tokens or a contiguous span).

use rand::seq::index::sample;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::augmenter::Augmenter;
use crate::eda::check_unit;
use crate::error::Result;
use crate::words::{join_words, split_words};

/// How many of `len` tokens a cutoff of `ratio` removes: `max(1, round(ratio·len))`, always
/// leaving at least one token (0 for a text of one token or none).
fn cut_count(ratio: f64, len: usize) -> usize {
    if len <= 1 {
        return 0;
    }
    ((ratio * len as f64).round() as usize).clamp(1, len - 1)
}

/// Removes `max(1, round(ratio·len))` tokens at random positions (never all of them).
///
/// ```
/// use whetstone_augment::{Augmenter, TokenCutoff};
/// let out = TokenCutoff::new(0.25)?.augment("a b c d", &mut whetstone_augment::example_rng(3, 0, 0))?;
/// assert_eq!(out.split(' ').count(), 3);
/// # Ok::<(), whetstone_augment::AugmentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokenCutoff {
    ratio: f64,
}

impl TokenCutoff {
    /// Cutoff of a share `ratio` in [0, 1] of the tokens.
    pub fn new(ratio: f64) -> Result<Self> {
        check_unit("ratio", ratio)?;
        Ok(TokenCutoff { ratio })
    }
}

impl Augmenter for TokenCutoff {
    fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String> {
        let words = split_words(text);
        let cut = cut_count(self.ratio, words.len());
        let mut drop = vec![false; words.len()];
        for i in sample(rng, words.len(), cut) {
            drop[i] = true;
        }
        let kept: Vec<&String> = words.iter().zip(&drop).filter(|(_, d)| !**d).map(|(w, _)| w).collect();
        Ok(join_words(&kept))
    }

    fn name(&self) -> &str {
        "cutoff"
    }

    fn config(&self) -> String {
        json!({"method": "cutoff", "ratio": self.ratio}).to_string()
    }
}

/// Removes one contiguous span of `max(1, round(ratio·len))` tokens at a random start (never
/// all of them).
#[derive(Debug, Clone)]
pub struct SpanCutoff {
    ratio: f64,
}

impl SpanCutoff {
    /// Cutoff of a span of a share `ratio` in [0, 1] of the tokens.
    pub fn new(ratio: f64) -> Result<Self> {
        check_unit("ratio", ratio)?;
        Ok(SpanCutoff { ratio })
    }
}

impl Augmenter for SpanCutoff {
    fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String> {
        let mut words = split_words(text);
        let cut = cut_count(self.ratio, words.len());
        if cut > 0 {
            let start = rng.gen_range(0..=words.len() - cut);
            words.drain(start..start + cut);
        }
        Ok(join_words(&words))
    }

    fn name(&self) -> &str {
        "span-cutoff"
    }

    fn config(&self) -> String {
        json!({"method": "span-cutoff", "ratio": self.ratio}).to_string()
    }
}
