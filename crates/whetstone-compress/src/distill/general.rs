//! Task-agnostic ("general") distillation of one Transformer encoder into another on
//! unlabelled text (TinyBERT's general distillation, Jiao et al. 2020): the student learns the
//! teacher's embedding output, its mapped layers' hidden states (through learned projections
//! when the widths differ) and its attention maps. No labels, no logits, no MLM head.

use super::loss::{attention_loss, hidden_mse, AttentionLoss};
use super::projections;
use super::mapping::LayerMapping;
use crate::error::{CompressError, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{nn, Tensor};
use whetstone_data::{make_batch, Batch, BucketBatcher, Encoded};
use whetstone_models::{require_transformer_encoder, EncoderOutput, TransformerEncoder};
use whetstone_train::{backward_weighted, EvalContext, Objective, StepContext, StepLoss, StrategyState, Validation};

/// The weights and settings of general distillation. The loss is
/// `embedding·MSE(W_e e_s, e_t) + hidden·Σ MSE(W_h h_s, h_t) + attention·Σ A(a_s, a_t)`, the
/// sums running over the mapped `(student, teacher)` layer pairs; `W_e`, `W_h` are learned
/// projections student→teacher width (absent when the widths match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneralDistillConfig {
    /// Weight of the embedding-output MSE (default 1).
    pub embedding: f64,
    /// Weight of the hidden-state MSE summed over mapped layers (default 1).
    pub hidden: f64,
    /// Weight of the attention loss summed over mapped layers (default 1).
    pub attention: f64,
    /// How attention maps are compared: `kl` (default; KL(teacher ‖ student) per query row, as
    /// MiniLM) or `mse` (of the probabilities). With different head counts the maps are first
    /// averaged over heads ([`attention_loss`]).
    pub attention_loss: AttentionLoss,
    /// Which teacher layer each student layer learns from: `uniform` (default), `last` or
    /// explicit 0-based pairs `s:t,s:t,…`.
    pub mapping: LayerMapping,
}

impl Default for GeneralDistillConfig {
    fn default() -> Self {
        Self { embedding: 1.0, hidden: 1.0, attention: 1.0, attention_loss: AttentionLoss::Kl, mapping: LayerMapping::Uniform }
    }
}

impl GeneralDistillConfig {
    /// Weights finite and non-negative, and at least one of them on.
    pub fn validate(&self) -> Result<()> {
        for (name, w) in [("embedding", self.embedding), ("hidden", self.hidden), ("attention", self.attention)] {
            if !w.is_finite() || w < 0.0 {
                return Err(CompressError::Config(format!("general distillation weight `{name}` must be finite and >= 0, got {w}")));
            }
        }
        if self.embedding == 0.0 && self.hidden == 0.0 && self.attention == 0.0 {
            return Err(CompressError::Config("general distillation needs at least one of the embedding, hidden and attention weights above 0".into()));
        }
        Ok(())
    }
}

/// The unweighted terms of one loss (or their means over a validation set).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GeneralTerms {
    /// Weighted total.
    pub total: f64,
    /// Embedding-output MSE.
    pub embedding: f64,
    /// Hidden-state MSE summed over the mapped layers.
    pub hidden: f64,
    /// Attention loss summed over the mapped layers.
    pub attention: f64,
}

/// General distillation as an [`Objective`]: the trainer's model is the student encoder (a
/// bare [`TransformerEncoder`]); the teacher encoder runs in evaluation mode under `no_grad`.
///
/// The projections live in [`GeneralDistillObjective::projections`], a store of their own, so
/// that the student's store (and the exported encoder) holds the student alone: give the
/// optimiser both stores (`whetstone_compress::build_optimizer(&optim, &[&student_vs,
/// objective.projections()])`). They are the strategy's state ([`Objective::state`]), so
/// every trainer checkpoint carries them and a resumed run continues exactly. Validation
/// reports the mean terms (`gd_loss`, `gd_embedding`, `gd_hidden`, `gd_attention`) and selects
/// the weights with the lowest total.
#[derive(Debug)]
pub struct GeneralDistillObjective {
    teacher: TransformerEncoder,
    _teacher_vs: Option<nn::VarStore>,
    config: GeneralDistillConfig,
    pairs: Vec<(usize, usize)>,
    projections: nn::VarStore,
    hidden_proj: Option<nn::Linear>,
    embedding_proj: Option<nn::Linear>,
    last: GeneralTerms,
}

