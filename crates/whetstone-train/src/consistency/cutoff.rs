//! Cutoff in embedding space (Shen et al. 2020, "A Simple but Tough-to-Beat Data
//! Augmentation Approach").

use super::{check, invalid, value};
use crate::context::StepContext;
use crate::error::Result;
use crate::objective::{backward_weighted, CrossEntropy, Objective, StepLoss};
use rand::seq::index::sample;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use whetstone_data::Batch;
use whetstone_models::{require_embedding_input, TextClassifier};

/// What is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CutoffKind {
    /// `⌊ratio·L⌋` random tokens of an example of `L` real tokens: their embeddings are
    /// zeroed and their attention-mask entries set to 0.
    Token,
    /// One contiguous span of `⌊ratio·L⌋` tokens, likewise (the paper's best on GLUE).
    #[default]
    Span,
    /// `⌊ratio·dim⌋` random embedding dimensions, zeroed at every token.
    Feature,
}

/// Settings of [`Cutoff`]. The defaults are those of the paper's GLUE runs as we read them
/// (span cutoff, ratio 0.1, both extra terms at weight 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CutoffConfig {
    /// `token`, `span` (default) or `feature`.
    pub kind: CutoffKind,
    /// Share of the tokens (or dimensions) cut, in (0, 1). Default 0.1.
    pub ratio: f64,
    /// Weight ≥ 0 of the cross-entropy of the cut view. Default 1.0.
    pub ce_weight: f64,
    /// Weight ≥ 0 of the Jensen–Shannon divergence between the clean and the cut view's
    /// predictions. Default 1.0.
    pub js_weight: f64,
}

impl Default for CutoffConfig {
    fn default() -> Self {
        Self { kind: CutoffKind::Span, ratio: 0.1, ce_weight: 1.0, js_weight: 1.0 }
    }
}

impl CutoffConfig {
    /// `ratio` in (0, 1); the weights finite and ≥ 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.ratio > 0.0 && self.ratio < 1.0) {
            return Err(invalid("cutoff", "ratio", format!("must lie in (0, 1), got {}", self.ratio)));
        }
        check("cutoff", "ce_weight", self.ce_weight, false)?;
        check("cutoff", "js_weight", self.js_weight, false)
    }
}

/// Cutoff: `L = CE(x) + w_ce·CE(x_cut) + w_js·JS(p(x), p(x_cut))`, where `x_cut` is the batch
/// with a random part of each example's token embeddings cut (see [`CutoffKind`]; the
/// positions come from the step's random stream). The parts are logged as the `ce`,
/// `cutoff_ce` and `cutoff_js` terms.
///
/// ```
/// # fn demo(model: &dyn whetstone_models::TextClassifier) -> whetstone_train::Result<()> {
/// use whetstone_train::{consistency::{Cutoff, CutoffConfig, CutoffKind}, CrossEntropy};
/// let cutoff = Cutoff::new(CrossEntropy::default(), CutoffConfig { kind: CutoffKind::Token, ratio: 0.15, ..Default::default() }, model)?;
/// # Ok(()) }
/// ```
pub struct Cutoff {
    ce: CrossEntropy,
    config: CutoffConfig,
    last: [f64; 3],
}

impl Cutoff {
    /// Cutoff with `ce` as the loss of each view; the settings are checked and `model` must
    /// have input embeddings.
    pub fn new(ce: CrossEntropy, config: CutoffConfig, model: &dyn TextClassifier) -> Result<Self> {
        config.validate()?;
        require_embedding_input(model, "cutoff ([regularize] method = \"cutoff\")")?;
        Ok(Self { ce, config, last: [0.0; 3] })
    }

