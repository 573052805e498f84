//! The fast gradient method on the input embeddings (Miyato et al. 2017).

use super::perturbed::{grad_of, with_delta};
use super::{positive, token_mask, unit_direction, zero_delta};
use crate::context::StepContext;
use crate::error::Result;
use crate::objective::{Objective, StepLoss};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use whetstone_data::Batch;

/// Settings of [`Fgm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FgmConfig {
    /// The perturbation's L2 norm per example, ε > 0. Default 0.1. The norm is per sentence
    /// (over its real tokens' word embeddings, which have an L2 norm of about 6 in a
    /// fine-tuned MiniLM and about 1.3 in a small Transformer trained from scratch), so 0.1
    /// is 2–8% of a sentence. The popular PyTorch FGM snippet's 1.0 normalises over a whole
    /// batch's embedding gradient and is far too strong here: per sentence it took MiniLM
    /// and a 2 × 128 Transformer to chance in one epoch (`reports/augment-notes.md`).
    pub epsilon: f64,
}

impl Default for FgmConfig {
    fn default() -> Self {
        Self { epsilon: 0.1 }
    }
}

impl FgmConfig {
    /// ε must be a finite number > 0.
    pub fn validate(&self) -> Result<()> {
        positive("fgm", "epsilon", self.epsilon)
    }
}

/// FGM around any inner objective: for each micro-batch,
///
/// 1. the clean pass: the inner objective's backward on the embeddings `e + δ` with
///    `δ = 0` (bit-identical to the plain pass), which also gives `g = ∂L/∂δ`;
/// 2. the adversarial pass: the inner objective's backward on `e + r`, with
///    `r = ε·g/‖g‖` (per example, real tokens only), accumulating its gradients.
///
/// The step's gradient is therefore `∇θ L(e) + ∇θ L(e + r)`, as in Miyato et al.'s
/// `L + L_adv` with λ = 1. The loss reported is the clean one; the adversarial loss is
/// logged as the `adversarial` term. `r` is treated as a constant (no gradient through it).
///
/// ```
/// use whetstone_train::{adversarial::{Fgm, FgmConfig}, CrossEntropy, Objective};
/// let fgm: Box<dyn Objective> = Box::new(Fgm::new(CrossEntropy::default(), FgmConfig { epsilon: 0.5 }).unwrap());
/// assert!(Fgm::new(CrossEntropy::default(), FgmConfig { epsilon: 0.0 }).is_err());
/// ```
pub struct Fgm<O> {
    inner: O,
    config: FgmConfig,
    last: Option<Tensor>,
}

impl<O: Objective> Fgm<O> {
    /// FGM around `inner`; the settings are checked.
    pub fn new(inner: O, config: FgmConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { inner, config, last: None })
    }

    /// The perturbation `r` `[B, T, dim]` of the last micro-batch (detached), for inspection.
    pub fn last_perturbation(&self) -> Option<&Tensor> {
        self.last.as_ref()
    }

    /// The inner objective.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

const NAME: &str = "FGM adversarial training";

impl<O: Objective> Objective for Fgm<O> {
    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let inner = &mut self.inner;
        let replay = cx.rng().clone();
        let delta = zero_delta(cx.model, batch, NAME)?.f_set_requires_grad(true)?;
        let clean = with_delta(cx, &delta, &replay, NAME, |cx| inner.backward(cx, batch, weight))?;
        if !clean.value.is_finite() {
            return Ok(clean);
        }
        let r = unit_direction(&grad_of(&delta, "FGM")?, &token_mask(batch)?)?.f_mul_scalar(self.config.epsilon)?;
        let adv = with_delta(cx, &r, &replay, NAME, |cx| inner.backward(cx, batch, weight))?;
        self.last = Some(r);
        if !adv.value.is_finite() {
            return Ok(StepLoss::new(adv.value));
        }
        Ok(clean.with_term("adversarial", adv.value))
    }

    crate::forward_objective!(inner; loss, before_update, after_update, validate, state, load_state);
}
