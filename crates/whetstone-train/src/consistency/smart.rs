//! SMART's smoothness-inducing adversarial regulariser (Jiang et al. 2020), without the
//! Bregman proximal-point (momentum teacher) term.

use super::{check, invalid, value};
use crate::context::StepContext;
use crate::error::{Result, TrainError};
use crate::objective::{backward_weighted, CrossEntropy, Objective, StepLoss};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use whetstone_data::Batch;
use whetstone_models::{require_embedding_input, TextClassifier};

/// Settings of [`Smart`]; the defaults are those of the reference implementation (MT-DNN's
/// `SmartPerturbation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmartConfig {
    /// Weight λ_s ≥ 0 of the smoothness term. Default 1.0 (the paper tunes {1, 3, 5}).
    pub weight: f64,
    /// Ascent steps K ≥ 1. Default 1.
    pub steps: usize,
    /// Ascent step size η > 0. Default 1e-3.
    pub step_size: f64,
    /// Standard deviation σ > 0 of the random start. Default 1e-5.
    pub noise_std: f64,
    /// Stabiliser ε > 0 of the per-token L∞ normalisation. Default 1e-6.
    pub epsilon: f64,
}

impl Default for SmartConfig {
    fn default() -> Self {
        Self { weight: 1.0, steps: 1, step_size: 1e-3, noise_std: 1e-5, epsilon: 1e-6 }
    }
}

impl SmartConfig {
    /// λ_s ≥ 0; K ≥ 1; η, σ and ε > 0; all finite.
    pub fn validate(&self) -> Result<()> {
        check("smart", "weight", self.weight, false)?;
        if self.steps == 0 {
            return Err(invalid("smart", "steps", "must be at least 1, got 0"));
        }
        check("smart", "step_size", self.step_size, true)?;
        check("smart", "noise_std", self.noise_std, true)?;
        check("smart", "epsilon", self.epsilon, true)
    }
}

/// `KL(softmax(target) ‖ softmax(input))`, summed over classes, averaged over the batch (the
/// gradient flows into `input` only when `target` is detached by the caller).
fn kl(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    let lq = input.f_to_kind(Kind::Float)?.f_log_softmax(-1, Kind::Float)?;
    let lp = target.f_to_kind(Kind::Float)?.f_log_softmax(-1, Kind::Float)?;
    Ok(lp.f_exp()?.f_mul(&lp.f_sub(&lq)?)?.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?.f_mean(Kind::Float)?)
}

/// SMART's smoothness-inducing regulariser on the input embeddings `e`:
/// `L = CE(f(e), y) + λ_s·[KL(p̂_adv ‖ p) + KL(p̂ ‖ p_adv)]`, where the hat marks a
/// detached distribution and `p_adv` is the prediction at `e + δ`. δ starts from
/// `N(0, σ²)` on real tokens (torch's generator, reseeded by the loop every step) and takes
/// `K` steps `δ ← (δ + η·g) / (‖δ + η·g‖_∞,token + ε)`, `g` the gradient of `KL(p̂ ‖ p_adv)`
/// with respect to δ only, as MT-DNN's `SmartPerturbation` does (which uses a numerically
/// stabilised KL for that ascent step). The Bregman proximal point term of the paper is not
/// implemented. The parts are logged as the `ce` and `smart` terms.
///
/// ```
/// # fn demo(model: &dyn whetstone_models::TextClassifier) -> whetstone_train::Result<()> {
/// use whetstone_train::{consistency::{Smart, SmartConfig}, CrossEntropy};
/// let smart = Smart::new(CrossEntropy::default(), SmartConfig { weight: 3.0, ..Default::default() }, model)?;
/// # Ok(()) }
/// ```
pub struct Smart {
    ce: CrossEntropy,
    config: SmartConfig,
    last: (f64, f64),
}

impl Smart {
    /// SMART with `ce` as the task loss; the settings are checked and `model` must have input
    /// embeddings.
    pub fn new(ce: CrossEntropy, config: SmartConfig, model: &dyn TextClassifier) -> Result<Self> {
        config.validate()?;
        require_embedding_input(model, "SMART ([regularize] method = \"smart\")")?;
        Ok(Self { ce, config, last: (0.0, 0.0) })
    }
}

impl Objective for Smart {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor> {
        let c = &self.config;
        let emb = require_embedding_input(cx.model, "SMART")?;
        let mask = batch.attention_mask.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?;
        let e = emb.embed(&batch.input_ids, true)?;
        let z = emb.forward_embedded(&e, &batch.attention_mask, true)?;
        let ce = self.ce.of_logits(&z, &batch.labels)?;
        let target = z.f_detach()?;
        let mut noise = e.f_randn_like()?.f_to_kind(Kind::Float)?.f_mul_scalar(c.noise_std)?.f_mul(&mask)?;
        let e_const = e.f_detach()?;
        for _ in 0..c.steps {
            let d = noise.f_detach()?.f_set_requires_grad(true)?;
            let za = emb.forward_embedded(&e_const.f_add(&d)?, &batch.attention_mask, true)?;
            let g = Tensor::f_run_backward(&[kl(&za, &target)?], &[&d], false, false)?.into_iter().next().ok_or_else(|| TrainError::Config("SMART: no gradient with respect to the perturbation".into()))?;
            let step = d.f_detach()?.f_add(&g.f_mul_scalar(c.step_size)?)?.f_mul(&mask)?;
            let linf = step.f_abs()?.f_amax([-1i64].as_slice(), true)?.f_add_scalar(c.epsilon)?;
            noise = step.f_div(&linf)?;
        }
        let za = emb.forward_embedded(&e.f_add(&noise)?, &batch.attention_mask, true)?;
        let reg = kl(&z, &za.f_detach()?)?.f_add(&kl(&za, &target)?)?;
        self.last = (value(&ce)?, value(&reg)?);
        Ok(ce.f_add(&reg.f_mul_scalar(c.weight)?)?)
    }

    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let loss = self.loss(cx, batch)?;
        Ok(backward_weighted(&loss, weight)?.with_term("ce", self.last.0).with_term("smart", self.last.1))
    }
}