fn value(t: &Tensor) -> Result<f64> {
    Ok(t.f_detach()?.f_to_kind(tch::Kind::Double)?.f_double_value(&[])?)
}

fn project(p: &Option<nn::Linear>, x: &Tensor) -> Result<Tensor> {
    Ok(match p {
        Some(l) => x.f_linear(&l.ws, l.bs.as_ref())?,
        None => x.shallow_clone(),
    })
}

impl GeneralDistillObjective {
    /// Pair `teacher` (whose variables live in `teacher_vs`, kept alive here and frozen) with
    /// `student`. They must share the vocabulary (the student uses the teacher's tokenizer)
    /// and be post-LayerNorm or pre-LayerNorm alike; the mapping must fit their depths.
    /// Projections are created on the student's device when the widths differ.
    pub fn new(teacher: TransformerEncoder, teacher_vs: Option<nn::VarStore>, student: &TransformerEncoder, config: GeneralDistillConfig) -> Result<Self> {
        config.validate()?;
        let (tv, sv) = (teacher.vocab_size(), student.vocab_size());
        if tv != sv {
            return Err(CompressError::Mismatch(format!("vocabulary sizes differ (teacher {tv}, student {sv}): the student must use the teacher's tokenizer")));
        }
        let (tc, sc) = (teacher.config(), student.config());
        let pairs = config.mapping.resolve(sc.layers, tc.layers)?;
        let mut teacher_vs = teacher_vs;
        if let Some(vs) = teacher_vs.as_mut() {
            vs.freeze();
        }
        let device = student.embeddings().word_weight().device();
        let projections = nn::VarStore::new(device);
        let (mut hidden_proj, mut embedding_proj) = (None, None);
        let (sh, th) = (sc.hidden as i64, tc.hidden as i64);
        if sh != th {
            let root = projections.root() / "projection";
            let cfg = nn::LinearConfig::default();
            hidden_proj = (config.hidden != 0.0).then(|| nn::linear(&root / "hidden", sh, th, cfg));
            embedding_proj = (config.embedding != 0.0).then(|| nn::linear(&root / "embedding", sh, th, cfg));
        }
        Ok(Self { teacher, _teacher_vs: teacher_vs, config, pairs, projections, hidden_proj, embedding_proj, last: GeneralTerms::default() })
    }

    /// The store holding the learned projections (empty when the widths match).
    pub fn projections(&self) -> &nn::VarStore {
        &self.projections
    }

    /// Resolved `(student layer, teacher layer)` pairs, 0-based.
    pub fn pairs(&self) -> &[(usize, usize)] {
        &self.pairs
    }

    /// The teacher encoder.
    pub fn teacher(&self) -> &TransformerEncoder {
        &self.teacher
    }

    /// The terms of the last training loss.
    pub fn last_terms(&self) -> GeneralTerms {
        self.last
    }

    /// The loss of `student` on `batch` (dropout on with `train`) and its terms.
    pub fn compute(&self, student: &TransformerEncoder, batch: &Batch, train: bool) -> Result<(Tensor, GeneralTerms)> {
        let (ids, mask) = (&batch.input_ids, &batch.attention_mask);
        let want_attn = self.config.attention != 0.0;
        let t_out = tch::no_grad(|| self.teacher.forward_hidden_states(ids, mask, false, want_attn))?;
        let s_out = student.forward_hidden_states(ids, mask, train, want_attn)?;
        self.loss_of(&s_out, &t_out, mask)
    }

