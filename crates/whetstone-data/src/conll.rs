//! Token-classification data: the CoNLL-style `token<TAB>tag` format (WNUT-16 NER), and the
//! alignment of word-level BIO tags with word pieces.
//!
//! A file holds one token per line, its tag after a tab, and a blank line (or a line of
//! whitespace only, as WNUT-16's `\t`) between sentences. Tags follow IOB2: `O`, `B-TYPE` or
//! `I-TYPE`. An `I-` tag that does not continue a chunk of its type is accepted, as seqeval's
//! default mode accepts it (it starts a new chunk, see `whetstone_eval::entities`); anything
//! else (`X-foo`, `B-`, `B`, `b-person`) is an error naming the file and line.
//!
//! Word pieces: each word is tokenised on its own (the tokenizer's pre-tokenized input),
//! and only its first piece carries the word's tag; the other pieces and the special tokens
//! get `-100`, which the loss ignores (the BERT recipe of Devlin et al. 2019, §5.3).
//!
//! ```
//! use whetstone_data::conll::parse_conll;
//! let text = "Empire\tB-facility\nState\tI-facility\nrocks\tO\n\t\nhi\tO\n";
//! let sentences = parse_conll(text, std::path::Path::new("ner.txt"))?;
//! assert_eq!(sentences.len(), 2);
//! assert_eq!(sentences[0].tags, ["B-facility", "I-facility", "O"]);
//! let bad = parse_conll("Empire\tX-facility\n", std::path::Path::new("ner.txt")).unwrap_err();
//! assert!(bad.to_string().starts_with("ner.txt:1:"));
//! # Ok::<(), whetstone_data::DataError>(())
//! ```

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};
use tokenizers::{EncodeInput, InputSequence, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::batch::{Batch, Encoded};
use crate::manifest::DatasetEntry;
use crate::dataset::LabelSet;
use crate::error::{DataError, Result};
use crate::source::Fingerprint;
use crate::tokenize::TextTokenizer;
use crate::truncate::{char_bound, truncate_chars};

/// The label of positions the loss and the metric ignore (continuation pieces, special tokens, padding).
pub const IGNORE_INDEX: i64 = -100;

/// One sentence: its words and their tags, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedSentence {
    /// The words (tokens of the file).
    pub words: Vec<String>,
    /// One tag per word.
    pub tags: Vec<String>,
    /// 1-based line of the sentence's first word.
    pub line: usize,
}

/// Whether `tag` is a valid IOB2 tag: `O`, `B-TYPE` or `I-TYPE` with a non-empty type.
pub fn is_bio_tag(tag: &str) -> bool {
    tag == "O" || ((tag.starts_with("B-") || tag.starts_with("I-")) && tag.len() > 2)
}

/// Reads a `token<TAB>tag` file (see the module page).
pub fn read_conll(path: &Path) -> Result<Vec<TaggedSentence>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_conll(&text, path)
}

/// Parses `token<TAB>tag` text; `file` names it in errors (`file:line: …`).
pub fn parse_conll(text: &str, file: &Path) -> Result<Vec<TaggedSentence>> {
    let malformed = |line: usize, message: String| DataError::Malformed { file: file.to_path_buf(), line, message };
    let mut out = Vec::new();
    let mut cur = TaggedSentence { words: Vec::new(), tags: Vec::new(), line: 1 };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            if !cur.words.is_empty() {
                out.push(std::mem::replace(&mut cur, TaggedSentence { words: Vec::new(), tags: Vec::new(), line: line + 1 }));
            }
            cur.line = line + 1;
            continue;
        }
        let Some((word, tag)) = raw.split_once('\t') else {
            return Err(malformed(line, format!("expected `token<TAB>tag`, found no tab in `{raw}`")));
        };
        let tag = tag.trim();
        if word.is_empty() {
            return Err(malformed(line, format!("empty token before the tag `{tag}`")));
        }
        if !is_bio_tag(tag) {
            return Err(malformed(line, format!("tag `{tag}` is not a BIO tag (O, B-TYPE or I-TYPE)")));
        }
        if cur.words.is_empty() {
            cur.line = line;
        }
        cur.words.push(word.to_string());
        cur.tags.push(tag.to_string());
    }
    if !cur.words.is_empty() {
        out.push(cur);
    }
    if out.is_empty() {
        return Err(DataError::EmptyFile { file: file.to_path_buf(), reason: "no `token<TAB>tag` line".into() });
    }
    Ok(out)
}

/// The three splits of a token-classification task and its tag set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSplits {
    /// Training sentences.
    pub train: Vec<TaggedSentence>,
    /// Validation sentences.
    pub valid: Vec<TaggedSentence>,
    /// Test sentences.
    pub test: Vec<TaggedSentence>,
    /// The tags (sorted; a tag's index is its class id).
    pub tags: LabelSet,
}

