//! Text to token ids: loading a `tokenizer.json` (or training a BERT-style WordPiece one,
//! with the `train-tokenizer` feature), and encoding batches of texts in parallel.

use std::path::Path;

use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{DataError, Result};

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
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = tok
            .encode_batch_fast(inputs, true)
            .map_err(|e| DataError::tokenizer("encoding", e))?;
        Ok(encodings
            .iter()
            .map(|e| e.get_ids().iter().map(|&id| i64::from(id)).collect())
            .collect())
    }
}