    fn loss_of(&self, s: &EncoderOutput, t: &EncoderOutput, mask: &Tensor) -> Result<(Tensor, GeneralTerms)> {
        let mut terms = GeneralTerms::default();
        let mut total: Option<Tensor> = None;
        let mut add = |l: Tensor, w: f64| -> Result<()> {
            let wl = l.f_mul_scalar(w)?;
            total = Some(match total.take() {
                Some(t) => t.f_add(&wl)?,
                None => wl,
            });
            Ok(())
        };
        if self.config.embedding != 0.0 {
            let l = hidden_mse(&project(&self.embedding_proj, &s.hidden_states[0])?, &t.hidden_states[0], mask)?;
            terms.embedding = value(&l)?;
            add(l, self.config.embedding)?;
        }
        for &(si, ti) in &self.pairs {
            if self.config.hidden != 0.0 {
                let l = hidden_mse(&project(&self.hidden_proj, &s.hidden_states[si + 1])?, &t.hidden_states[ti + 1], mask)?;
                terms.hidden += value(&l)?;
                add(l, self.config.hidden)?;
            }
            if self.config.attention != 0.0 {
                let l = attention_loss(&s.attentions[si], &t.attentions[ti], mask, self.config.attention_loss)?;
                terms.attention += value(&l)?;
                add(l, self.config.attention)?;
            }
        }
        let total = total.ok_or_else(|| CompressError::Config("general distillation has no term switched on".into()))?;
        terms.total = value(&total)?;
        Ok((total, terms))
    }

    /// Mean terms of `student` on `data` (no dropout), weighted by each batch's real tokens.
    pub fn score(&self, student: &TransformerEncoder, data: &Encoded, batch_size: usize, device: tch::Device) -> Result<GeneralTerms> {
        let order = BucketBatcher::new(batch_size.max(1), 1).eval_order(&data.lengths());
        let (mut sum, mut weight) = (GeneralTerms::default(), 0.0);
        tch::no_grad(|| -> Result<()> {
            for idx in &order {
                let batch = make_batch(data, idx, device)?;
                let (_, t) = self.compute(student, &batch, false)?;
                let w = value(&batch.attention_mask.f_sum(tch::Kind::Float)?)?;
                sum.total += w * t.total;
                sum.embedding += w * t.embedding;
                sum.hidden += w * t.hidden;
                sum.attention += w * t.attention;
                weight += w;
            }
            Ok(())
        })?;
        let w = weight.max(1.0);
        Ok(GeneralTerms { total: sum.total / w, embedding: sum.embedding / w, hidden: sum.hidden / w, attention: sum.attention / w })
    }
}

const NEEDED_BY: &str = "general distillation";

impl Objective for GeneralDistillObjective {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> whetstone_train::Result<Tensor> {
        let student = require_transformer_encoder(cx.model, NEEDED_BY)?;
        let (loss, terms) = self.compute(student, batch, true)?;
        self.last = terms;
        Ok(loss)
    }

    /// The default backward, with the terms logged (`gd_embedding`, `gd_hidden`,
    /// `gd_attention` for those switched on).
    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> whetstone_train::Result<StepLoss> {
        let loss = self.loss(cx, batch)?;
        let t = self.last;
        let mut out = backward_weighted(&loss, weight)?;
        for (name, w, v) in [("gd_embedding", self.config.embedding, t.embedding), ("gd_hidden", self.config.hidden, t.hidden), ("gd_attention", self.config.attention, t.attention)] {
            if w != 0.0 {
                out = out.with_term(name, v);
            }
        }
        Ok(out)
    }

    /// Mean distillation loss on the validation windows; lower is better.
    fn validate(&mut self, cx: &EvalContext<'_>, valid: &Encoded) -> whetstone_train::Result<Validation> {
        let student = require_transformer_encoder(cx.model, NEEDED_BY)?;
        let s = self.score(student, valid, cx.batch_size, cx.device)?;
        let record = json!({"gd_loss": s.total, "gd_embedding": s.embedding, "gd_hidden": s.hidden, "gd_attention": s.attention});
        Ok(Validation {
            metric: -s.total,
            summary: format!("valid distillation loss {:.4} (embedding {:.4}, hidden {:.4}, attention {:.4})", s.total, s.embedding, s.hidden, s.attention),
            record: record.as_object().cloned().unwrap_or_default(),
        })
    }

    /// The learned projections (`projection.hidden.weight`, …).
    fn state(&self) -> whetstone_train::Result<StrategyState> {
        Ok(projections::save(&self.projections, StrategyState::default()))
    }

    fn load_state(&mut self, state: &StrategyState) -> whetstone_train::Result<()> {
        projections::load(&self.projections, state, "general distillation")
    }
}
