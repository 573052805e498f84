//! BERT's masked-language-model head (`cls.predictions.*`), with its decoder tied to the
//! encoder's word embeddings.

use super::{layer_norm, layer_norm_parameters, linear_init, linear_parameters, TransformerConfig, TransformerEncoder};
use crate::error::Result;
use crate::ops;
use tch::{nn, Tensor};

/// `transform` (dense → GELU → LayerNorm), then logits over the vocabulary through the
/// **word-embedding matrix** of the encoder (weight tying, as in BERT) plus an own bias.
///
/// The decoder has no weight of its own: [`Self::forward`] multiplies by the encoder's
/// `embeddings.word_embeddings.weight`, so the MLM loss trains the embeddings from both ends
/// and the head adds only `hidden² + 4·hidden + vocab` parameters. Names follow Hugging Face's
/// `BertForMaskedLM` (`cls.predictions.transform.dense.weight`, …, `cls.predictions.bias`).
#[derive(Debug)]
pub struct MlmHead {
    dense: nn::Linear,
    norm: nn::LayerNorm,
    eps: f64,
    bias: Tensor,
}

impl MlmHead {
    /// A head for `encoder`, with its variables under `p` (use `root / "cls" / "predictions"`
    /// for BERT names).
    pub fn new(p: &nn::Path, encoder: &TransformerEncoder) -> Self {
        let c: &TransformerConfig = encoder.config();
        let h = c.hidden as i64;
        let t = p / "transform";
        Self {
            dense: nn::linear(&t / "dense", h, h, linear_init(c)),
            norm: layer_norm(&(&t / "LayerNorm"), h, c.layer_norm_eps),
            eps: c.layer_norm_eps,
            bias: p.zeros("bias", &[encoder.vocab_size()]),
        }
    }

    /// Vocabulary logits `[N, vocab]` for token states `states` `[N, hidden]`, decoding with
    /// `encoder`'s word embeddings (the tied decoder).
    pub fn forward(&self, states: &Tensor, encoder: &TransformerEncoder) -> Result<Tensor> {
        let x = ops::layer_norm(&ops::linear(states, &self.dense)?.f_gelu("none")?, &self.norm, self.eps)?;
        Ok(x.f_matmul(&encoder.embeddings().word_weight().f_tr()?)?.f_add(&self.bias)?)
    }

    /// The head's own parameters with `BertForMaskedLM` names (the tied decoder weight is the
    /// encoder's and is not repeated).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = linear_parameters("cls.predictions.transform.dense", &self.dense);
        out.extend(layer_norm_parameters("cls.predictions.transform.LayerNorm", &self.norm));
        out.push(("cls.predictions.bias".into(), self.bias.shallow_clone()));
        out
    }
}
