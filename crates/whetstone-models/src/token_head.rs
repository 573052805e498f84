//! The token-classification head: dropout, then a linear layer on every token state
//! (Hugging Face's `*ForTokenClassification`; BERT's NER recipe, Devlin et al. 2019 §5.3).
//!
//! It is the sequence [`ClassificationHead`] applied to `[B, T, in_dim]` instead of
//! `[B, in_dim]` (dropout and the linear layer act on the last dimension), under its own name
//! so that a multi-task model says which kind of head a task has.

use crate::error::Result;
use crate::head::ClassificationHead;
use tch::{nn, Tensor};

/// Dropout then a linear layer named `classifier`, applied to each token state.
#[derive(Debug)]
pub struct TokenHead(ClassificationHead);

impl TokenHead {
    /// A head mapping `in_dim`-wide token states to `num_labels` logits, with parameters
    /// under `p / "classifier"`, weights drawn from N(0, `init_std`²), biases zero.
    pub fn new(p: &nn::Path, in_dim: i64, num_labels: i64, dropout: f64, init_std: f64) -> Self {
        Self(ClassificationHead::new(p, in_dim, num_labels, dropout, Some(init_std)))
    }

    /// `classifier.weight` `[num_labels, in_dim]` and `classifier.bias`, sharing storage.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.0.named_parameters()
    }

    /// Number of labels (tags) the head predicts.
    pub fn num_labels(&self) -> i64 {
        self.0.num_labels()
    }

    /// Logits `[B, T, num_labels]` (f32) from token states `[B, T, in_dim]`.
    pub fn forward_t(&self, states: &Tensor, train: bool) -> Result<Tensor> {
        self.0.forward_t(states, train)
    }
}
