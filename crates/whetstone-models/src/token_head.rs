//! The token-classification head: dropout, then a linear layer on every token state
//! (Hugging Face's `*ForTokenClassification`; BERT's NER recipe, Devlin et al. 2019 §5.3).

use crate::error::Result;
use crate::ops::linear;
use tch::{nn, Kind, Tensor};

/// Dropout then a linear layer named `classifier`, applied to each token state.
#[derive(Debug)]
pub struct TokenHead {
    classifier: nn::Linear,
    dropout: f64,
}

impl TokenHead {
    /// A head mapping `in_dim`-wide token states to `num_labels` logits, with parameters
    /// under `p / "classifier"`, weights drawn from N(0, `init_std`²), biases zero.
    pub fn new(p: &nn::Path, in_dim: i64, num_labels: i64, dropout: f64, init_std: f64) -> Self {
        let cfg = nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: init_std }, bs_init: Some(nn::Init::Const(0.0)), bias: true };
        Self { classifier: nn::linear(p / "classifier", in_dim, num_labels, cfg), dropout }
    }

    /// `classifier.weight` `[num_labels, in_dim]` and `classifier.bias`, sharing storage.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("classifier.weight".to_string(), self.classifier.ws.shallow_clone())];
        out.extend(self.classifier.bs.as_ref().map(|b| ("classifier.bias".to_string(), b.shallow_clone())));
        out
    }

    /// Number of labels (tags) the head predicts.
    pub fn num_labels(&self) -> i64 {
        self.classifier.ws.size()[0]
    }

    /// Logits `[B, T, num_labels]` (f32) from token states `[B, T, in_dim]`.
    pub fn forward_t(&self, states: &Tensor, train: bool) -> Result<Tensor> {
        Ok(linear(&states.f_dropout(self.dropout, train)?, &self.classifier)?.f_to_kind(Kind::Float)?)
    }
}
