//! A greedy synonym-substitution attack in the manner of TextFooler (Jin et al. 2020), with
//! WordNet synonyms in place of its counter-fitted embeddings and without its sentence-encoder
//! filter, so it needs nothing but the victim model.
//!
//! 1. Rank the words by importance: the drop in the true class's probability when the word is
//!    deleted (one batch of `len` candidate sentences).
//! 2. In that order, for each non-stop word with synonyms, score every substitution (one
//!    batch). If one flips the prediction, take the flipping one with the lowest true-class
//!    probability and stop. Otherwise take the one that lowers the probability most, if any
//!    lowers it, and go on, until `budget` words have been substituted.
//!
//! The model is a closure: it gets candidate sentences and returns, for each, a [`Verdict`].

use crate::error::{AugmentError, Result};
use crate::stopwords::StopWords;
use crate::wordnet::WordNet;
use crate::words::{is_alphabetic_word, join_words};

/// What the victim model says about one sentence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The probability it gives the true class.
    pub true_prob: f32,
    /// Whether its predicted label is the true one.
    pub correct: bool,
}

/// One substituted word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    /// Its position in the word list.
    pub position: usize,
    /// The original word.
    pub original: String,
    /// The synonym put in its place.
    pub replacement: String,
}

/// The outcome of an attack on one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackOutcome {
    /// The final words (the original ones when nothing was substituted).
    pub words: Vec<String>,
    /// The substitutions made, in order.
    pub substitutions: Vec<Substitution>,
    /// The model's verdict on the original sentence.
    pub original: Verdict,
    /// The model's verdict on the final sentence.
    pub last: Verdict,
    /// Sentences scored, the original included.
    pub queries: usize,
}

impl AttackOutcome {
    /// Whether the attack turned a correct prediction into a wrong one.
    pub fn flipped(&self) -> bool {
        self.original.correct && !self.last.correct
    }
}

/// The model under attack: verdicts for a batch of sentences, in order.
pub type Scorer<'a> = dyn FnMut(&[String]) -> Result<Vec<Verdict>> + 'a;

/// Attacks `words` (see the module docs), substituting at most `budget` words. A sentence the
/// model already gets wrong is returned unchanged.
///
/// ```
/// use whetstone_augment::{synonym_attack, StopWords, Verdict, WordNet};
/// let words: Vec<String> = ["good", "film"].iter().map(|s| s.to_string()).collect();
/// // A toy model that is sure of itself while the sentence says "good".
/// let mut model = |s: &[String]| Ok(s.iter().map(|t| { let p = if t.contains("good") { 0.9 } else { 0.2 }; Verdict { true_prob: p, correct: p > 0.5 } }).collect());
/// let out = synonym_attack(&words, 1, &WordNet::default(), &StopWords::english(), &mut model)?;
/// assert!(!out.flipped()); // an empty WordNet has no synonyms to offer
/// # Ok::<(), whetstone_augment::AugmentError>(())
/// ```
pub fn synonym_attack(words: &[String], budget: usize, wordnet: &WordNet, stop: &StopWords, score: &mut Scorer<'_>) -> Result<AttackOutcome> {
    let mut ask = |sentences: Vec<String>, queries: &mut usize| -> Result<Vec<Verdict>> {
        *queries += sentences.len();
        let v = score(&sentences)?;
        if v.len() != sentences.len() {
            return Err(AugmentError::InvalidArgument(format!("the scorer returned {} verdicts for {} sentences", v.len(), sentences.len())));
        }
        Ok(v)
    };
    let mut queries = 0;
    let original = ask(vec![join_words(words)], &mut queries)?[0];
    let mut out = AttackOutcome { words: words.to_vec(), substitutions: Vec::new(), original, last: original, queries: 0 };
    if !original.correct || budget == 0 || words.is_empty() {
        out.queries = queries;
        return Ok(out);
    }
    let deletions: Vec<String> = (0..words.len()).map(|i| join_words(&[&words[..i], &words[i + 1..]].concat())).collect();
    let deleted = ask(deletions, &mut queries)?;
    let mut order: Vec<usize> = (0..words.len()).collect();
    order.sort_by(|&a, &b| (original.true_prob - deleted[b].true_prob).total_cmp(&(original.true_prob - deleted[a].true_prob)).then(a.cmp(&b)));
    for position in order {
        if out.substitutions.len() >= budget {
            break;
        }
        let word = &words[position];
        if !is_alphabetic_word(word) || stop.contains(word) {
            continue;
        }
        let synonyms = wordnet.synonyms(word);
        if synonyms.is_empty() {
            continue;
        }
        let candidates: Vec<String> = synonyms
            .iter()
            .map(|s| {
                let mut w = out.words.clone();
                w[position] = s.clone();
                join_words(&w)
            })
            .collect();
        let verdicts = ask(candidates, &mut queries)?;
        let best = lowest(&verdicts, |v| !v.correct).or_else(|| lowest(&verdicts, |v| v.true_prob < out.last.true_prob));
        if let Some((i, v)) = best {
            out.substitutions.push(Substitution { position, original: word.clone(), replacement: synonyms[i].clone() });
            out.words[position] = synonyms[i].clone();
            out.last = *v;
            if !v.correct {
                break;
            }
        }
    }
    out.queries = queries;
    Ok(out)
}

/// The index and verdict with the lowest true-class probability among those `keep` accepts
/// (ties: the first).
fn lowest(verdicts: &[Verdict], keep: impl Fn(&Verdict) -> bool) -> Option<(usize, &Verdict)> {
    verdicts.iter().enumerate().filter(|(_, v)| keep(v)).min_by(|a, b| a.1.true_prob.total_cmp(&b.1.true_prob).then(a.0.cmp(&b.0)))
}
