//! Projected gradient descent on the input embeddings (Madry et al. 2018), as adversarial
//! training for text in the manner of the common PyTorch PGD snippet.

use super::perturbed::{grad_of, with_delta};
use super::{max_norm, positive, project, token_mask, unit_direction, zero_delta};
use crate::context::StepContext;
use crate::error::{Result, TrainError};
use crate::objective::{Objective, StepLoss};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use whetstone_data::Batch;

/// Settings of [`Pgd`]. The radius is per sentence, like [`super::FgmConfig::epsilon`], whose
/// note explains why the PyTorch snippet's ε = 1, α = 0.3 are far too strong here; the
/// defaults are ε = 0.1 with α = ε/3 over K = 3 steps, the snippet's proportions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgdConfig {
    /// Radius of the L2 ball per example, ε > 0. Default 0.1.
    pub epsilon: f64,
    /// Step size α > 0 of each ascent step. Default 0.03.
    pub alpha: f64,
    /// Ascent steps K ≥ 1. Default 3.
    pub steps: usize,
}

impl Default for PgdConfig {
    fn default() -> Self {
        Self { epsilon: 0.1, alpha: 0.03, steps: 3 }
    }
}

impl PgdConfig {
    /// ε and α must be finite and > 0, K ≥ 1.
    pub fn validate(&self) -> Result<()> {
        positive("pgd", "epsilon", self.epsilon)?;
        positive("pgd", "alpha", self.alpha)?;
        if self.steps == 0 {
            return Err(super::invalid("pgd", "steps", "must be at least 1, got 0"));
        }
        Ok(())
    }
}

/// PGD around any inner objective: for each micro-batch,
///
/// 1. the clean pass (the inner objective's backward with `δ₀ = 0`), which also gives
///    `g₀ = ∂L/∂δ`;
/// 2. `K` ascent steps `δₖ₊₁ = Π_{‖δ‖≤ε}(δₖ + α·gₖ/‖gₖ‖)`, where `gₖ` (k ≥ 1) is the
///    gradient of the inner loss at `e + δₖ` **with respect to δ only**
///    (`Tensor::run_backward(&[loss], &[δ])`);
/// 3. the adversarial pass: the inner objective's backward at `e + δ_K`.
///
/// The step's gradient is clean + last adversarial, as in the snippet that backs the
/// parameter gradients up after the clean pass, zeroes them for each intermediate ascent
/// step and restores them before the last: taking the intermediate gradients with respect to
/// `δ` alone never touches the parameter gradients, so it gives the same result without a
/// copy of them (and skips the weight-gradient half of those backward passes).
///
/// With K = 1 this is FGM with step α, projected onto the ε-ball.
///
/// ```
/// use whetstone_train::{adversarial::{Pgd, PgdConfig}, CrossEntropy, Objective};
/// let pgd: Box<dyn Objective> = Box::new(Pgd::new(CrossEntropy::default(), PgdConfig { steps: 2, ..Default::default() }).unwrap());
/// assert!(Pgd::new(CrossEntropy::default(), PgdConfig { steps: 0, ..Default::default() }).is_err());
/// ```
pub struct Pgd<O> {
    inner: O,
    config: PgdConfig,
    norms: Vec<f64>,
}

impl<O: Objective> Pgd<O> {
    /// PGD around `inner`; the settings are checked.
    pub fn new(inner: O, config: PgdConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { inner, config, norms: Vec::new() })
    }

    /// The largest per-example norm ‖δₖ‖ of each of the last micro-batch's K perturbations,
    /// in order, for inspection.
    pub fn last_norms(&self) -> &[f64] {
        &self.norms
    }
}

const NAME: &str = "PGD adversarial training";

impl<O: Objective> Objective for Pgd<O> {
    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let (inner, c) = (&mut self.inner, &self.config);
        let mask = token_mask(batch)?;
        let replay = cx.rng().clone();
        let delta0 = zero_delta(cx.model, batch, NAME)?.f_set_requires_grad(true)?;
        let clean = with_delta(cx, &delta0, &replay, NAME, |cx| inner.backward(cx, batch, weight))?;
        if !clean.value.is_finite() {
            return Ok(clean);
        }
        let ascend = |delta: &Tensor, g: &Tensor| -> Result<Tensor> { project(&delta.f_add(&unit_direction(g, &mask)?.f_mul_scalar(c.alpha)?)?, c.epsilon) };
        self.norms.clear();
        let mut delta = ascend(&delta0.f_detach()?, &grad_of(&delta0, "PGD")?)?;
        self.norms.push(max_norm(&delta)?);
        for _ in 1..c.steps {
            let d = delta.f_detach()?.f_set_requires_grad(true)?;
            let loss = with_delta(cx, &d, &replay, NAME, |cx| inner.loss(cx, batch))?;
            let g = Tensor::f_run_backward(&[loss.f_mul_scalar(weight)?], &[&d], false, false)?;
            let g = g.into_iter().next().ok_or_else(|| TrainError::Config("PGD: no gradient with respect to the perturbation".into()))?;
            delta = ascend(&d.f_detach()?, &g)?;
            self.norms.push(max_norm(&delta)?);
        }
        let adv = with_delta(cx, &delta, &replay, NAME, |cx| inner.backward(cx, batch, weight))?;
        if !adv.value.is_finite() {
            return Ok(StepLoss::new(adv.value));
        }
        Ok(clean.with_term("adversarial", adv.value))
    }

    crate::forward_objective!(inner; loss, before_update, after_update, validate, state, load_state);
}
