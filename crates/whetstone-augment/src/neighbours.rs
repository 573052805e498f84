//! Embedding-neighbour replacement, TinyBERT's data augmentation (Jiao et al. 2020, §3.2 and
//! Algorithm 1): a word that is one whole-word entry of a pretrained model's vocabulary is
//! replaced, with probability `p`, by one of its `K` nearest vocabulary words in the model's
//! input-embedding space (cosine similarity; TinyBERT uses p = 0.4, K = 15).
//!
//! [`Neighbours`] reads the word-embedding matrix from a `model.safetensors` file and the
//! `vocab.txt` beside it. Only whole-word entries are candidates: no `##` continuation pieces,
//! no `[special]` tokens, letters only. Neighbours are computed when a word is first asked for
//! (one pass over the candidates, in parallel) and cached.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde_json::json;

use crate::augmenter::Augmenter;
use crate::eda::check_unit;
use crate::error::{AugmentError, Result};
use crate::words::{join_words, split_words};

/// The word-embedding tensor of a BERT checkpoint (also tried with a `bert.` prefix).
pub const DEFAULT_EMBEDDING_TENSOR: &str = "embeddings.word_embeddings.weight";

/// Nearest whole-word neighbours in an embedding space.
#[derive(Debug)]
pub struct Neighbours {
    /// The whole-word entries, in vocabulary order.
    words: Vec<String>,
    /// Entry → its row in `unit`.
    row: HashMap<String, usize>,
    /// L2-normalised embeddings of the entries, `words.len() × dim`, row-major.
    unit: Vec<f32>,
    dim: usize,
    k: usize,
    /// Row → its `k` nearest rows, most similar first.
    cache: RwLock<HashMap<usize, Arc<[usize]>>>,
}

impl Neighbours {
    /// Reads the embedding matrix `tensor` (default [`DEFAULT_EMBEDDING_TENSOR`], or the same
    /// name under `bert.`) from `model` (a safetensors file of F32 tensors) and the vocabulary
    /// `vocab` (one token per line, line i = id i), keeping `k` neighbours per word.
    pub fn from_safetensors(model: &Path, vocab: &Path, tensor: Option<&str>, k: usize) -> Result<Neighbours> {
        let vocab_text = std::fs::read_to_string(vocab).map_err(|e| AugmentError::io(vocab, e))?;
        let tokens: Vec<&str> = vocab_text.lines().collect();
        Self::from_safetensors_tokens(model, &tokens, tensor, k).map_err(|e| match e {
            AugmentError::Embeddings { path, message } => AugmentError::Embeddings { path, message: format!("{message} (vocabulary {})", vocab.display()) },
            other => other,
        })
    }

