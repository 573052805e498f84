//! FreeLB: free large-batch adversarial training (Zhu et al. 2020).

use super::perturbed::{grad_of, with_delta};
use super::{max_norm, non_negative, positive, project, token_mask, unit_direction, zero_delta};
use crate::context::StepContext;
use crate::error::Result;
use crate::objective::{Objective, StepLoss};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use whetstone_data::Batch;

/// Settings of [`FreeLb`], named as in the paper (the reference implementation's
/// `adv-steps`, `adv-lr`, `adv-max-norm`, `adv-init-mag`). The reference scripts (K 2–3,
/// α 0.03–0.1, mostly unprojected) normalise over a whole batch; our norms are per sentence
/// (see [`super::FgmConfig::epsilon`]), so the defaults are K = 3, α = 0.03, a ball of
/// ε = 0.1 and a random start of σ = 0.03.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreeLbConfig {
    /// Ascent steps K ≥ 1 (`adv-steps`). Default 3.
    pub steps: usize,
    /// Ascent step size α > 0 (`adv-lr`). Default 0.03.
    pub alpha: f64,
    /// Radius ε ≥ 0 of the L2 ball per example (`adv-max-norm`); 0 leaves δ unprojected,
    /// as most of the reference runs do. Default 0.1.
    pub epsilon: f64,
    /// Magnitude σ ≥ 0 of the random start (`adv-init-mag`): δ₀ = U(−1, 1)·m·σ/√(L·dim)
    /// for an example of L real tokens (m masks padding); 0 starts at δ₀ = 0. Default 0.03.
    pub init_mag: f64,
}

impl Default for FreeLbConfig {
    fn default() -> Self {
        Self { steps: 3, alpha: 0.03, epsilon: 0.1, init_mag: 0.03 }
    }
}

impl FreeLbConfig {
    /// K ≥ 1, α > 0, ε ≥ 0 and σ ≥ 0, all finite.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(super::invalid("freelb", "steps", "must be at least 1, got 0"));
        }
        positive("freelb", "alpha", self.alpha)?;
        non_negative("freelb", "epsilon", self.epsilon)?;
        non_negative("freelb", "init_mag", self.init_mag)
    }
}

/// FreeLB around any inner objective (Zhu et al. 2020, Algorithm 1): for each micro-batch,
/// from a random start δ₀ (drawn from torch's generator, which the loop reseeds every step),
/// `K` passes `t = 0 … K−1` each run the inner objective's backward at `e + δₜ` with weight
/// `1/K`, so the parameter gradients average over the `K` perturbations, and then ascend
/// `δₜ₊₁ = Π_{‖δ‖≤ε}(δₜ + α·gₜ/‖gₜ‖)` with `gₜ = ∂L/∂δ` from the same backward (the "free"
/// gradient). There is no separate clean pass. The loss reported is the mean over the `K`
/// passes; the last pass's is logged as the `adversarial` term.
///
/// The perturbation starts afresh for every batch, as in the paper, so FreeLB keeps no state
/// across steps (and checkpoints none).
///
/// ```
/// use whetstone_train::{adversarial::{FreeLb, FreeLbConfig}, CrossEntropy, Objective};
/// let freelb: Box<dyn Objective> = Box::new(FreeLb::new(CrossEntropy::default(), FreeLbConfig { epsilon: 0.5, ..Default::default() }).unwrap());
/// ```
pub struct FreeLb<O> {
    inner: O,
    config: FreeLbConfig,
    norms: Vec<f64>,
}

impl<O: Objective> FreeLb<O> {
    /// FreeLB around `inner`; the settings are checked.
    pub fn new(inner: O, config: FreeLbConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { inner, config, norms: Vec::new() })
    }

    /// The largest per-example norm ‖δₜ‖ of each of the last micro-batch's K perturbations.
    pub fn last_norms(&self) -> &[f64] {
        &self.norms
    }
}

const NAME: &str = "FreeLB adversarial training";

/// FreeLB's random start: `U(−1, 1)·m·σ/√(L·dim)` per example of `L` real tokens.
fn random_start(zeros: &Tensor, mask: &Tensor, init_mag: f64) -> Result<Tensor> {
    if init_mag == 0.0 {
        return Ok(zeros.shallow_clone());
    }
    let dim = zeros.size()[2] as f64;
    let u = zeros.f_rand_like()?.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?.f_mul(mask)?;
    let lengths = mask.f_sum_dim_intlist([1i64, 2].as_slice(), true, Kind::Float)?.f_clamp_min(1.0)?;
    let mag = lengths.f_mul_scalar(dim)?.f_sqrt()?.f_reciprocal()?.f_mul_scalar(init_mag)?;
    Ok(u.f_mul(&mag)?)
}

impl<O: Objective> Objective for FreeLb<O> {
    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let (inner, c) = (&mut self.inner, &self.config);
        let mask = token_mask(batch)?;
        let replay = cx.rng().clone();
        let mut delta = random_start(&zero_delta(cx.model, batch, NAME)?, &mask, c.init_mag)?;
        if c.epsilon > 0.0 {
            delta = project(&delta, c.epsilon)?;
        }
        self.norms.clear();
        let k = c.steps as f64;
        let (mut sum, mut first, mut last) = (0.0, None, 0.0);
        for t in 0..c.steps {
            self.norms.push(max_norm(&delta)?);
            let d = delta.f_detach()?.f_set_requires_grad(true)?;
            let l = with_delta(cx, &d, &replay, NAME, |cx| inner.backward(cx, batch, weight / k))?;
            if !l.value.is_finite() {
                return Ok(StepLoss::new(l.value));
            }
            sum += l.value;
            last = l.value;
            first.get_or_insert(l);
            if t + 1 == c.steps {
                break;
            }
            delta = d.f_detach()?.f_add(&unit_direction(&grad_of(&d, "FreeLB")?, &mask)?.f_mul_scalar(c.alpha)?)?;
            if c.epsilon > 0.0 {
                delta = project(&delta, c.epsilon)?;
            }
        }
        let first = first.unwrap_or_default();
        Ok(StepLoss { value: sum / k, terms: first.terms }.with_term("adversarial", last))
    }

    crate::forward_objective!(inner; loss, before_update, after_update, validate, state, load_state);
}
