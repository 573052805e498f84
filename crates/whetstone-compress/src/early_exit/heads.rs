//! Internal classifiers after each encoder layer, and the objective that trains them.

use crate::error::{CompressError, Result};
use tch::{nn, Kind, Reduction, Tensor};
use whetstone_data::Batch;
use whetstone_models::{pool, Pooling, TextClassifier, TransformerClassifier};
use whetstone_train::Objective;

/// One internal classifier (pooling, then a Linear layer named `exit.{i}`) after each encoder
/// layer but the last, whose classifier is the model's own head (DeeBERT, Xin et al. 2020;
/// PABEE, Zhou et al. 2020). Exit `i` (0-based) reads the output of layer `i`.
#[derive(Debug)]
pub struct ExitHeads {
    /// `(weight [labels, hidden], bias [labels])` per internal exit.
    linears: Vec<(Tensor, Tensor)>,
    pooling: Pooling,
    dropout: f64,
}

impl ExitHeads {
    /// Fresh internal classifiers for `model` under `p` (BERT's N(0, 0.02) weights, zero bias).
    /// Build them in a store of their own to train them with the backbone frozen, or in the
    /// model's store to train jointly.
    pub fn new(p: &nn::Path, model: &TransformerClassifier) -> Self {
        let c = model.encoder().config();
        let (h, labels) = (c.hidden as i64, model.head().num_labels());
        let init = nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: c.init_std }, bs_init: Some(nn::Init::Const(0.0)), bias: true };
        let linears = (0..c.layers.saturating_sub(1))
            .map(|i| {
                let l = nn::linear(p / "exit" / i, h, labels, init);
                (l.ws, l.bs.expect("bias is on"))
            })
            .collect();
        Self { linears, pooling: model.pooling(), dropout: c.dropout }
    }

    /// Number of internal exits (layers − 1).
    pub fn len(&self) -> usize {
        self.linears.len()
    }

    /// True for a one-layer model (no internal exit).
    pub fn is_empty(&self) -> bool {
        self.linears.is_empty()
    }

    /// Logits `[B, labels]` of exit `i` from that layer's token states `[B, T, H]`.
    pub fn logits(&self, i: usize, states: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let (w, b) = self.linears.get(i).ok_or_else(|| CompressError::Config(format!("exit {i} does not exist: there are {} internal exits", self.linears.len())))?;
        Ok(pool(states, attention_mask, self.pooling)?.f_dropout(self.dropout, train)?.f_linear(w, Some(b))?.f_to_kind(Kind::Float)?)
    }

    fn shallow(&self) -> Self {
        Self { linears: self.linears.iter().map(|(w, b)| (w.shallow_clone(), b.shallow_clone())).collect(), pooling: self.pooling, dropout: self.dropout }
    }
}

/// Trains [`ExitHeads`] on the trainer's model: the cross-entropy of every exit, weighted by
/// depth as PABEE does (exit i by i + 1). With `frozen`, the backbone runs without gradients
/// (train only the exits' store); otherwise the model's own classifier joins the sum and the
/// whole model learns (DeeBERT's second stage vs. joint training).
#[derive(Debug)]
pub struct ExitObjective {
    heads: ExitHeads,
    frozen: bool,
}

impl ExitObjective {
    /// An objective over `heads` (which share storage with the caller's).
    pub fn new(heads: &ExitHeads, frozen: bool) -> Self {
        Self { heads: heads.shallow(), frozen }
    }

    /// The loss of one batch, with errors.
    pub fn try_loss(&self, model: &dyn TextClassifier, batch: &Batch) -> Result<Tensor> {
        let t = model.as_transformer().ok_or_else(|| CompressError::Config("early exit needs a Transformer model".into()))?;
        let mask = &batch.attention_mask;
        let (logits, out) = if self.frozen {
            tch::no_grad(|| t.forward_detailed(&batch.input_ids, mask, false, false))?
        } else {
            t.forward_detailed(&batch.input_ids, mask, true, false)?
        };
        let ce = |l: &Tensor| l.f_cross_entropy_loss::<Tensor>(&batch.labels, None, Reduction::Mean, -100, 0.0);
        let mut total = Tensor::f_zeros([], (Kind::Float, logits.device()))?;
        let mut weight = 0.0;
        for i in 0..self.heads.len() {
            let w = (i + 1) as f64;
            total = total.f_add(&ce(&self.heads.logits(i, &out.hidden_states[i + 1], mask, true)?)?.f_mul_scalar(w)?)?;
            weight += w;
        }
        if !self.frozen || self.heads.is_empty() {
            let w = (self.heads.len() + 1) as f64;
            total = total.f_add(&ce(&logits)?.f_mul_scalar(w)?)?;
            weight += w;
        }
        Ok(total.f_div_scalar(weight)?)
    }
}

impl Objective for ExitObjective {
    fn loss(&mut self, model: &dyn TextClassifier, batch: &Batch) -> Tensor {
        self.try_loss(model, batch).unwrap_or_else(|e| panic!("early-exit loss: {e}"))
    }
}
