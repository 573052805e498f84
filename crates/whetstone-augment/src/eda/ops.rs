//! EDA's four operations on a list of tokens (Wei & Zou 2019, §2), following the reference
//! implementation (`eda.py` of eda_nlp): synonym replacement replaces every occurrence of a
//! chosen word, insertion puts a synonym of a random word at a random position, swap exchanges
//! two distinct positions, deletion drops each token with probability `p` but never all.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::stopwords::StopWords;
use crate::wordnet::WordNet;
use crate::words::is_alphabetic_word;

/// Attempts random insertion makes to find a word with synonyms, as in the reference code.
const INSERT_TRIES: usize = 10;

/// The number of changes EDA makes to a sentence of `len` tokens: `n = max(1, ⌊α·len⌋)`.
pub fn changes(alpha: f64, len: usize) -> usize {
    ((alpha * len as f64).floor() as usize).max(1)
}

/// The distinct words that may be replaced or looked up: alphabetic and not stop words,
/// lower-cased, in order of first occurrence.
fn candidates(words: &[String], stop: &StopWords) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let lw = w.to_lowercase();
        if is_alphabetic_word(w) && !stop.contains(&lw) && !out.contains(&lw) {
            out.push(lw);
        }
    }
    out
}

/// Replaces up to `n` distinct non-stop words that have synonyms, each (every occurrence,
/// case-insensitively) by one of its WordNet synonyms chosen at random.
pub fn synonym_replacement(words: &[String], n: usize, wordnet: &WordNet, stop: &StopWords, rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut out = words.to_vec();
    let mut pool = candidates(words, stop);
    pool.shuffle(rng);
    let mut replaced = 0;
    for word in pool {
        if replaced >= n {
            break;
        }
        let synonyms = wordnet.synonyms(&word);
        if let Some(choice) = synonyms.choose(rng) {
            for w in out.iter_mut().filter(|w| w.to_lowercase() == word) {
                *w = choice.clone();
            }
            replaced += 1;
        }
    }
    out
}

/// Inserts, `n` times, a synonym of a random non-stop word at a random position.
pub fn random_insertion(words: &[String], n: usize, wordnet: &WordNet, stop: &StopWords, rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut out = words.to_vec();
    for _ in 0..n {
        let pool = candidates(&out, stop);
        if pool.is_empty() {
            break;
        }
        for _ in 0..INSERT_TRIES {
            let word = &pool[rng.gen_range(0..pool.len())];
            if let Some(choice) = wordnet.synonyms(word).choose(rng) {
                let at = rng.gen_range(0..=out.len());
                out.insert(at, choice.clone());
                break;
            }
        }
    }
    out
}

/// Swaps two distinct random positions, `n` times (a no-op for fewer than two tokens).
pub fn random_swap(words: &[String], n: usize, rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut out = words.to_vec();
    if out.len() < 2 {
        return out;
    }
    for _ in 0..n {
        let i = rng.gen_range(0..out.len());
        let j = rng.gen_range(0..out.len() - 1);
        let j = if j >= i { j + 1 } else { j };
        out.swap(i, j);
    }
    out
}

/// Drops each token with probability `p`; when that would drop them all, keeps one at random.
pub fn random_deletion(words: &[String], p: f64, rng: &mut ChaCha8Rng) -> Vec<String> {
    if words.len() <= 1 {
        return words.to_vec();
    }
    let kept: Vec<String> = words.iter().filter(|_| !rng.gen_bool(p)).cloned().collect();
    if kept.is_empty() {
        vec![words[rng.gen_range(0..words.len())].clone()]
    } else {
        kept
    }
}