/// Shuffles the sentences with `seed` and carves `valid_frac` and `test_frac` of them off.
/// The tag set is built from every sentence, so a tag seen only in test still has an id.
pub fn split_sentences(mut sentences: Vec<TaggedSentence>, valid_frac: f64, test_frac: f64, seed: u64) -> Result<TokenSplits> {
    if !(0.0..1.0).contains(&valid_frac) || !(0.0..1.0).contains(&test_frac) || valid_frac + test_frac >= 1.0 {
        return Err(DataError::InvalidArgument(format!("valid ({valid_frac}) and test ({test_frac}) fractions must be in [0, 1) and sum to less than 1")));
    }
    let tags = LabelSet::from_labels(sentences.iter().flat_map(|s| s.tags.iter()));
    sentences.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = sentences.len();
    let n_test = (n as f64 * test_frac).round() as usize;
    let n_valid = (n as f64 * valid_frac).round() as usize;
    let test = sentences.split_off(n - n_test);
    let valid = sentences.split_off(n - n_test - n_valid);
    Ok(TokenSplits { train: sentences, valid, test, tags })
}

/// The file of a manifest token-classification entry (`kind = "tokens"`, its one file in
/// `files`), fetched into `cache` on first use ([`crate::obtain`]).
pub fn obtain_token_file(entry: &DatasetEntry, cache: &Path) -> Result<PathBuf> {
    if !entry.is_token_data() {
        return Err(DataError::InvalidArgument(format!("`{}` is not token-classification data (kind = \"tokens\" in the manifest)", entry.name)));
    }
    let file = entry.files.as_ref().and_then(|f| f.first()).ok_or_else(|| DataError::InvalidArgument(format!("manifest entry `{}` names no file", entry.name)))?;
    Ok(crate::obtain(entry, cache)?.join(file))
}

/// Tokenised token-classification data: id sequences and one label per position
/// ([`IGNORE_INDEX`] where nothing is predicted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenEncoded {
    /// One id sequence per sentence, with special tokens.
    pub ids: Vec<Vec<i64>>,
    /// One label per id: the word's tag id on its first piece, [`IGNORE_INDEX`] elsewhere.
    pub labels: Vec<Vec<i64>>,
    /// The padding id.
    pub pad_id: i64,
}

impl TokenEncoded {
    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no sentences.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The length of each sequence.
    pub fn lengths(&self) -> Vec<usize> {
        self.ids.iter().map(Vec::len).collect()
    }

    /// The ids with placeholder sequence labels (0): the split a training loop that only needs
    /// the inputs is given, while an objective scores the per-position labels itself.
    pub fn ids_only(&self) -> Encoded {
        Encoded { ids: self.ids.clone(), labels: vec![0; self.len()], pad_id: self.pad_id }
    }

    /// A stable hash of the ids, the labels and the pad id.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fingerprint::new();
        h.write_u64(self.ids.len() as u64);
        h.write_i64(self.pad_id);
        for (ids, labels) in self.ids.iter().zip(&self.labels) {
            h.write_u64(ids.len() as u64);
            ids.iter().chain(labels).for_each(|&v| h.write_i64(v));
        }
        h.finish()
    }
}

/// Tokenises each sentence's words (pre-tokenized input, special tokens added, truncated to
/// `max_len` ids) and aligns the tags: the first piece of each word gets the word's tag id in
/// `tags`, every other position [`IGNORE_INDEX`]. Words cut off by truncation are dropped.
///
/// Only the words within the first [`char_bound`]`(max_len)` characters of the sentence
/// (words joined by one space; the word at the bound cut there) are tokenised, as for
/// sequence texts (see [`crate::truncate`]), so a sentence of any length costs bounded memory.
/// A tag that `tags` does not know is an error naming the sentence's line.
pub fn encode_tagged(tok: &TextTokenizer, sentences: &[TaggedSentence], tags: &LabelSet, max_len: usize) -> Result<TokenEncoded> {
    let mut t = tok.inner().clone();
    t.with_truncation(Some(TruncationParams { direction: TruncationDirection::Right, max_length: max_len, strategy: TruncationStrategy::LongestFirst, stride: 0 }))
        .map_err(|e| DataError::tokenizer("setting truncation", e))?;
    let bound = char_bound(max_len);
    let inputs: Vec<EncodeInput> = sentences.iter().map(|s| EncodeInput::Single(InputSequence::from(bounded_words(&s.words, bound)))).collect();
    let encodings = t.encode_batch(inputs, true).map_err(|e| DataError::tokenizer("encoding tagged sentences", e))?;
    let mut out = TokenEncoded { ids: Vec::with_capacity(sentences.len()), labels: Vec::with_capacity(sentences.len()), pad_id: tok.pad_id() };
    for (s, enc) in sentences.iter().zip(&encodings) {
        let tag_ids: Vec<i64> = s
            .tags
            .iter()
            .map(|tag| tags.id(tag).ok_or_else(|| DataError::InvalidArgument(format!("sentence at line {}: tag `{tag}` is not in the tag set ({})", s.line, tags.names.join(", ")))))
            .collect::<Result<_>>()?;
        out.ids.push(enc.get_ids().iter().map(|&i| i64::from(i)).collect());
        out.labels.push(align_word_labels(enc.get_word_ids(), &tag_ids));
    }
    Ok(out)
}

