//! Dynamic masking for masked-language-model pretraining (BERT, Devlin et al. 2019).
//!
//! Masks are drawn afresh for every batch on the batch's device from libtorch's random
//! stream, so every epoch sees different masks (RoBERTa's dynamic masking) and a run that
//! reseeds per step (whetstone's trainer does) masks identically after a resume.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{DataError, Result};
use crate::tokenize::{TextTokenizer, CONTINUATION, SPECIAL_TOKENS};

/// Which tokens to mask and what to put in their place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingConfig {
    /// Share of (non-special, non-padding) tokens the loss is computed on (BERT: 0.15).
    pub mask_prob: f64,
    /// Of those, the share replaced by `[MASK]` (BERT: 0.8).
    pub mask_token_prob: f64,
    /// Of those, the share replaced by a random token (BERT: 0.1); the rest stay unchanged.
    pub random_token_prob: f64,
    /// Whole-word masking: a word's WordPiece pieces (`##…`) are masked together, the word
    /// chosen with probability `mask_prob`.
    pub whole_word: bool,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self { mask_prob: 0.15, mask_token_prob: 0.8, random_token_prob: 0.1, whole_word: false }
    }
}

impl MaskingConfig {
    /// Check the probabilities.
    pub fn validate(&self) -> Result<()> {
        let p = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(DataError::InvalidArgument(format!("mlm.{name} must be in [0, 1], got {v}")))
            }
        };
        p("mask_prob", self.mask_prob)?;
        p("mask_token_prob", self.mask_token_prob)?;
        p("random_token_prob", self.random_token_prob)?;
        if self.mask_prob == 0.0 {
            return Err(DataError::InvalidArgument("mlm.mask_prob must be > 0: nothing would be predicted".into()));
        }
        if self.mask_token_prob + self.random_token_prob > 1.0 + 1e-12 {
            return Err(DataError::InvalidArgument(format!(
                "mlm.mask_token_prob + mlm.random_token_prob must be <= 1, got {} + {}",
                self.mask_token_prob, self.random_token_prob
            )));
        }
        Ok(())
    }
}

/// A batch after masking.
#[derive(Debug)]
pub struct MaskedBatch {
    /// The input ids with masked positions replaced (`[MASK]`, a random token, or unchanged).
    pub input_ids: Tensor,
    /// The original id at masked positions, `-100` elsewhere (ignored by the loss).
    pub labels: Tensor,
    /// Boolean `[B, T]`: the positions the loss is computed on.
    pub masked: Tensor,
}

/// Draws masks for batches of one tokenizer's ids.
#[derive(Debug)]
pub struct Masker {
    config: MaskingConfig,
    mask_id: i64,
    /// `[vocab]` bool: ids never masked (`[PAD]`, `[CLS]`, `[SEP]`, `[MASK]`, …).
    special: Tensor,
    /// `[vocab]` bool: ids of WordPiece continuation pieces (`##…`).
    continuation: Tensor,
    /// Ids a random replacement is drawn from (every non-special id).
    replacements: Tensor,
}

impl Masker {
    /// A masker for `tok`'s vocabulary with its lookup tables on `device`. Fails when the
    /// tokenizer has no `[MASK]` token.
    pub fn new(tok: &TextTokenizer, config: MaskingConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let mask_id = tok
            .token_to_id("[MASK]")
            .ok_or_else(|| DataError::InvalidArgument("the tokenizer has no [MASK] token, which masked-LM training needs".into()))?;
        let vocab = tok.vocab_size();
        let mut special = vec![false; vocab];
        let continuation: Vec<bool> = (0..vocab)
            .map(|id| tok.id_to_token(id as i64).is_some_and(|t| t.starts_with(CONTINUATION) && t.len() > CONTINUATION.len()))
            .collect();
        for t in SPECIAL_TOKENS.iter().copied().filter(|t| *t != "[UNK]") {
            if let Some(id) = tok.token_to_id(t) {
                special[id as usize] = true;
            }
        }
        for added in tok.inner().get_added_tokens_decoder().values().filter(|a| a.special && a.content != "[UNK]") {
            if let Some(id) = tok.token_to_id(&added.content) {
                special[id as usize] = true;
            }
        }
        let allowed: Vec<i64> = (0..vocab as i64).filter(|&i| !special[i as usize]).collect();
        if allowed.is_empty() {
            return Err(DataError::InvalidArgument("the tokenizer has only special tokens".into()));
        }
        Ok(Self {
            config,
            mask_id,
            special: Tensor::from_slice(&special).to_device(device),
            continuation: Tensor::from_slice(&continuation).to_device(device),
            replacements: Tensor::from_slice(&allowed).to_device(device),
        })
    }

    /// The masking settings.
    pub fn config(&self) -> &MaskingConfig {
        &self.config
    }

    /// Positions that may be masked: real tokens that are not special.
    fn candidates(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Tensor {
        let special = self.special.index_select(0, &input_ids.flatten(0, -1)).view_as(input_ids);
        attention_mask.ne(0).logical_and(&special.logical_not())
    }

    /// Masks `input_ids` `[B, T]` (`attention_mask`: 1 = token, 0 = padding). At least one
    /// position is masked when the batch has any candidate, so the loss is always defined.
    pub fn mask(&self, input_ids: &Tensor, attention_mask: &Tensor) -> MaskedBatch {
        let c = &self.config;
        let device = input_ids.device();
        let cand = self.candidates(input_ids, attention_mask);
        let mut draw = Tensor::rand(input_ids.size(), (Kind::Float, device));
        if c.whole_word {
            // Each position takes the draw of the first piece of its word: the last position at
            // or before it that is not a continuation piece.
            let cont = self.continuation.index_select(0, &input_ids.flatten(0, -1)).view_as(input_ids).logical_and(&cand);
            let pos = Tensor::arange(input_ids.size()[1], (Kind::Int64, device)).unsqueeze(0).expand_as(input_ids);
            let start = pos.where_self(&cont.logical_not(), &pos.zeros_like()).cummax(1).0;
            draw = draw.gather(1, &start, false);
        }
        let mut masked = draw.lt(c.mask_prob).logical_and(&cand);
        if masked.any().int64_value(&[]) == 0 && cand.any().int64_value(&[]) != 0 {
            // A short batch drew no mask: mask its first candidate.
            let first = cand.to_kind(Kind::Int64).flatten(0, -1).cumsum(0, Kind::Int64).eq(1).view_as(&cand);
            masked = cand.logical_and(&first);
        }
        let r = Tensor::rand(input_ids.size(), (Kind::Float, device));
        let to_mask = masked.logical_and(&r.lt(c.mask_token_prob));
        let to_random = masked.logical_and(&r.ge(c.mask_token_prob)).logical_and(&r.lt(c.mask_token_prob + c.random_token_prob));
        let pick = Tensor::randint(self.replacements.size()[0], input_ids.size(), (Kind::Int64, device));
        let random_ids = self.replacements.index_select(0, &pick.flatten(0, -1)).view_as(input_ids);
        let ids = random_ids.where_self(&to_random, input_ids);
        let ids = Tensor::full_like(input_ids, self.mask_id).where_self(&to_mask, &ids);
        let labels = input_ids.where_self(&masked, &Tensor::full_like(input_ids, -100));
        MaskedBatch { input_ids: ids, labels, masked }
    }
}
