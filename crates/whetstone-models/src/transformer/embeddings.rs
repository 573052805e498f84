use super::TransformerConfig;
use crate::error::Result;
use crate::ops;
use tch::{nn, Kind, Tensor};

/// Word + position + token-type embeddings, then LayerNorm and dropout (BERT's `embeddings.*`).
#[derive(Debug)]
pub struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: nn::LayerNorm,
    eps: f64,
    dropout: f64,
}

impl Embeddings {
    pub fn new(p: &nn::Path, vocab_size: i64, c: &TransformerConfig) -> Self {
        let init = nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: c.init_std }, ..Default::default() };
        let h = c.hidden as i64;
        Self {
            word: nn::embedding(p / "word_embeddings", vocab_size, h, init),
            position: nn::embedding(p / "position_embeddings", c.max_len as i64, h, init),
            token_type: nn::embedding(p / "token_type_embeddings", c.type_vocab_size as i64, h, init),
            norm: super::layer_norm(&(p / "LayerNorm"), h, c.layer_norm_eps),
            eps: c.layer_norm_eps,
            dropout: c.dropout,
        }
    }

    /// The word-embedding matrix `[vocab, hidden]` (tied to an MLM decoder later).
    pub fn word_weight(&self) -> &Tensor {
        &self.word.ws
    }

    /// Parameters with BERT names relative to `embeddings`.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![
            ("word_embeddings.weight".to_string(), self.word.ws.shallow_clone()),
            ("position_embeddings.weight".to_string(), self.position.ws.shallow_clone()),
            ("token_type_embeddings.weight".to_string(), self.token_type.ws.shallow_clone()),
        ];
        out.extend(super::layer_norm_parameters("LayerNorm", &self.norm));
        out
    }

    /// The embedding output `[B, T, hidden]` for `input_ids` `[B, T]`: word, position and
    /// token-type embeddings summed, then LayerNorm and dropout. An id outside the vocabulary,
    /// or more than `max_len` positions, is an error.
    pub fn forward_t(&self, input_ids: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_words(&self.words(input_ids)?, train)
    }

    /// The word embeddings `[B, T, hidden]` of `input_ids` `[B, T]` alone (no positions,
    /// token types or LayerNorm): what adversarial training perturbs.
    pub fn words(&self, input_ids: &Tensor) -> Result<Tensor> {
        ops::embedding(input_ids, &self.word)
    }

    /// The embedding output from word embeddings `[B, T, hidden]` (as [`Self::words`] gives):
    /// position and token-type embeddings added, then LayerNorm and dropout.
    /// `forward_words(words(ids))` is `forward_t(ids)`, bit for bit.
    pub fn forward_words(&self, words: &Tensor, train: bool) -> Result<Tensor> {
        let (b, t, _) = words.size3()?;
        let device = words.device();
        let pos = Tensor::f_arange(t, (Kind::Int64, device))?.f_unsqueeze(0)?;
        let types = Tensor::f_zeros([b, t], (Kind::Int64, device))?;
        let x = words.f_add(&ops::embedding(&pos, &self.position)?)?.f_add(&ops::embedding(&types, &self.token_type)?)?;
        Ok(ops::layer_norm(&x, &self.norm, self.eps)?.f_dropout(self.dropout, train)?)
    }
}
