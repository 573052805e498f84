//! Bidirectional LSTM classifier.

use crate::capability::EmbeddingInput;
use crate::classifier::TextClassifier;
use crate::error::{ModelError, Result};
use crate::head::{pool, Pooling};
use crate::ops;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, TchError, Tensor};

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
    layers: Vec<(Lstm, Lstm)>,
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
                Ok((Lstm::new(&q / "fwd", input, h, cfg)?, Lstm::new(&q / "bwd", input, h, cfg)?))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            embedding: nn::embedding(p / "embedding", vocab_size, c.embed_dim as i64, Default::default()),
            layers,
            classifier: nn::linear(p / "classifier", 2 * h, num_labels, Default::default()),
            dropout: c.dropout,
            pooling: c.pooling,
        })
    }
}

/// One unidirectional, single-layer, batch-first LSTM: `tch`'s `nn::lstm` (same variables,
/// `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`), run with the fallible op.
#[derive(Debug)]
struct Lstm {
    /// The flat weights in libtorch's order.
    weights: Vec<Tensor>,
    hidden: i64,
}

impl Lstm {
    fn new(p: nn::Path, input: i64, hidden: i64, cfg: nn::RNNConfig) -> Result<Self> {
        let _ = nn::lstm(&p, input, hidden, cfg);
        let weights = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
            .iter()
            .map(|n| p.get(n).ok_or_else(|| ModelError::Config(format!("lstm variable {n} missing"))))
            .collect::<Result<_>>()?;
        Ok(Self { weights, hidden })
    }

    /// The outputs `[B, T, hidden]` of `x` `[B, T, input]` from a zero state, as
    /// `tch::nn::RNN::seq` computes them.
    fn seq(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, width) = x.size3()?;
        // libtorch's CPU LSTM does not check the input width (it reads past the rows).
        let input = self.weights[0].size()[1];
        if width != input {
            return Err(TchError::Shape(format!("lstm input must be [B, T, {input}], got {:?}", x.size())).into());
        }
        let zeros = Tensor::f_zeros([1, b, self.hidden], (self.weights[0].kind(), self.weights[0].device()))?;
        let (out, _, _) = x.f_lstm(&[&zeros, &zeros], &self.weights.iter().collect::<Vec<_>>(), true, 1, 0.0, true, false, true)?;
        Ok(out)
    }
}

/// Index that reverses each row's first `len` positions and leaves padding in place.
fn reverse_index(mask: &Tensor) -> Result<Tensor> {
    let (_, t) = mask.size2()?;
    let lens = mask.f_sum_dim_intlist(1, true, Kind::Int64)?; // [B, 1]
    let pos = Tensor::f_arange(t, (Kind::Int64, mask.device()))?.f_unsqueeze(0)?; // [1, T]
    let rev = lens.f_sub_scalar(1)?.f_sub(&pos)?;
    Ok(rev.f_where_self(&pos.f_lt_tensor(&lens)?, &pos)?)
}

impl BiLstm {
    /// Logits from word embeddings `[B, T, E]`.
    fn logits(&self, words: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let (b, t, _) = words.size3()?;
        if attention_mask.size() != [b, t] {
            return Err(TchError::Shape(format!("attention mask must be [{b}, {t}] like the input, got {:?}", attention_mask.size())).into());
        }
        let idx = reverse_index(attention_mask)?.f_unsqueeze(-1)?;
        let gather = |y: &Tensor| -> Result<Tensor> { Ok(y.f_gather(1, &idx.f_expand([-1, -1, y.size()[2]], false)?, false)?) };
        let mut x = words.shallow_clone();
        for (i, (fwd, bwd)) in self.layers.iter().enumerate() {
            if i > 0 {
                x = x.f_dropout(self.dropout, train)?;
            }
            let f = fwd.seq(&x)?;
            let b = bwd.seq(&gather(&x)?)?;
            x = Tensor::f_cat(&[f, gather(&b)?], 2)?;
        }
        ops::linear(&pool(&x, attention_mask, self.pooling)?.f_dropout(self.dropout, train)?, &self.classifier)
    }
}

impl TextClassifier for BiLstm {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_embedded(&self.embed(input_ids, train)?, attention_mask, train)
    }

    fn kind(&self) -> &'static str {
        "bilstm"
    }

    fn embedding_input(&self) -> Option<&dyn EmbeddingInput> {
        Some(self)
    }
}

impl EmbeddingInput for BiLstm {
    fn word_embeddings(&self) -> &Tensor {
        &self.embedding.ws
    }

    fn embed(&self, input_ids: &Tensor, _train: bool) -> Result<Tensor> {
        ops::embedding(input_ids, &self.embedding)
    }

    fn forward_embedded(&self, embeddings: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.logits(embeddings, attention_mask, train)
    }
}
