//! Random masking at the word level: each word becomes a mask token (`[MASK]`, `[UNK]`, …)
//! with a probability, the text-side counterpart of masked-LM corruption.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::augmenter::Augmenter;
use crate::eda::check_unit;
use crate::error::{AugmentError, Result};
use crate::words::{join_words, split_words};

/// The default mask token: BERT's `[MASK]`.
pub const DEFAULT_MASK_TOKEN: &str = "[MASK]";

/// Replaces each token by `token` with probability `p`.
///
/// ```
/// use whetstone_augment::{Augmenter, RandomMask};
/// let out = RandomMask::new(1.0, "[UNK]")?.augment("so very dull", &mut whetstone_augment::example_rng(0, 0, 0))?;
/// assert_eq!(out, "[UNK] [UNK] [UNK]");
/// # Ok::<(), whetstone_augment::AugmentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RandomMask {
    p: f64,
    token: String,
}

impl RandomMask {
    /// Masking with probability `p` in [0, 1] by `token` (not empty, no spaces).
    pub fn new(p: f64, token: impl Into<String>) -> Result<Self> {
        check_unit("p", p)?;
        let token = token.into();
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            return Err(AugmentError::config("mask_token", format!("must be one non-empty token without spaces, got {token:?}")));
        }
        Ok(RandomMask { p, token })
    }
}

impl Augmenter for RandomMask {
    fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String> {
        let words: Vec<String> = split_words(text).into_iter().map(|w| if rng.gen_bool(self.p) { self.token.clone() } else { w }).collect();
        Ok(join_words(&words))
    }

    fn name(&self) -> &str {
        "mask"
    }

    fn config(&self) -> String {
        json!({"method": "mask", "p": self.p, "token": self.token}).to_string()
    }
}
