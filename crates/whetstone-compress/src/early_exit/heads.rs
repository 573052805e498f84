//! Internal classifiers after each encoder layer, and the strategy that trains them.

use crate::error::{CompressError, Result};
use serde_json::json;
use tch::{nn, Device, Kind, Reduction, Tensor};
use whetstone_data::{make_batch, Batch, BucketBatcher, Encoded};
use whetstone_models::{pool, require_layer_outputs, LayerOutputs, Pooling, TextClassifier, TransformerClassifier};
use whetstone_train::{EvalContext, Objective, StepContext, StrategyState, TrainError, Validation};

/// What early exit needs of the model.
const NEEDS: &str = "early exit";

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
    pub fn new(p: &nn::Path, model: &TransformerClassifier) -> Result<Self> {
        let c = model.encoder().config();
        let (h, labels) = (c.hidden as i64, model.head().num_labels());
        let init = nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: c.init_std }, bs_init: Some(nn::Init::Const(0.0)), bias: true };
        let linears = (0..c.layers.saturating_sub(1))
            .map(|i| {
                let l = nn::linear(p / "exit" / i, h, labels, init);
                let bias = l.bs.ok_or_else(|| CompressError::Config(format!("exit {i} was built without a bias")))?;
                Ok((l.ws, bias))
            })
            .collect::<Result<_>>()?;
        Ok(Self { linears, pooling: model.pooling(), dropout: c.dropout })
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

    /// The exits' parameters by name (`exit.{i}.weight`, `exit.{i}.bias`), shallow handles.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.linears
            .iter()
            .enumerate()
            .flat_map(|(i, (w, b))| [(format!("exit.{i}.weight"), w.shallow_clone()), (format!("exit.{i}.bias"), b.shallow_clone())])
            .collect()
    }

    fn shallow(&self) -> Self {
        Self { linears: self.linears.iter().map(|(w, b)| (w.shallow_clone(), b.shallow_clone())).collect(), pooling: self.pooling, dropout: self.dropout }
    }
}

/// How well each trained exit classifies a split ([`ExitObjective::evaluate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ExitScores {
    /// The 1-based layer of each scored exit, in order (the model's own classifier is the
    /// last layer, scored only when the backbone trains too).
    pub layers: Vec<usize>,
    /// Accuracy of each scored exit.
    pub accuracy: Vec<f64>,
    /// The run's metric (accuracy, macro-F1 or MCC) of each scored exit.
    pub metric: Vec<f64>,
    /// The training loss over the split: the exits' cross-entropies weighted by depth.
    pub loss: f64,
}

impl ExitScores {
    /// The mean of the exits' metric: what selects the best checkpoint.
    pub fn mean_metric(&self) -> f64 {
        self.metric.iter().sum::<f64>() / self.metric.len().max(1) as f64
    }

    /// The mean of the exits' accuracy.
    pub fn mean_accuracy(&self) -> f64 {
        self.accuracy.iter().sum::<f64>() / self.accuracy.len().max(1) as f64
    }
}

