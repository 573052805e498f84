//! Bidirectional LSTM classifier.

use crate::error::{ModelError, Result};
use crate::head::{pool, Pooling};
use crate::TextClassifier;
use serde::{Deserialize, Serialize};
use tch::nn::{self, RNN};
use tch::{Kind, Tensor};

/// Configuration of [`BiLstm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BiLstmConfig {
    /// Word-embedding width.
    pub embed_dim: usize,
    /// Hidden width of each direction.
    pub hidden: usize,
    /// Stacked bidirectional layers.
    pub layers: usize,
    /// Dropout between layers and before the classifier.
    pub dropout: f64,
    /// Pooling of the concatenated states over time.
    pub pooling: Pooling,
}

impl Default for BiLstmConfig {
    fn default() -> Self {
        Self { embed_dim: 128, hidden: 128, layers: 1, dropout: 0.3, pooling: Pooling::Max }
    }
}

/// Embedding, `layers` bidirectional LSTM layers, pooling, dropout, linear.
///
/// The backward direction runs over each sentence reversed *within its own length*, so right
/// padding never leaks into the states of real tokens (what packed sequences do in PyTorch).
#[derive(Debug)]
pub struct BiLstm {
    embedding: nn::Embedding,
    layers: Vec<(nn::LSTM, nn::LSTM)>,
    classifier: nn::Linear,
    dropout: f64,
    pooling: Pooling,
}

impl BiLstm {
    /// Build under `p` (`embedding`, `lstm.{l}.fwd`, `lstm.{l}.bwd`, `classifier`).
    pub fn new(p: &nn::Path, vocab_size: i64, num_labels: i64, c: &BiLstmConfig) -> Result<Self> {
        if c.layers == 0 || c.hidden == 0 || c.embed_dim == 0 {
            return Err(ModelError::Config("bilstm needs layers, hidden and embed_dim > 0".into()));
        }
        if !(0.0..1.0).contains(&c.dropout) {
            return Err(ModelError::Config(format!("bilstm dropout must be in [0, 1), got {}", c.dropout)));
        }
        let cfg = nn::RNNConfig { batch_first: true, ..Default::default() };
        let h = c.hidden as i64;
        let layers = (0..c.layers)
            .map(|l| {
                let input = if l == 0 { c.embed_dim as i64 } else { 2 * h };
                let q = p / "lstm" / l;
                (nn::lstm(&q / "fwd", input, h, cfg), nn::lstm(&q / "bwd", input, h, cfg))
            })
            .collect();
        Ok(Self {
            embedding: nn::embedding(p / "embedding", vocab_size, c.embed_dim as i64, Default::default()),
            layers,
            classifier: nn::linear(p / "classifier", 2 * h, num_labels, Default::default()),
            dropout: c.dropout,
            pooling: c.pooling,
        })
    }
}

/// Index that reverses each row's first `len` positions and leaves padding in place.
fn reverse_index(mask: &Tensor) -> Tensor {
    let t = mask.size()[1];
    let lens = mask.sum_dim_intlist(1, true, Kind::Int64); // [B, 1]
    let pos = Tensor::arange(t, (Kind::Int64, mask.device())).unsqueeze(0); // [1, T]
    let rev = &lens - 1 - &pos;
    rev.where_self(&pos.lt_tensor(&lens), &pos)
}

impl TextClassifier for BiLstm {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let idx = reverse_index(attention_mask).unsqueeze(-1);
        let mut x = input_ids.apply(&self.embedding);
        for (i, (fwd, bwd)) in self.layers.iter().enumerate() {
            if i > 0 {
                x = x.dropout(self.dropout, train);
            }
            let gather = |y: &Tensor| y.gather(1, &idx.expand([-1, -1, y.size()[2]], false), false);
            let (f, _) = fwd.seq(&x);
            let (b, _) = bwd.seq(&gather(&x));
            x = Tensor::cat(&[f, gather(&b)], 2);
        }
        pool(&x, attention_mask, self.pooling).dropout(self.dropout, train).apply(&self.classifier)
    }
}
