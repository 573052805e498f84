//! Robustness: accuracy under an embedding-space PGD attack.

use super::{project, unit_direction};
use crate::error::{Result, TrainError};
use serde::Serialize;
use tch::{Device, Kind, Tensor};
use whetstone_data::{make_batch, BucketBatcher, Encoded};
use whetstone_models::{require_embedding_input, TextClassifier};
use whetstone_torch_ext::Precision;

/// An L2 PGD attack on the input embeddings (Madry et al. 2018) that maximises the
/// cross-entropy of the gold label, with the model in evaluation mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PgdAttack {
    /// Radius ε > 0 of the L2 ball per example (over its `[T, dim]` embeddings, real tokens only).
    pub epsilon: f64,
    /// Step size α > 0; `None` takes Madry et al.'s rule of thumb α = 2.5·ε/K.
    pub alpha: Option<f64>,
    /// Ascent steps K ≥ 1.
    pub steps: usize,
}

impl Default for PgdAttack {
    /// ε = 1, K = 10, α = 2.5·ε/K.
    fn default() -> Self {
        Self { epsilon: 1.0, alpha: None, steps: 10 }
    }
}

impl PgdAttack {
    /// The step size in use.
    pub fn step_size(&self) -> f64 {
        self.alpha.unwrap_or(2.5 * self.epsilon / self.steps.max(1) as f64)
    }

    /// ε and α must be finite and > 0, K ≥ 1.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f64| TrainError::Config(format!("the PGD attack's {what} must be a finite number > 0, got {v}"));
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(bad("epsilon", self.epsilon));
        }
        let a = self.step_size();
        if !(a.is_finite() && a > 0.0) {
            return Err(bad("step size alpha", a));
        }
        if self.steps == 0 {
            return Err(TrainError::Config("the PGD attack needs at least 1 step, got 0".into()));
        }
        Ok(())
    }
}

/// Clean and attacked accuracy of a model on a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Robustness {
    /// Accuracy on the clean inputs.
    pub clean_accuracy: f64,
    /// Accuracy under the attack.
    pub robust_accuracy: f64,
    /// Examples scored.
    pub examples: usize,
    /// The attack.
    pub attack: PgdAttack,
}

/// Accuracy of `model` on `data` clean and under `attack`: for each batch, K steps
/// `δ ← Π_{‖δ‖≤ε}(δ + α·g/‖g‖)` from `δ = 0`, with `g` the gradient of the summed
/// cross-entropy of the gold labels with respect to `δ` only (the parameters get no
/// gradient), dropout off, the forward passes in `precision`. The attack is deterministic.
///
/// ```no_run
/// # fn demo(model: &dyn whetstone_models::TextClassifier, test: &whetstone_data::Encoded) -> whetstone_train::Result<()> {
/// use whetstone_train::adversarial::{evaluate_under_pgd, PgdAttack};
/// let r = evaluate_under_pgd(model, test, &PgdAttack { epsilon: 0.5, ..Default::default() }, 64, tch::Device::Cpu, whetstone_train::Precision::Fp32)?;
/// println!("clean {:.3}, under PGD {:.3}", r.clean_accuracy, r.robust_accuracy);
/// # Ok(()) }
/// ```
pub fn evaluate_under_pgd(model: &dyn TextClassifier, data: &Encoded, attack: &PgdAttack, batch_size: usize, device: Device, precision: Precision) -> Result<Robustness> {
    attack.validate()?;
    let emb = require_embedding_input(model, "the embedding-space PGD attack")?;
    let alpha = attack.step_size();
    let lengths: Vec<usize> = data.ids.iter().map(Vec::len).collect();
    let order = BucketBatcher::new(batch_size.max(1), 1).eval_order(&lengths);
    let _amp = precision.region(device)?;
    let (mut clean, mut robust) = (0i64, 0i64);
    for idx in &order {
        let batch = make_batch(data, idx, device)?;
        let (ids, mask) = (&batch.input_ids, &batch.attention_mask);
        let correct = |logits: Tensor| -> Result<i64> { Ok(logits.f_argmax(-1, false)?.f_eq_tensor(&batch.labels)?.f_sum(Kind::Int64)?.f_int64_value(&[])?) };
        let e = tch::no_grad(|| emb.embed(ids, false))?;
        clean += correct(tch::no_grad(|| emb.forward_embedded(&e, mask, false))?)?;
        let m = mask.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?;
        let mut delta = e.f_zeros_like()?.f_to_kind(Kind::Float)?;
        for _ in 0..attack.steps {
            let d = delta.f_set_requires_grad(true)?;
            let logits = emb.forward_embedded(&e.f_add(&d)?, mask, false)?.f_to_kind(Kind::Float)?;
            let loss = logits.f_cross_entropy_loss::<Tensor>(&batch.labels, None, tch::Reduction::Sum, -100, 0.0)?;
            let g = Tensor::f_run_backward(&[loss], &[&d], false, false)?.into_iter().next().ok_or_else(|| TrainError::Config("the PGD attack got no gradient".into()))?;
            delta = project(&d.f_detach()?.f_add(&unit_direction(&g, &m)?.f_mul_scalar(alpha)?)?, attack.epsilon)?;
        }
        robust += correct(tch::no_grad(|| emb.forward_embedded(&e.f_add(&delta)?, mask, false))?)?;
    }
    let n = data.ids.len();
    let acc = |c: i64| if n == 0 { 0.0 } else { c as f64 / n as f64 };
    Ok(Robustness { clean_accuracy: acc(clean), robust_accuracy: acc(robust), examples: n, attack: *attack })
}
