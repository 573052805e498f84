//! Deterministic WordPiece vocabulary learning.
//!
//! `tokenizers`' own `WordPieceTrainer` keeps its word counts in a randomly seeded hash
//! map and numbers continuation pieces (`##x`) in that map's iteration order; merges
//! with equal counts are then broken by those numbers, so two trainings on the same text
//! can yield different vocabularies. This learner follows the same algorithm (BPE-style
//! pair merges with the `##` prefix, as in BERT) but numbers every symbol in a sorted
//! order, which makes the vocabulary a pure function of the corpus.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use rayon::prelude::*;
use serde_json::json;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer, Tokenizer};

use crate::error::{DataError, Result};
use crate::tokenize::{TextTokenizer, CONTINUATION, SPECIAL_TOKENS};
use crate::truncate::{truncate_chars, VOCAB_TEXT_CHARS};

/// The longest word WordPiece tries to split before giving up with `[UNK]` (BERT's value).
const MAX_INPUT_CHARS_PER_WORD: usize = 100;

impl TextTokenizer {
    /// Trains a BERT-style uncased or cased WordPiece tokenizer on `texts`.
    ///
    /// Pipeline: BERT normaliser (clean text, Chinese characters split, accents stripped
    /// when lowercasing), BERT pre-tokeniser, WordPiece with `[UNK]`, `[CLS] … [SEP]`
    /// post-processing and a WordPiece decoder. The same texts always give the same
    /// vocabulary: `tokenizers`' own trainer breaks ties between equally frequent merges
    /// in hash-map order, which changes from run to run, so the vocabulary is learned
    /// here with a sorted, deterministic order instead.
    ///
    /// Only the first [`VOCAB_TEXT_CHARS`] (64 Ki) characters of each text are read, so one
    /// huge text costs bounded memory and time; a classifier's encoding reads no more than
    /// `max_len × 32` characters of a text anyway (see [`crate::truncate`]).
    pub fn train_wordpiece(
        texts: &[String],
        vocab_size: usize,
        min_frequency: u64,
        lowercase: bool,
    ) -> Result<Self> {
        let normalizer = BertNormalizer::new(true, true, None, lowercase);
        let pre_tokenizer = BertPreTokenizer;
        let words = count_words(texts, |text| {
            // Bounded work per text: a vocabulary is learned from at most the first
            // VOCAB_TEXT_CHARS characters of each (see crate::truncate).
            let mut normalized = NormalizedString::from(truncate_chars(text, VOCAB_TEXT_CHARS));
            normalizer
                .normalize(&mut normalized)
                .map_err(|e| DataError::tokenizer("normalising training text", e))?;
            let mut pre = PreTokenizedString::from(normalized);
            pre_tokenizer
                .pre_tokenize(&mut pre)
                .map_err(|e| DataError::tokenizer("pre-tokenising training text", e))?;
            Ok(pre
                .get_splits(OffsetReferential::Original, OffsetType::Byte)
                .into_iter()
                .map(|(s, _, _)| s.to_string())
                .collect())
        })?;
        let tokens = learn_vocab(&words, &SPECIAL_TOKENS, vocab_size, min_frequency);

        let vocab: serde_json::Map<String, serde_json::Value> = tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, json!(i)))
            .collect();
        // The model's builder wants an `ahash` map, which `tokenizers` does not re-export;
        // its serde form takes a plain JSON object. (It borrows strings, hence via text.)
        let model_json = json!({
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": CONTINUATION,
            "max_input_chars_per_word": MAX_INPUT_CHARS_PER_WORD,
            "vocab": vocab,
        })
        .to_string();
        let model: WordPiece = serde_json::from_str(&model_json)
            .map_err(|e| DataError::tokenizer("building the WordPiece model", e))?;

        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(normalizer))
            .with_pre_tokenizer(Some(pre_tokenizer))
            .with_post_processor(Some(BertProcessing::new(
                ("[SEP]".to_string(), 3),
                ("[CLS]".to_string(), 2),
            )))
            .with_decoder(Some(WordPieceDecoder::new(CONTINUATION.to_string(), true)));
        let specials: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .map(|t| AddedToken::from(*t, true))
            .collect();
        inner.add_special_tokens(&specials);
        TextTokenizer::from_tokenizer(inner)
    }

}

type Pair = (u32, u32);

/// Counts the words `split` yields over all texts, in parallel; sorted by word.
pub(crate) fn count_words<F>(texts: &[String], split: F) -> Result<Vec<(String, u64)>>
where
    F: Fn(&str) -> Result<Vec<String>> + Sync,
{
    let counts = texts
        .par_iter()
        .try_fold(HashMap::<String, u64>::new, |mut acc, text| {
            for word in split(text)? {
                *acc.entry(word).or_default() += 1;
            }
            Ok::<_, crate::error::DataError>(acc)
        })
        .try_reduce(HashMap::new, |mut a, b| {
            for (w, c) in b {
                *a.entry(w).or_default() += c;
            }
            Ok(a)
        })?;
    let mut words: Vec<(String, u64)> = counts.into_iter().collect();
    words.sort_unstable();
    Ok(words)
}

