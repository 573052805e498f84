//! Text to token ids: loading a `tokenizer.json` (or training a BERT-style WordPiece one,
//! with the `train-tokenizer` feature), and encoding batches of texts in parallel.

use std::path::Path;

use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{DataError, Result};
use crate::truncate::{char_bound, pieces, truncate_chars};

/// The prefix that marks a piece continuing a word, as in BERT vocabularies.
pub(crate) const CONTINUATION: &str = "##";

/// Special tokens of trained tokenizers, in id order: `[PAD]` is 0 so that zero-filled
/// id tensors are already padding.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// A `tokenizers::Tokenizer` with padding and truncation left to the caller, since
/// batches are padded dynamically to their own longest sequence.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    /// Loads any `tokenizer.json` (e.g. a Hugging Face BERT one), turning off the padding
    /// and truncation it may carry so that [`encode_batch`](Self::encode_batch) decides.
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| DataError::tokenizer(format!("loading {}", path.display()), e))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| DataError::tokenizer(format!("loading {}", path.display()), e))?;
        Ok(TextTokenizer { inner })
    }

    /// Wraps an already built tokenizer, turning off its padding and truncation.
    pub fn from_tokenizer(mut inner: Tokenizer) -> Result<Self> {
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| DataError::tokenizer("disabling truncation", e))?;
        Ok(TextTokenizer { inner })
    }

    /// The tokenizer as `tokenizer.json` text (what [`save`](Self::save) writes).
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(|e| DataError::tokenizer("serialising the tokenizer", e))
    }

    /// A tokenizer from `tokenizer.json` bytes (what [`to_json`](Self::to_json) gives), e.g.
    /// sent by another process; `what` names where they came from, for errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<Self> {
        let inner: Tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| DataError::tokenizer(format!("reading the tokenizer from {what}"), e))?;
        Self::from_tokenizer(inner)
    }

    /// Writes the tokenizer as `tokenizer.json` that [`from_file`](Self::from_file) and
    /// Hugging Face tools can read.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(|e| DataError::tokenizer(format!("saving {}", path.display()), e))?;
        whetstone_eval::write_atomic(path, json.as_bytes()).map_err(|e| DataError::io(path, e))
    }

    /// The padding id: the `[PAD]` token, else the tokenizer's configured padding id, else 0.
    pub fn pad_id(&self) -> i64 {
        if let Some(id) = self.inner.token_to_id("[PAD]") {
            return i64::from(id);
        }
        self.inner
            .get_padding()
            .map(|p| i64::from(p.pad_id))
            .unwrap_or(0)
    }

    /// Number of ids the tokenizer can produce, added tokens included (the embedding size).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// The token of an id, if the id is in the vocabulary.
    pub fn id_to_token(&self, id: i64) -> Option<String> {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.inner.id_to_token(id))
    }

    /// Turns ids back into text, skipping special tokens (for inspecting encodings).
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().filter_map(|&i| u32::try_from(i).ok()).collect();
        self.inner
            .decode(&ids, true)
            .map_err(|e| DataError::tokenizer("decoding", e))
    }

    /// The wrapped `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Encodes texts in parallel (rayon, through `tokenizers`), with special tokens,
    /// each truncated to at most `max_len` ids while keeping the closing special token.
    ///
    /// Each text is first cut to its first [`char_bound`]`(max_len)` characters (see
    /// [`crate::truncate`]), so a text of any length costs memory and time bounded by
    /// `max_len`.
    pub fn encode_batch(&self, texts: &[String], max_len: usize) -> Result<Vec<Vec<i64>>> {
        let added = self
            .inner
            .get_post_processor()
            .map(|p| p.added_tokens(false))
            .unwrap_or(0);
        if max_len <= added {
            return Err(DataError::InvalidArgument(format!(
                "max_len {max_len} leaves no room for text next to the {added} special tokens"
            )));
        }
        // Truncation lives on the tokenizer, so apply it to a copy: the post-processor
        // then re-adds [CLS]/[SEP] around the truncated text.
        let mut tok = self.inner.clone();
        tok.with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| DataError::tokenizer("setting truncation", e))?;
        let bound = char_bound(max_len);
        let inputs: Vec<&str> = texts.iter().map(|t| truncate_chars(t, bound)).collect();
        let encodings = tok
            .encode_batch_fast(inputs, true)
            .map_err(|e| DataError::tokenizer("encoding", e))?;
        Ok(encodings
            .iter()
            .map(|e| e.get_ids().iter().map(|&id| i64::from(id)).collect())
            .collect())
    }

    /// Token ids of whole documents, without special tokens, in bounded memory: each document
    /// is encoded in [`pieces`] of at most `piece_chars` characters cut before whitespace (for
    /// BERT-style and byte-level tokenizers the ids are those of the whole document), a few
    /// pieces at a time, and `sink` receives each document's ids in order.
    ///
    /// Memory is the ids of one document plus `O(piece_chars)` per piece in flight, instead of
    /// `tokenizers`' ~100 bytes per token of a whole-document [`Encoding`](tokenizers::Encoding).
    /// [`crate::chunk_documents`] cuts its masked-LM windows from these ids (`piece_chars` =
    /// [`char_bound`]`(max_len)`); documents with no text are not passed to `sink`.
    pub fn encode_documents<F>(&self, docs: &[String], piece_chars: usize, mut sink: F) -> Result<()>
    where
        F: FnMut(usize, &[u32]) -> Result<()>,
    {
        /// Pieces encoded per `tokenizers` call: enough for its rayon threads.
        const PIECES_PER_CALL: usize = 64;
        let mut ids: Vec<u32> = Vec::new();
        let mut queue: Vec<(usize, &str)> = Vec::with_capacity(PIECES_PER_CALL);
        let mut current: Option<usize> = None;
        let mut run = |queue: &mut Vec<(usize, &str)>, ids: &mut Vec<u32>, current: &mut Option<usize>| -> Result<()> {
            let texts: Vec<&str> = queue.iter().map(|&(_, p)| p).collect();
            let encodings = self.inner.encode_batch_fast(texts, false).map_err(|e| DataError::tokenizer("encoding a document", e))?;
            for (&(doc, _), enc) in queue.iter().zip(&encodings) {
                if *current != Some(doc) {
                    if let Some(prev) = current.take() {
                        sink(prev, ids)?;
                    }
                    ids.clear();
                    *current = Some(doc);
                }
                ids.extend_from_slice(enc.get_ids());
            }
            queue.clear();
            Ok(())
        };
        for (d, doc) in docs.iter().enumerate() {
            for piece in pieces(doc, piece_chars) {
                queue.push((d, piece));
                if queue.len() == PIECES_PER_CALL {
                    run(&mut queue, &mut ids, &mut current)?;
                }
            }
        }
        if !queue.is_empty() {
            run(&mut queue, &mut ids, &mut current)?;
        }
        if let Some(last) = current {
            sink(last, &ids)?;
        }
        Ok(())
    }
}
