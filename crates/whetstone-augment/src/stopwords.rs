//! Stop words: function words that word-level augmenters leave alone.
//!
//! The English list is NLTK's (198 words in the `stop-words` crate's copy); EDA's reference
//! implementation uses a list of the same origin.

use std::collections::HashSet;

/// A set of stop words, matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopWords {
    words: HashSet<String>,
}

impl StopWords {
    /// NLTK's English stop words.
    ///
    /// ```
    /// let s = whetstone_augment::StopWords::english();
    /// assert!(s.contains("The") && s.contains("of") && !s.contains("film"));
    /// ```
    pub fn english() -> Self {
        Self::from_words(stop_words::get("en").iter().copied())
    }

    /// A set of the given words (lower-cased).
    pub fn from_words<I: IntoIterator<Item = S>, S: AsRef<str>>(words: I) -> Self {
        StopWords { words: words.into_iter().map(|w| w.as_ref().to_lowercase()).collect() }
    }

    /// An empty set: every word may be changed.
    pub fn none() -> Self {
        StopWords { words: HashSet::new() }
    }

    /// Whether `word` is a stop word (case-insensitive).
    pub fn contains(&self, word: &str) -> bool {
        self.words.contains(&word.to_lowercase())
    }

    /// Number of stop words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

impl Default for StopWords {
    fn default() -> Self {
        Self::english()
    }
}