/// The leading words of `words` that fit in `max_chars` characters, counting one separator
/// after each word; the word that crosses the bound is cut at it (at a char boundary).
///
/// ```
/// use whetstone_data::conll::bounded_words;
/// let w: Vec<String> = ["Empire", "State", "Building"].map(String::from).to_vec();
/// assert_eq!(bounded_words(&w, 100), ["Empire", "State", "Building"]);
/// assert_eq!(bounded_words(&w, 9), ["Empire", "St"]);
/// assert!(bounded_words(&w, 0).is_empty());
/// ```
pub fn bounded_words(words: &[String], max_chars: usize) -> Vec<&str> {
    let mut left = max_chars;
    let mut out = Vec::new();
    for w in words {
        if left == 0 {
            break;
        }
        let kept = truncate_chars(w, left);
        left -= kept.chars().count();
        if !kept.is_empty() {
            out.push(kept);
        }
        left = left.saturating_sub(1);
    }
    out
}

/// The per-position labels of one encoding: `word_ids[p]` is the word position `p` belongs
/// to (`None` for special tokens); the first position of word `w` gets `word_tags[w]`, all
/// others [`IGNORE_INDEX`].
///
/// ```
/// use whetstone_data::conll::{align_word_labels, IGNORE_INDEX as X};
/// // [CLS] empire state build ##ing [SEP] for the words Empire State Building (B, I, I = 1, 2, 2)
/// let word_ids = [None, Some(0), Some(1), Some(2), Some(2), None];
/// assert_eq!(align_word_labels(&word_ids, &[1, 2, 2]), vec![X, 1, 2, 2, X, X]);
/// ```
pub fn align_word_labels(word_ids: &[Option<u32>], word_tags: &[i64]) -> Vec<i64> {
    let mut prev = None;
    word_ids
        .iter()
        .map(|w| {
            let label = match *w {
                Some(w) if prev != Some(w) => word_tags.get(w as usize).copied().unwrap_or(IGNORE_INDEX),
                _ => IGNORE_INDEX,
            };
            prev = *w;
            label
        })
        .collect()
}

/// The batch of sentences `idx`: ids and mask `[B, T]` as [`crate::make_batch`] pads them, and
/// `labels` `[B, T]` (token labels, padded with [`IGNORE_INDEX`]).
pub fn make_token_batch(enc: &TokenEncoded, idx: &[usize], device: Device) -> Result<Batch> {
    if idx.is_empty() {
        return Err(DataError::InvalidArgument("a batch needs at least one example".into()));
    }
    if let Some(&bad) = idx.iter().find(|&&i| i >= enc.ids.len() || i >= enc.labels.len()) {
        return Err(DataError::InvalidArgument(format!("example index {bad} is out of range for a split of {} sentences", enc.ids.len())));
    }
    let (b, t) = (idx.len(), idx.iter().map(|&i| enc.ids[i].len()).max().unwrap_or(0));
    let mut ids = vec![enc.pad_id; b * t];
    let mut mask = vec![0i64; b * t];
    let mut labels = vec![IGNORE_INDEX; b * t];
    for (row, &i) in idx.iter().enumerate() {
        let (seq, lab) = (&enc.ids[i], &enc.labels[i]);
        if lab.len() != seq.len() {
            return Err(DataError::InvalidArgument(format!("sentence {i} has {} ids but {} labels", seq.len(), lab.len())));
        }
        ids[row * t..row * t + seq.len()].copy_from_slice(seq);
        mask[row * t..row * t + seq.len()].fill(1);
        labels[row * t..row * t + seq.len()].copy_from_slice(lab);
    }
    let shape = [b as i64, t as i64];
    let on = |v: &[i64]| -> Result<Tensor> { Ok(Tensor::from_slice(v).f_view(shape)?.f_to_device(device)?) };
    Ok(Batch { input_ids: on(&ids)?, attention_mask: on(&mask)?, labels: on(&labels)?, indices: idx.to_vec(), stream: 0, targets: Vec::new() })
}
