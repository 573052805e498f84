//! Distillation losses: logits (Hinton et al. 2015), hidden states and embeddings through a
//! learned projection, and attention maps (TinyBERT, Jiao et al. 2020; MiniLM, Wang et al. 2020).

use super::mapping::LayerMapping;
use super::schedule::ScalarSchedule;
use crate::error::{CompressError, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// Logit distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"):
/// T² · KL(softmax(t/T) ‖ softmax(s/T)), averaged over the batch. The T² keeps the gradient's
/// scale independent of the temperature.
///
/// ```
/// use whetstone_compress::kd_loss;
/// use tch::Tensor;
/// let s = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
/// assert!(kd_loss(&s, &s, 2.0)?.double_value(&[]).abs() < 1e-7); // identical logits: no loss
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
pub fn kd_loss(student_logits: &Tensor, teacher_logits: &Tensor, temperature: f64) -> Result<Tensor> {
    if temperature.is_nan() || temperature <= 0.0 {
        return Err(CompressError::Config(format!("distillation temperature must be > 0, got {temperature}")));
    }
    if student_logits.size() != teacher_logits.size() {
        return Err(CompressError::Mismatch(format!("student logits {:?} vs teacher logits {:?}", student_logits.size(), teacher_logits.size())));
    }
    let b = student_logits.size().first().copied().unwrap_or(0).max(1) as f64;
    let log_ps = student_logits.f_to_kind(Kind::Float)?.f_div_scalar(temperature)?.f_log_softmax(-1, Kind::Float)?;
    let log_pt = teacher_logits.f_detach()?.f_to_kind(Kind::Float)?.f_div_scalar(temperature)?.f_log_softmax(-1, Kind::Float)?;
    let kl = log_pt.f_exp()?.f_mul(&log_pt.f_sub(&log_ps)?)?.f_sum(Kind::Float)?;
    Ok(kl.f_mul_scalar(temperature * temperature / b)?)
}

/// How attention maps are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AttentionLoss {
    /// Mean squared error of the probabilities (TinyBERT uses MSE, on scores).
    #[default]
    Mse,
    /// KL(teacher ‖ student) per query row (MiniLM).
    Kl,
}

/// Attention-map transfer between probabilities `[B, heads, T, T]`, averaged over the real
/// (unpadded) query rows given by `mask` `[B, T]`. When the head counts differ, the maps are
/// first averaged over heads.
pub fn attention_loss(student: &Tensor, teacher: &Tensor, mask: &Tensor, kind: AttentionLoss) -> Result<Tensor> {
    if student.dim() != 4 || teacher.dim() != 4 {
        return Err(CompressError::Mismatch(format!("attention maps must be [B, heads, T, T], got {:?} and {:?}", student.size(), teacher.size())));
    }
    let (s, t) = if student.size()[1] == teacher.size()[1] {
        (student.shallow_clone(), teacher.f_detach()?)
    } else {
        (student.f_mean_dim(1, true, Kind::Float)?, teacher.f_detach()?.f_mean_dim(1, true, Kind::Float)?)
    };
    if s.size() != t.size() {
        return Err(CompressError::Mismatch(format!("attention maps {:?} vs {:?}: sequence lengths differ", s.size(), t.size())));
    }
    let rows = mask.f_to_kind(Kind::Float)?.f_view([mask.size()[0], 1, -1, 1])?;
    let per_entry = match kind {
        AttentionLoss::Mse => s.f_sub(&t)?.f_square()?,
        AttentionLoss::Kl => t.f_mul(&t.f_clamp_min(1e-12)?.f_log()?.f_sub(&s.f_clamp_min(1e-12)?.f_log()?)?)?,
    };
    let summed = per_entry.f_mul(&rows)?.f_sum(Kind::Float)?;
    let n_rows = rows.f_sum(Kind::Float)?.f_mul_scalar(s.size()[1] as f64)?;
    let denom = match kind {
        AttentionLoss::Mse => n_rows.f_mul_scalar(s.size()[3] as f64)?,
        AttentionLoss::Kl => n_rows,
    };
    Ok(summed.f_div(&denom.f_clamp_min(1.0)?)?)
}