    /// As [`from_safetensors`](Self::from_safetensors), with the vocabulary given as tokens in
    /// id order (e.g. read from a `tokenizer.json`).
    pub fn from_safetensors_tokens<S: AsRef<str>>(model: &Path, tokens: &[S], tensor: Option<&str>, k: usize) -> Result<Neighbours> {
        let bad = |message: String| AugmentError::Embeddings { path: model.to_path_buf(), message };
        let bytes = std::fs::read(model).map_err(|e| AugmentError::io(model, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a safetensors file: {e:?}")))?;
        let name = tensor.unwrap_or(DEFAULT_EMBEDDING_TENSOR);
        let prefixed = format!("bert.{name}");
        let view = st.tensor(name).or_else(|_| st.tensor(&prefixed)).map_err(|_| bad(format!("has no tensor `{name}` (nor `{prefixed}`)")))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("tensor `{name}` is {:?}; only F32 embeddings are supported", view.dtype())));
        }
        let shape = view.shape();
        if shape.len() != 2 || shape[0] < tokens.len() {
            return Err(bad(format!("tensor `{name}` has shape {shape:?}; expected [vocab ≥ {}, dim]", tokens.len())));
        }
        let dim = shape[1];
        let data = view.data();
        let value = |i: usize| f32::from_le_bytes([data[4 * i], data[4 * i + 1], data[4 * i + 2], data[4 * i + 3]]);
        let mut words = Vec::new();
        let mut matrix = Vec::new();
        for (id, token) in tokens.iter().enumerate() {
            let token = token.as_ref();
            if is_whole_word(token) {
                words.push(token.to_string());
                matrix.extend((id * dim..(id + 1) * dim).map(value));
            }
        }
        Neighbours::from_matrix(words, matrix, dim, k)
    }

    /// Neighbours among `words`, whose embeddings are the rows of `matrix` (`words.len() ×
    /// dim`, row-major), keeping `k` per word.
    pub fn from_matrix(words: Vec<String>, matrix: Vec<f32>, dim: usize, k: usize) -> Result<Neighbours> {
        if k == 0 {
            return Err(AugmentError::config("k", "must be at least 1"));
        }
        if dim == 0 || matrix.len() != words.len() * dim {
            return Err(AugmentError::InvalidArgument(format!("{} words need {} × {dim} values, got {}", words.len(), words.len(), matrix.len())));
        }
        let mut unit = matrix;
        unit.par_chunks_mut(dim).for_each(|r| {
            let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                r.iter_mut().for_each(|x| *x /= norm);
            }
        });
        let row = words.iter().enumerate().map(|(i, w)| (w.clone(), i)).collect();
        Ok(Neighbours { words, row, unit, dim, k, cache: RwLock::new(HashMap::new()) })
    }

    /// Number of whole-word entries.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Neighbours kept per word.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The entry for `word`: itself, else its lower-case form (an uncased vocabulary).
    fn lookup(&self, word: &str) -> Option<usize> {
        self.row.get(word).or_else(|| self.row.get(&word.to_lowercase())).copied()
    }

    /// The `k` nearest entries to `word` by cosine similarity, most similar first (ties by
    /// vocabulary order), without the word itself; `None` if `word` is not a whole-word entry.
    pub fn nearest(&self, word: &str) -> Option<Vec<&str>> {
        let r = self.lookup(word)?;
        Some(self.nearest_rows(r).iter().map(|&i| self.words[i].as_str()).collect())
    }

    fn nearest_rows(&self, r: usize) -> Arc<[usize]> {
        if let Some(hit) = self.cache.read().ok().and_then(|c| c.get(&r).cloned()) {
            return hit;
        }
        let q = &self.unit[r * self.dim..(r + 1) * self.dim];
        let mut scored: Vec<(f32, usize)> = self.unit.par_chunks(self.dim).enumerate().filter(|(i, _)| *i != r).map(|(i, row)| (dot(row, q), i)).collect();
        let order = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = self.k.min(scored.len());
        if k > 0 && k < scored.len() {
            scored.select_nth_unstable_by(k - 1, order);
            scored.truncate(k);
        }
        scored.sort_by(order);
        let top: Arc<[usize]> = scored.into_iter().map(|(_, i)| i).collect();
        if let Ok(mut c) = self.cache.write() {
            c.insert(r, top.clone());
        }
        top
    }
}

/// Whether a vocabulary token is a whole word: two letters or more and letters only (so no
/// `##` piece, no `[special]` token, and no single letters such as `s`, which as neighbours
/// of short words mostly turn sentences into noise).
fn is_whole_word(token: &str) -> bool {
    token.chars().count() >= 2 && token.chars().all(char::is_alphabetic)
}

/// The dot product, over 8 independent partial sums so that the compiler can vectorise it
/// (a single running f32 sum must be added in order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Replaces each word that is a whole-word vocabulary entry, with probability `p`, by one of
/// its `K` nearest neighbours chosen uniformly; other words are kept. A replacement of a
/// capitalised word is capitalised.
#[derive(Debug, Clone)]
pub struct NeighbourReplace {
    neighbours: Arc<Neighbours>,
    p: f64,
}

impl NeighbourReplace {
    /// TinyBERT's probability.
    pub const DEFAULT_P: f64 = 0.4;
    /// TinyBERT's candidate count.
    pub const DEFAULT_K: usize = 15;

    /// Replacement with probability `p` in [0, 1] among `neighbours`.
    pub fn new(neighbours: Arc<Neighbours>, p: f64) -> Result<Self> {
        check_unit("p", p)?;
        Ok(NeighbourReplace { neighbours, p })
    }
}

impl Augmenter for NeighbourReplace {
    fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String> {
        let mut words = split_words(text);
        for w in words.iter_mut() {
            let Some(r) = self.neighbours.lookup(w) else { continue };
            if !rng.gen_bool(self.p) {
                continue;
            }
            let near = self.neighbours.nearest_rows(r);
            if near.is_empty() {
                continue;
            }
            let pick = &self.neighbours.words[near[rng.gen_range(0..near.len())]];
            *w = if w.chars().next().is_some_and(char::is_uppercase) { capitalise(pick) } else { pick.clone() };
        }
        Ok(join_words(&words))
    }

    fn name(&self) -> &str {
        "neighbour"
    }

    fn config(&self) -> String {
        json!({"method": "neighbour", "p": self.p, "k": self.neighbours.k, "entries": self.neighbours.len(), "dim": self.neighbours.dim}).to_string()
    }
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}