    /// The keep-masks of `batch` for one draw: `[B, T, 1]` over tokens and `[B, T]` for the
    /// attention mask (token and span cutoff), or `[B, 1, dim]` over features.
    fn keep_masks(&self, rng: &mut impl Rng, batch: &Batch, dim: usize) -> Result<(Tensor, Tensor)> {
        let size = batch.input_ids.size();
        let (b, t) = (size[0] as usize, size[1] as usize);
        let lengths = Vec::<i64>::try_from(batch.attention_mask.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Int64)?.f_to_device(tch::Device::Cpu)?)?;
        let device = batch.input_ids.device();
        let c = &self.config;
        if c.kind == CutoffKind::Feature {
            let n = (c.ratio * dim as f64).floor() as usize;
            let mut keep = vec![1f32; b * dim];
            for row in 0..b {
                for d in sample(rng, dim, n) {
                    keep[row * dim + d] = 0.0;
                }
            }
            let keep = Tensor::from_slice(&keep).f_view([b as i64, 1, dim as i64])?.f_to(device)?;
            return Ok((keep, batch.attention_mask.shallow_clone()));
        }
        let mut keep = vec![1i64; b * t];
        for (row, &len) in lengths.iter().enumerate() {
            let len = len as usize;
            let n = (c.ratio * len as f64).floor() as usize;
            if n == 0 {
                continue;
            }
            let cut: Vec<usize> = match c.kind {
                CutoffKind::Token => sample(rng, len, n).into_vec(),
                _ => {
                    let start = rng.gen_range(0..=len - n);
                    (start..start + n).collect()
                }
            };
            for p in cut {
                keep[row * t + p] = 0;
            }
        }
        let keep = Tensor::from_slice(&keep).f_view([b as i64, t as i64])?.f_to(device)?;
        let mask = batch.attention_mask.f_mul(&keep)?;
        Ok((keep.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?, mask))
    }
}

/// Jensen–Shannon divergence between the softmaxes of two logits `[B, C]`, averaged over
/// the batch: `½·KL(p‖m) + ½·KL(q‖m)`, `m = (p + q)/2`.
fn js_divergence(z1: &Tensor, z2: &Tensor) -> Result<Tensor> {
    let p = z1.f_softmax(-1, Kind::Float)?;
    let q = z2.f_softmax(-1, Kind::Float)?;
    let log_m = p.f_add(&q)?.f_mul_scalar(0.5)?.f_clamp_min(1e-12)?.f_log()?;
    let kl = |x: &Tensor| -> Result<Tensor> { Ok(x.f_mul(&x.f_clamp_min(1e-12)?.f_log()?.f_sub(&log_m)?)?.f_sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)?) };
    Ok(kl(&p)?.f_add(&kl(&q)?)?.f_mean(Kind::Float)?.f_mul_scalar(0.5)?)
}

impl Objective for Cutoff {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor> {
        let emb = require_embedding_input(cx.model, "cutoff")?;
        let (ids, mask) = (&batch.input_ids, &batch.attention_mask);
        let e = emb.embed(ids, true)?;
        let dim = e.size()[2] as usize;
        let (keep, cut_mask) = self.keep_masks(cx.rng(), batch, dim)?;
        let z = emb.forward_embedded(&e, mask, true)?;
        let z_cut = emb.forward_embedded(&e.f_mul(&keep)?, &cut_mask, true)?;
        let ce = self.ce.of_logits(&z, &batch.labels)?;
        let ce_cut = self.ce.of_logits(&z_cut, &batch.labels)?;
        let js = js_divergence(&z, &z_cut)?;
        self.last = [value(&ce)?, value(&ce_cut)?, value(&js)?];
        Ok(ce.f_add(&ce_cut.f_mul_scalar(self.config.ce_weight)?)?.f_add(&js.f_mul_scalar(self.config.js_weight)?)?)
    }

    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let loss = self.loss(cx, batch)?;
        let [ce, ce_cut, js] = self.last;
        Ok(backward_weighted(&loss, weight)?.with_term("ce", ce).with_term("cutoff_ce", ce_cut).with_term("cutoff_js", js))
    }
}
