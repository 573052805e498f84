//! R-Drop: regularised dropout (Liang et al. 2021).

use super::{check, value};
use crate::context::StepContext;
use crate::error::Result;
use crate::objective::{backward_weighted, CrossEntropy, Objective, StepLoss};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use whetstone_data::Batch;

/// Settings of [`RDrop`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RDropConfig {
    /// Weight α > 0 of the symmetric KL term. Default 1.0 (the paper tunes α in
    /// {0.1, 0.5, 1.0} on GLUE). Our KL is a mean over the batch (see [`symmetric_kl`]).
    pub alpha: f64,
}

impl Default for RDropConfig {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

impl RDropConfig {
    /// α must be finite and > 0.
    pub fn validate(&self) -> Result<()> {
        check("rdrop", "alpha", self.alpha, true)
    }
}

/// The symmetric KL of R-Drop between two passes' logits `[B, C]`:
/// `½·(KL(p₁‖p₂) + KL(p₂‖p₁))`, summed over classes and **averaged** over the batch.
///
/// The reference implementation (dropreg/R-Drop's `compute_kl_loss`) sums over the batch as
/// well ("choose sum or mean depending on your task"); the mean keeps α independent of the
/// batch size and of gradient accumulation, so α here is the reference's α times B.
pub fn symmetric_kl(logits1: &Tensor, logits2: &Tensor) -> Result<Tensor> {
    let lp = logits1.f_to_kind(Kind::Float)?.f_log_softmax(-1, Kind::Float)?;
    let lq = logits2.f_to_kind(Kind::Float)?.f_log_softmax(-1, Kind::Float)?;
    // KL(p‖q) = Σ p (log p − log q).
    let diff = lp.f_sub(&lq)?;
    let kl_pq = lp.f_exp()?.f_mul(&diff)?.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?;
    let kl_qp = lq.f_exp()?.f_mul(&diff.f_neg()?)?.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?;
    Ok(kl_pq.f_add(&kl_qp)?.f_mean(Kind::Float)?.f_mul_scalar(0.5)?)
}

/// R-Drop: each batch goes through the model twice with dropout on (two different dropout
/// masks from torch's generator), and the loss is
///
/// `L = ½·(CE(z₁, y) + CE(z₂, y)) + α·½·(KL(p₁‖p₂) + KL(p₂‖p₁))`
///
/// (Liang et al. 2021, eq. 3, with the cross-entropy averaged over the two passes as in the
/// reference code). The parts are logged as the `ce` and `rdrop_kl` terms. Without dropout in
/// the model the two passes agree and the KL term is 0.
///
/// ```
/// use whetstone_train::{consistency::{RDrop, RDropConfig}, CrossEntropy, Objective};
/// let rdrop: Box<dyn Objective> = Box::new(RDrop::new(CrossEntropy { label_smoothing: 0.1 }, RDropConfig { alpha: 4.0 }).unwrap());
/// ```
pub struct RDrop {
    ce: CrossEntropy,
    config: RDropConfig,
    last: (f64, f64),
}

impl RDrop {
    /// R-Drop with `ce` as the per-pass loss; the settings are checked.
    pub fn new(ce: CrossEntropy, config: RDropConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { ce, config, last: (0.0, 0.0) })
    }
}

impl Objective for RDrop {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor> {
        let (ids, mask) = (&batch.input_ids, &batch.attention_mask);
        let z1 = cx.model.forward_t(ids, mask, true)?;
        let z2 = cx.model.forward_t(ids, mask, true)?;
        let ce = self.ce.of_logits(&z1, &batch.labels)?.f_add(&self.ce.of_logits(&z2, &batch.labels)?)?.f_mul_scalar(0.5)?;
        let kl = symmetric_kl(&z1, &z2)?;
        self.last = (value(&ce)?, value(&kl)?);
        Ok(ce.f_add(&kl.f_mul_scalar(self.config.alpha)?)?)
    }

    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let loss = self.loss(cx, batch)?;
        Ok(backward_weighted(&loss, weight)?.with_term("ce", self.last.0).with_term("rdrop_kl", self.last.1))
    }
}
