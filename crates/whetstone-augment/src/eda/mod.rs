//! EDA: easy data augmentation (Wei & Zou 2019, "EDA: Easy Data Augmentation Techniques for
//! Boosting Performance on Text Classification Tasks").
//!
//! [`Eda`] applies, per augmented sentence, one of the four operations chosen uniformly among
//! those switched on, as the reference implementation does; [`SynonymReplacement`],
//! [`RandomInsertion`], [`RandomSwap`] and [`RandomDeletion`] apply one operation each.

mod config;
pub mod ops;

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub use config::{check_unit, EdaConfig};

use crate::augmenter::Augmenter;
use crate::error::Result;
use crate::stopwords::StopWords;
use crate::wordnet::WordNet;
use crate::words::{join_words, split_words};

/// Which of EDA's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Replace,
    Insert,
    Swap,
    Delete,
}

/// Applies the operation `op` with strength `alpha` to `text`.
fn apply(op: Op, alpha: f64, text: &str, wordnet: &WordNet, stop: &StopWords, rng: &mut ChaCha8Rng) -> String {
    let words = split_words(text);
    let n = ops::changes(alpha, words.len());
    let out = match op {
        Op::Replace => ops::synonym_replacement(&words, n, wordnet, stop, rng),
        Op::Insert => ops::random_insertion(&words, n, wordnet, stop, rng),
        Op::Swap => ops::random_swap(&words, n, rng),
        Op::Delete => ops::random_deletion(&words, alpha, rng),
    };
    join_words(&out)
}

/// All four EDA operations; each call applies one, chosen uniformly among those with α > 0.
///
/// ```
/// use std::sync::Arc;
/// use whetstone_augment::{Augmenter, Eda, EdaConfig, StopWords, WordNet};
/// let eda = Eda::new(EdaConfig::default(), Arc::new(WordNet::default()), StopWords::english())?;
/// let mut rng = whetstone_augment::example_rng(1, 0, 0);
/// let out = eda.augment("a gripping and funny film", &mut rng)?;
/// assert!(!out.is_empty());
/// # Ok::<(), whetstone_augment::AugmentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Eda {
    config: EdaConfig,
    wordnet: Arc<WordNet>,
    stop: StopWords,
}

impl Eda {
    /// EDA with `config` (validated), synonyms from `wordnet`, leaving `stop` words alone.
    pub fn new(config: EdaConfig, wordnet: Arc<WordNet>, stop: StopWords) -> Result<Self> {
        config.validate()?;
        Ok(Eda { config, wordnet, stop })
    }

    /// The settings.
    pub fn config(&self) -> &EdaConfig {
        &self.config
    }
}

impl Augmenter for Eda {
    fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String> {
        let c = &self.config;
        let on: Vec<(Op, f64)> = [(Op::Replace, c.alpha_sr), (Op::Insert, c.alpha_ri), (Op::Swap, c.alpha_rs), (Op::Delete, c.p_rd)].into_iter().filter(|(_, a)| *a > 0.0).collect();
        let (op, alpha) = on[rng.gen_range(0..on.len())];
        Ok(apply(op, alpha, text, &self.wordnet, &self.stop, rng))
    }

    fn name(&self) -> &str {
        "eda"
    }

    fn config(&self) -> String {
        json!({"method": "eda", "config": self.config, "stop_words": self.stop.len()}).to_string()
    }
}

macro_rules! single_op {
    ($(#[$doc:meta])* $name:ident, $op:expr, $method:literal, $field:literal, lexicon) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            alpha: f64,
            wordnet: Arc<WordNet>,
            stop: StopWords,
        }

        impl $name {
            #[doc = concat!("`", $method, "` with strength `alpha` in [0, 1], synonyms from `wordnet`, leaving `stop` words alone.")]
            pub fn new(alpha: f64, wordnet: Arc<WordNet>, stop: StopWords) -> Result<Self> {
                check_unit($field, alpha)?;
                Ok($name { alpha, wordnet, stop })
            }
        }

        impl Augmenter for $name {
            fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String> {
                Ok(apply($op, self.alpha, text, &self.wordnet, &self.stop, rng))
            }
            fn name(&self) -> &str {
                $method
            }
            fn config(&self) -> String {
                json!({"method": $method, $field: self.alpha, "stop_words": self.stop.len()}).to_string()
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $op:expr, $method:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            alpha: f64,
        }

        impl $name {
            #[doc = concat!("`", $method, "` with strength `", $field, "` in [0, 1].")]
            pub fn new(alpha: f64) -> Result<Self> {
                check_unit($field, alpha)?;
                Ok($name { alpha })
            }
        }

        impl Augmenter for $name {
            fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String> {
                Ok(apply($op, self.alpha, text, &WordNet::default(), &StopWords::none(), rng))
            }
            fn name(&self) -> &str {
                $method
            }
            fn config(&self) -> String {
                json!({"method": $method, $field: self.alpha}).to_string()
            }
        }
    };
}

single_op!(
    /// EDA's synonym replacement alone: `max(1, ⌊α·len⌋)` distinct non-stop words replaced by
    /// WordNet synonyms.
    SynonymReplacement, Op::Replace, "synonym", "alpha_sr", lexicon
);
single_op!(
    /// EDA's random insertion alone: `max(1, ⌊α·len⌋)` synonyms of random non-stop words
    /// inserted at random positions.
    RandomInsertion, Op::Insert, "insert", "alpha_ri", lexicon
);
single_op!(
    /// EDA's random swap alone: `max(1, ⌊α·len⌋)` swaps of two distinct positions.
    ///
    /// ```
    /// use whetstone_augment::{Augmenter, RandomSwap};
    /// let out = RandomSwap::new(0.1)?.augment("one two three", &mut whetstone_augment::example_rng(0, 0, 0))?;
    /// let mut words: Vec<&str> = out.split(' ').collect();
    /// words.sort();
    /// assert_eq!(words, ["one", "three", "two"]);
    /// # Ok::<(), whetstone_augment::AugmentError>(())
    /// ```
    RandomSwap, Op::Swap, "swap", "alpha_rs"
);
single_op!(
    /// EDA's random deletion alone: each word dropped with probability `p_rd`, never all.
    RandomDeletion, Op::Delete, "delete", "p_rd"
);
