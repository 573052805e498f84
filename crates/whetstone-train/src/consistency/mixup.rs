//! Mixup on embeddings or final hidden states (TMix-style, Chen et al. 2020).

use super::check;
use crate::context::StepContext;
use crate::error::Result;
use crate::objective::{backward_weighted, CrossEntropy, Objective, StepLoss};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use whetstone_data::Batch;
use whetstone_models::{require_embedding_input, require_layer_outputs, TextClassifier};

/// Where the two examples are mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MixupOn {
    /// The token embeddings (`EmbeddingInput::embed`); any model with input embeddings.
    #[default]
    Embeddings,
    /// The encoder's final token states, before pooling and the head
    /// (`LayerOutputs::logits_from_states`); the Transformer.
    Hidden,
}

/// Settings of [`Mixup`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixupConfig {
    /// λ ~ Beta(α, α), α > 0. Default 1.0 (λ uniform, as in Guo et al. 2019's sentence-
    /// classification mixup); TMix reports α from 0.2 to 16.
    pub alpha: f64,
    /// Where to mix: `embeddings` (default) or `hidden`.
    pub on: MixupOn,
}

impl Default for MixupConfig {
    fn default() -> Self {
        Self { alpha: 1.0, on: MixupOn::Embeddings }
    }
}

impl MixupConfig {
    /// α must be finite and > 0.
    pub fn validate(&self) -> Result<()> {
        check("mixup", "alpha", self.alpha, true)
    }
}

/// Mixup of each example with another of the same batch: a random pairing `j = π(i)` (a
/// permutation) and one `λ ~ Beta(α, α)` per batch, both from the step's random stream; the
/// mixed input `λ·x_i + (1 − λ)·x_j` (embeddings or final states, padded alike, attention
/// masks OR-ed) and the loss `λ·CE(z, y_i) + (1 − λ)·CE(z, y_j)`. λ is logged as the
/// `mixup_lambda` term.
///
/// ```
/// # fn demo(model: &dyn whetstone_models::TextClassifier) -> whetstone_train::Result<()> {
/// use whetstone_train::{consistency::{Mixup, MixupConfig, MixupOn}, CrossEntropy};
/// let mixup = Mixup::new(CrossEntropy::default(), MixupConfig { alpha: 0.4, on: MixupOn::Embeddings }, model)?;
/// # Ok(()) }
/// ```
pub struct Mixup {
    ce: CrossEntropy,
    config: MixupConfig,
    lambda: f64,
}

impl Mixup {
    /// Mixup with `ce` as the loss; the settings are checked, and `model` must have input
    /// embeddings (or per-layer outputs, for `on = "hidden"`).
    pub fn new(ce: CrossEntropy, config: MixupConfig, model: &dyn TextClassifier) -> Result<Self> {
        config.validate()?;
        match config.on {
            MixupOn::Embeddings => drop(require_embedding_input(model, "mixup on embeddings ([regularize] method = \"mixup\")")?),
            MixupOn::Hidden => drop(require_layer_outputs(model, "mixup on hidden states ([regularize] on = \"hidden\")")?),
        }
        Ok(Self { ce, config, lambda: 0.0 })
    }

    /// The λ of the last batch.
    pub fn last_lambda(&self) -> f64 {
        self.lambda
    }
}

/// A sample of Beta(a, a) from `rng`: `X / (X + Y)` with `X, Y ~ Gamma(a, 1)`
/// (Marsaglia & Tsang 2000, with the `U^{1/a}` boost for a < 1).
pub fn beta_sample(rng: &mut impl Rng, a: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, a);
    if x + y > 0.0 {
        x / (x + y)
    } else {
        0.5
    }
}

fn gamma(rng: &mut impl Rng, a: f64) -> f64 {
    if a < 1.0 {
        let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        return gamma(rng, a + 1.0) * u.powf(1.0 / a);
    }
    let d = a - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        // A standard normal by Box–Muller.
        let (u1, u2): (f64, f64) = (rng.gen_range(f64::MIN_POSITIVE..1.0), rng.gen());
        let x = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

impl Objective for Mixup {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor> {
        let b = batch.input_ids.size()[0] as usize;
        let lambda = beta_sample(cx.rng(), self.config.alpha);
        let mut perm: Vec<i64> = (0..b as i64).collect();
        perm.shuffle(cx.rng());
        self.lambda = lambda;
        let perm = Tensor::from_slice(&perm).f_to(batch.input_ids.device())?;
        let (ids, mask) = (&batch.input_ids, &batch.attention_mask);
        let mixed_mask = mask.f_maximum(&mask.f_index_select(0, &perm)?)?;
        let mix = |x: &Tensor| -> Result<Tensor> { Ok(x.f_mul_scalar(lambda)?.f_add(&x.f_index_select(0, &perm)?.f_mul_scalar(1.0 - lambda)?)?) };
        let logits = match self.config.on {
            MixupOn::Embeddings => {
                let emb = require_embedding_input(cx.model, "mixup on embeddings")?;
                emb.forward_embedded(&mix(&emb.embed(ids, true)?)?, &mixed_mask, true)?
            }
            MixupOn::Hidden => {
                let layers = require_layer_outputs(cx.model, "mixup on hidden states")?;
                let (_, out) = layers.forward_detailed(ids, mask, true, false)?;
                layers.logits_from_states(&mix(&out.last)?, &mixed_mask, true)?
            }
        };
        let y2 = batch.labels.f_index_select(0, &perm)?;
        Ok(self.ce.of_logits(&logits, &batch.labels)?.f_mul_scalar(lambda)?.f_add(&self.ce.of_logits(&logits, &y2)?.f_mul_scalar(1.0 - lambda)?)?)
    }

    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let loss = self.loss(cx, batch)?;
        Ok(backward_weighted(&loss, weight)?.with_term("mixup_lambda", self.lambda))
    }
}