/// Learns a vocabulary (tokens in id order): `special` first, then every character
/// (sorted), then continuation characters (sorted), then merged pieces in merge order.
///
/// Merging stops at `vocab_size` tokens or when the most frequent pair occurs fewer than
/// `min_frequency` times. Equal counts are broken by the smaller pair of ids.
pub(crate) fn learn_vocab(
    words: &[(String, u64)],
    special: &[&str],
    vocab_size: usize,
    min_frequency: u64,
) -> Vec<String> {
    let mut vocab = Vocab::default();
    for s in special {
        vocab.intern(s);
    }
    let mut chars: Vec<char> = words.iter().flat_map(|(w, _)| w.chars()).collect();
    chars.sort_unstable();
    chars.dedup();
    for c in &chars {
        vocab.intern(&c.to_string());
    }
    let mut continuing: Vec<char> = words.iter().flat_map(|(w, _)| w.chars().skip(1)).collect();
    continuing.sort_unstable();
    continuing.dedup();
    for c in &continuing {
        vocab.intern(&format!("{CONTINUATION}{c}"));
    }

    let mut symbols: Vec<Vec<u32>> = words
        .iter()
        .map(|(w, _)| {
            w.chars()
                .enumerate()
                .map(|(i, c)| {
                    let piece = if i == 0 {
                        c.to_string()
                    } else {
                        format!("{CONTINUATION}{c}")
                    };
                    vocab.intern(&piece)
                })
                .collect()
        })
        .collect();
    let counts: Vec<i64> = words.iter().map(|(_, c)| *c as i64).collect();
    merge(
        &mut vocab,
        &mut symbols,
        &counts,
        vocab_size,
        min_frequency.max(1),
    );
    vocab.tokens
}

/// Token strings and their ids.
#[derive(Default)]
struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// The id of `token`, adding it if new.
    fn intern(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.ids.get(token) {
            return id;
        }
        let id = self.tokens.len() as u32;
        self.tokens.push(token.to_string());
        self.ids.insert(token.to_string(), id);
        id
    }
}

/// Repeatedly merges the most frequent adjacent pair until the vocabulary is full.
fn merge(
    vocab: &mut Vocab,
    words: &mut [Vec<u32>],
    counts: &[i64],
    vocab_size: usize,
    min_frequency: u64,
) {
    let mut pair_counts: HashMap<Pair, i64> = HashMap::new();
    let mut holders: HashMap<Pair, HashSet<usize>> = HashMap::new();
    for (i, w) in words.iter().enumerate() {
        for p in w.windows(2) {
            let pair = (p[0], p[1]);
            *pair_counts.entry(pair).or_default() += counts[i];
            holders.entry(pair).or_default().insert(i);
        }
    }
    // Max-heap on count, then on the smaller pair; stale entries are re-checked on pop.
    let mut heap: BinaryHeap<(i64, Reverse<Pair>)> =
        pair_counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();

    while vocab.tokens.len() < vocab_size {
        let Some((count, Reverse(pair))) = heap.pop() else {
            break;
        };
        let current = pair_counts.get(&pair).copied().unwrap_or(0);
        if count != current {
            if current > 0 {
                heap.push((current, Reverse(pair)));
            }
            continue;
        }
        if current < min_frequency as i64 {
            break;
        }
        let left = &vocab.tokens[pair.0 as usize];
        let right = &vocab.tokens[pair.1 as usize];
        let merged = format!(
            "{left}{}",
            right.strip_prefix(CONTINUATION).unwrap_or(right)
        );
        let new_id = vocab.intern(&merged);

        let mut positions: Vec<usize> = holders.remove(&pair).into_iter().flatten().collect();
        positions.sort_unstable();
        let mut touched: HashSet<Pair> = HashSet::new();
        for i in positions {
            let word = &mut words[i];
            if !word.windows(2).any(|p| (p[0], p[1]) == pair) {
                continue;
            }
            for p in word.windows(2) {
                let q = (p[0], p[1]);
                *pair_counts.entry(q).or_default() -= counts[i];
                touched.insert(q);
            }
            replace_pair(word, pair, new_id);
            for p in word.windows(2) {
                let q = (p[0], p[1]);
                *pair_counts.entry(q).or_default() += counts[i];
                holders.entry(q).or_default().insert(i);
                touched.insert(q);
            }
        }
        for q in touched {
            let c = pair_counts.get(&q).copied().unwrap_or(0);
            if c > 0 {
                heap.push((c, Reverse(q)));
            }
        }
    }
}

/// Replaces non-overlapping occurrences of `pair`, left to right, by `new_id`.
fn replace_pair(word: &mut Vec<u32>, pair: Pair, new_id: u32) {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
            out.push(new_id);
            i += 2;
        } else {
            out.push(word[i]);
            i += 1;
        }
    }
    *word = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_frequent_pairs_and_keeps_specials_first() {
        let words = vec![
            ("hug".to_string(), 10),
            ("hugs".to_string(), 5),
            ("pug".to_string(), 5),
        ];
        let vocab = learn_vocab(&words, &["[PAD]", "[UNK]"], 100, 1);
        assert_eq!(&vocab[..2], ["[PAD]", "[UNK]"]);
        assert!(vocab.contains(&"hug".to_string()), "{vocab:?}");
        assert!(vocab.contains(&"##ug".to_string()), "{vocab:?}");
        let small = learn_vocab(&words, &["[PAD]"], 9, 1);
        assert_eq!(small.len(), 9);
    }

    #[test]
    fn min_frequency_stops_rare_merges() {
        let words = vec![("ab".to_string(), 1)];
        let vocab = learn_vocab(&words, &[], 100, 2);
        assert!(!vocab.contains(&"ab".to_string()));
    }
}
