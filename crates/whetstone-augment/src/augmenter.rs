//! The common interface of text augmenters, and augmenting many texts in parallel.
//!
//! Every random choice an augmenter makes comes from the `ChaCha8Rng` it is handed. The batch
//! functions derive that generator from `(seed, example index, augmentation index)` alone
//! ([`example_rng`]), so the output for a seed does not depend on the number of threads or on
//! the order in which rayon runs the examples.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A seeded, text-to-text augmentation.
pub trait Augmenter: Send + Sync {
    /// One augmentation of `text`, drawing every random choice from `rng`.
    fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String>;

    /// The method's short name (`eda`, `mask`, …).
    fn name(&self) -> &str;

    /// The augmenter's settings as a stable string (JSON for the built-in ones): two
    /// augmenters with the same `config` produce the same output for the same generator, so
    /// data sources fingerprint it.
    fn config(&self) -> String {
        self.name().to_string()
    }
}

/// One augmented text and the example it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augmented {
    /// Index of the source text in the input.
    pub source: usize,
    /// Which of the source's augmentations this is (0-based).
    pub variant: usize,
    /// The augmented text.
    pub text: String,
}

/// The generator for augmentation `variant` of example `example` under `seed`: a ChaCha8
/// stream keyed by a hash of all three, so every (example, variant) pair draws independently.
pub fn example_rng(seed: u64, example: u64, variant: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(seed) ^ example));
    rng.set_stream(variant);
    rng
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` augmentations of every text, in parallel over (text, variant) pairs with rayon, in the
/// order text 0 variant 0, text 0 variant 1, …; the same for a seed on any number of threads.
///
/// ```
/// use whetstone_augment::{augment_all, RandomSwap};
/// let texts = vec!["one two three".to_string(), "four five".to_string()];
/// let out = augment_all(&texts, 3, 7, &RandomSwap::new(0.5)?)?;
/// assert_eq!(out.len(), 6);
/// assert_eq!((out[4].source, out[4].variant), (1, 1));
/// assert_eq!(out, augment_all(&texts, 3, 7, &RandomSwap::new(0.5)?)?);
/// # Ok::<(), whetstone_augment::AugmentError>(())
/// ```
pub fn augment_all<S: AsRef<str> + Sync>(texts: &[S], n: usize, seed: u64, augmenter: &dyn Augmenter) -> Result<Vec<Augmented>> {
    (0..texts.len() * n)
        .into_par_iter()
        .map(|k| {
            let (source, variant) = (k / n, k % n);
            let mut rng = example_rng(seed, source as u64, variant as u64);
            let text = augmenter.augment(texts[source].as_ref(), &mut rng)?;
            Ok(Augmented { source, variant, text })
        })
        .collect()
}