/// Trains [`ExitHeads`] on the trainer's model: the cross-entropy of every exit, weighted by
/// depth as PABEE does (exit i by i + 1). With `frozen`, the backbone runs without gradients
/// (train only the exits' store); otherwise the model's own classifier joins the sum and the
/// whole model learns (DeeBERT's second stage vs. joint training). The model must offer the
/// [`LayerOutputs`] capability.
///
/// **Validation** ([`Objective::validate`], which picks the best checkpoint) scores what is
/// being trained: the run's metric of each trained exit on the validation split, and the
/// mean over them is the number compared: the internal exits, plus the model's own classifier
/// when the backbone trains too (or when the model has no internal exit). It is not the
/// accuracy of an exit policy, whose threshold is chosen after training ([`crate::sweep`]).
/// The validation record holds each exit's accuracy (`exit_accuracy`, by `exit_layers`).
///
/// The strategy's state holds the exits' weights, so a checkpoint carries them even when
/// they live in a store that is not the trainer's.
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

    /// Whether the model's own classifier is trained (and scored) too.
    fn scores_final(&self) -> bool {
        !self.frozen || self.heads.is_empty()
    }

    fn layers_of<'m>(&self, model: &'m dyn TextClassifier) -> Result<&'m dyn LayerOutputs> {
        let lo = require_layer_outputs(model, NEEDS)?;
        if self.heads.len() + 1 != lo.num_layers() {
            return Err(CompressError::Config(format!("{} internal exits for a {}-layer model: build them with ExitHeads::new on this model", self.heads.len(), lo.num_layers())));
        }
        Ok(lo)
    }

    /// The logits of every trained exit for `batch`, with each exit's depth weight.
    fn exit_logits(&self, lo: &dyn LayerOutputs, batch: &Batch, train: bool) -> Result<Vec<(f64, Tensor)>> {
        let mask = &batch.attention_mask;
        let (logits, out) = if self.frozen {
            tch::no_grad(|| lo.forward_detailed(&batch.input_ids, mask, false, false))?
        } else {
            lo.forward_detailed(&batch.input_ids, mask, train, false)?
        };
        let mut all = Vec::with_capacity(self.heads.len() + 1);
        for i in 0..self.heads.len() {
            let states = out.hidden_states.get(i + 1).ok_or_else(|| CompressError::Mismatch(format!("the model returned {} hidden states for exit {i}", out.hidden_states.len())))?;
            all.push(((i + 1) as f64, self.heads.logits(i, states, mask, train)?));
        }
        if self.scores_final() {
            all.push(((self.heads.len() + 1) as f64, logits));
        }
        Ok(all)
    }

    /// The loss of one batch, with errors.
    pub fn try_loss(&self, model: &dyn TextClassifier, batch: &Batch) -> Result<Tensor> {
        let lo = self.layers_of(model)?;
        let mut total = Tensor::f_zeros([], (Kind::Float, batch.input_ids.device()))?;
        let mut weight = 0.0;
        for (w, logits) in self.exit_logits(lo, batch, true)? {
            let ce = logits.f_cross_entropy_loss::<Tensor>(&batch.labels, None, Reduction::Mean, -100, 0.0)?;
            total = total.f_add(&ce.f_mul_scalar(w)?)?;
            weight += w;
        }
        Ok(total.f_div_scalar(weight)?)
    }

    /// Score every trained exit on `split` (no dropout, no gradients), in length-sorted
    /// batches of `batch_size` on `device`; `metric` is `accuracy`, `macro_f1` or `mcc`.
    pub fn evaluate(&self, model: &dyn TextClassifier, split: &Encoded, batch_size: usize, device: Device, metric: &str, label_names: &[String]) -> Result<ExitScores> {
        let lo = self.layers_of(model)?;
        let scored = self.heads.len() + usize::from(self.scores_final());
        let mut preds = vec![vec![0i64; split.len()]; scored];
        let (mut loss_sum, mut weight) = (0.0, 0.0);
        let mut num_labels = 0;
        tch::no_grad(|| -> Result<()> {
            for idx in BucketBatcher::new(batch_size, 1).eval_order(&split.lengths()) {
                let batch = make_batch(split, &idx, device)?;
                for (k, (w, logits)) in self.exit_logits(lo, &batch, false)?.into_iter().enumerate() {
                    num_labels = logits.size().last().copied().unwrap_or(0) as usize;
                    let ce = logits.f_cross_entropy_loss::<Tensor>(&batch.labels, None, Reduction::Sum, -100, 0.0)?;
                    loss_sum += w * ce.f_double_value(&[])?;
                    if k == 0 {
                        weight += idx.len() as f64;
                    }
                    let arg = Vec::<i64>::try_from(&logits.f_argmax(-1, false)?.f_to_device(Device::Cpu)?)?;
                    for (&i, a) in idx.iter().zip(arg) {
                        preds[k][i] = a;
                    }
                }
            }
            Ok(())
        })?;
        let names: Vec<String> = if label_names.is_empty() { (0..num_labels).map(|c| c.to_string()).collect() } else { label_names.to_vec() };
        let (mut accuracy, mut scores) = (Vec::new(), Vec::new());
        for p in &preds {
            let report = whetstone_eval::classification_report(&split.labels, p, &names)?;
            scores.push(report.metric(metric).unwrap_or(report.accuracy));
            accuracy.push(report.accuracy);
        }
        let mut layers: Vec<usize> = (1..=self.heads.len()).collect();
        if self.scores_final() {
            layers.push(self.heads.len() + 1);
        }
        let depth: f64 = layers.iter().map(|&l| l as f64).sum();
        Ok(ExitScores { layers, accuracy, metric: scores, loss: loss_sum / (weight * depth).max(1.0) })
    }
}

impl Objective for ExitObjective {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> whetstone_train::Result<Tensor> {
        Ok(self.try_loss(cx.model, batch)?)
    }

    /// The mean of the trained exits' metric (see the type's docs), not the backbone's.
    fn validate(&mut self, cx: &EvalContext<'_>, valid: &Encoded) -> whetstone_train::Result<Validation> {
        let s = self.evaluate(cx.model, valid, cx.batch_size, cx.device, cx.metric, cx.label_names)?;
        let metric = s.mean_metric();
        let per_exit: Vec<String> = s.layers.iter().zip(&s.metric).map(|(l, m)| format!("L{l} {m:.4}")).collect();
        let record = json!({"loss": s.loss, "accuracy": s.mean_accuracy(), "exit_layers": s.layers, "exit_accuracy": s.accuracy, "exit_metric": s.metric});
        Ok(Validation {
            metric,
            summary: format!("valid loss {:.4}  exits' mean {} {metric:.4} ({})", s.loss, cx.metric, per_exit.join(", ")),
            record: record.as_object().cloned().unwrap_or_default(),
        })
    }

    /// The exits' weights (`exit.{i}.weight`, `exit.{i}.bias`).
    fn state(&self) -> whetstone_train::Result<StrategyState> {
        let mut s = StrategyState::default();
        for (name, t) in self.heads.named_tensors() {
            s = s.with_tensor(name, &t);
        }
        Ok(s)
    }

    fn load_state(&mut self, state: &StrategyState) -> whetstone_train::Result<()> {
        let named = self.heads.named_tensors();
        if let Some((name, _)) = state.tensors.iter().find(|(n, _)| !named.iter().any(|(m, _)| m == n)) {
            return Err(TrainError::State(format!("the checkpoint holds `{name}`, which these {} exits do not have", self.heads.len())));
        }
        for (name, t) in &named {
            state.copy_into(name, t)?;
        }
        Ok(())
    }
}