/// Mean squared error between student and teacher token states `[B, T, H]` over real tokens.
pub fn hidden_mse(student: &Tensor, teacher: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if student.size() != teacher.size() {
        return Err(CompressError::Mismatch(format!("hidden states {:?} vs {:?}: project the student's first", student.size(), teacher.size())));
    }
    let m = mask.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?;
    let sum = student.f_sub(&teacher.f_detach()?)?.f_square()?.f_mul(&m)?.f_sum(Kind::Float)?;
    let width = student.size().last().copied().unwrap_or(1) as f64;
    Ok(sum.f_div(&m.f_sum(Kind::Float)?.f_mul_scalar(width)?.f_clamp_min(1.0)?)?)
}

/// The weights and settings of a distillation objective. Every weight and the temperature may
/// follow a [`ScalarSchedule`].
///
/// The total is `alpha·CE(student, labels) + (1 − alpha)·KD + hidden·Σ MSE(W_h h_s, h_t) +
/// attention·Σ A(a_s, a_t) + embedding·MSE(W_e e_s, e_t)`, the sums running over the mapped
/// layer pairs (TinyBERT's intermediate-layer loss).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    /// KD temperature T (default 2).
    pub temperature: ScalarSchedule,
    /// Weight α of the hard-label cross-entropy; the KD term gets 1 − α (default 0.5).
    pub alpha: ScalarSchedule,
    /// Weight of the hidden-state MSE (default 0).
    pub hidden: ScalarSchedule,
    /// Weight of the attention-map loss (default 0).
    pub attention: ScalarSchedule,
    /// Weight of the embedding-output MSE (default 0).
    pub embedding: ScalarSchedule,
    /// How attention maps are compared (default MSE).
    pub attention_loss: AttentionLoss,
    /// Which teacher layer each student layer learns from (default uniform).
    pub mapping: LayerMapping,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            temperature: 2.0.into(),
            alpha: 0.5.into(),
            hidden: 0.0.into(),
            attention: 0.0.into(),
            embedding: 0.0.into(),
            attention_loss: AttentionLoss::Mse,
            mapping: LayerMapping::Uniform,
        }
    }
}

impl DistillConfig {
    /// True when some term needs the models' hidden states or attention.
    pub fn needs_internals(&self) -> bool {
        !(self.hidden.is_zero() && self.attention.is_zero() && self.embedding.is_zero())
    }
}

/// The logit part at one step: `alpha·CE + (1 − alpha)·T²·KL`, as [`DistillConfig`] weighs it.
///
/// ```
/// use whetstone_compress::{logit_distill_loss, kd_loss};
/// use tch::Tensor;
/// let (s, t) = (Tensor::from_slice(&[0.5f32, -1.0]).view([1, 2]), Tensor::from_slice(&[2.0f32, 0.0]).view([1, 2]));
/// let labels = Tensor::from_slice(&[0i64]);
/// let pure_kd = logit_distill_loss(&s, &t, &labels, 3.0, 0.0)?;
/// assert_eq!(pure_kd.double_value(&[]), kd_loss(&s, &t, 3.0)?.double_value(&[]));
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
pub fn logit_distill_loss(student_logits: &Tensor, teacher_logits: &Tensor, labels: &Tensor, temperature: f64, alpha: f64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(CompressError::Config(format!("distillation alpha must be in [0, 1], got {alpha}")));
    }
    let kd = kd_loss(student_logits, teacher_logits, temperature)?;
    if alpha == 0.0 {
        return Ok(kd);
    }
    let ce = student_logits.f_to_kind(Kind::Float)?.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0)?;
    Ok(ce.f_mul_scalar(alpha)?.f_add(&kd.f_mul_scalar(1.0 - alpha)?)?)
}
