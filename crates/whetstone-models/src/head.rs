//! Pooling of token states and the classification head.

use crate::error::Result;
use crate::ops::linear;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// How a sequence of token states becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The first token (`[CLS]`), as BERT does.
    Cls,
    /// The mean over real (unpadded) tokens, as sentence-transformers do.
    #[default]
    Mean,
    /// The element-wise max over real tokens.
    Max,
}

/// Pool `hidden` `[B, T, H]` with `mask` `[B, T]` (1 = token, 0 = padding) into `[B, H]`.
///
/// Shapes that do not fit are an error from libtorch, not a panic.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Result<Tensor> {
    Ok(match pooling {
        Pooling::Cls => hidden.f_select(1, 0)?,
        Pooling::Mean => {
            let m = mask.f_to_kind(hidden.kind())?.f_unsqueeze(-1)?;
            let sum = hidden.f_mul(&m)?.f_sum_dim_intlist(1, false, hidden.kind())?;
            sum.f_div(&m.f_sum_dim_intlist(1, false, hidden.kind())?.f_clamp_min(1.0)?)?
        }
        Pooling::Max => {
            let pad = mask.f_eq(0)?.f_unsqueeze(-1)?;
            hidden.f_masked_fill(&pad, f64::NEG_INFINITY)?.f_amax(1, false)?
        }
    })
}

/// Dropout then a linear layer named `classifier` (the Hugging Face `*ForSequenceClassification` name).
#[derive(Debug)]
pub struct ClassificationHead {
    classifier: nn::Linear,
    dropout: f64,
}

impl ClassificationHead {
    /// A head mapping `in_dim` features to `num_labels` logits, with parameters under `p / "classifier"`.
    pub fn new(p: &nn::Path, in_dim: i64, num_labels: i64, dropout: f64, init_std: Option<f64>) -> Self {
        let cfg = match init_std {
            Some(std) => nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: std }, bs_init: Some(nn::Init::Const(0.0)), bias: true },
            None => nn::LinearConfig::default(),
        };
        Self { classifier: nn::linear(p / "classifier", in_dim, num_labels, cfg), dropout }
    }

    /// `classifier.weight` `[num_labels, in_dim]` and `classifier.bias`, sharing storage.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("classifier.weight".to_string(), self.classifier.ws.shallow_clone())];
        out.extend(self.classifier.bs.as_ref().map(|b| ("classifier.bias".to_string(), b.shallow_clone())));
        out
    }

    /// Number of labels the head predicts.
    pub fn num_labels(&self) -> i64 {
        self.classifier.ws.size()[0]
    }

    /// Logits `[B, num_labels]` from pooled features `[B, in_dim]`.
    pub fn forward_t(&self, pooled: &Tensor, train: bool) -> Result<Tensor> {
        let x = pooled.f_dropout(self.dropout, train)?;
        Ok(linear(&x, &self.classifier)?.f_to_kind(Kind::Float)?)
    }
}
