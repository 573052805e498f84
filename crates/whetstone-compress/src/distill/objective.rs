//! Distillation as a training strategy: plugs into whetstone's one training loop.

use super::cache::TeacherCache;
use super::projections;
use super::loss::{attention_loss, hidden_mse, logit_distill_loss, DistillConfig};
use crate::error::{CompressError, Result};
use tch::{nn, Device, Tensor};
use whetstone_data::Batch;
use whetstone_models::{require_layer_outputs, TextClassifier, TransformerClassifier};
use whetstone_train::{backward_weighted, Objective, StepContext, StepLoss, StrategyState};

/// The terms of the last loss, for logging.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DistillTerms {
    /// Weighted total.
    pub total: f64,
    /// `alpha·CE + (1 − alpha)·KD`.
    pub logits: f64,
    /// Unweighted sum of hidden-state MSEs over mapped layers.
    pub hidden: f64,
    /// Unweighted sum of attention losses over mapped layers.
    pub attention: f64,
    /// Unweighted embedding-output MSE.
    pub embedding: f64,
}

/// Name of the step counter in the strategy state.
const STEP_KEY: &str = "step";

/// What the intermediate-layer terms need from both models.
const NEEDS_LAYERS: &str = "hidden-state, attention and embedding distillation";

/// Knowledge distillation as an [`Objective`]: the trainer's model is the student; the teacher
/// runs in evaluation mode under `no_grad` (or its logits come from a [`TeacherCache`]).
///
/// The hidden-state, attention and embedding terms read both models' layers through the
/// [`whetstone_models::LayerOutputs`] capability, which [`DistillObjective::new`] requires of
/// both when one of those terms is on. When the widths differ, hidden and embedding states go
/// through learned projections student→teacher width (TinyBERT's W_h, W_e). They live in
/// [`DistillObjective::projections`], a store of their own, so the student's checkpoint stays
/// an ordinary model: let the optimiser train them too (e.g.
/// `whetstone_compress::build_optimizer(&optim, &[&student_vs, objective.projections()])`).
///
/// The strategy's state ([`Objective::state`]) holds the projections and the step counter
/// that the weight and temperature schedules follow, so a trainer checkpoint carries them and
/// a killed and resumed distillation continues bit-identically.
#[derive(Debug)]
pub struct DistillObjective {
    teacher: Box<dyn TextClassifier>,
    config: DistillConfig,
    pairs: Vec<(usize, usize)>,
    projections: nn::VarStore,
    hidden_proj: Option<nn::Linear>,
    embedding_proj: Option<nn::Linear>,
    cache: Option<TeacherCache>,
    step: u64,
    last: DistillTerms,
}

fn value(t: &Tensor) -> Result<f64> {
    Ok(t.f_detach()?.f_double_value(&[])?)
}

/// Hidden state `i` of `out`, or an error naming `who`.
fn nth<'a>(states: &'a [Tensor], i: usize, what: &str, who: &str) -> Result<&'a Tensor> {
    states.get(i).ok_or_else(|| CompressError::Mismatch(format!("the {who} returned {} {what}, the layer mapping needs #{i}", states.len())))
}

/// The projection `p` of `x`, or `x` itself when the widths match.
fn project(p: &Option<nn::Linear>, x: &Tensor) -> Result<Tensor> {
    Ok(match p {
        Some(l) => x.f_linear(&l.ws, l.bs.as_ref())?,
        None => x.shallow_clone(),
    })
}

impl DistillObjective {
    /// Pair `teacher` with `student`. Two Transformers must share the vocabulary and the labels.
    /// When a hidden-state, attention or embedding term is on, both must offer
    /// [`whetstone_models::LayerOutputs`] (a clear error otherwise) and the layer mapping must
    /// fit their depths; projections are created (on the student's device) when their widths
    /// differ.
    pub fn new(teacher: Box<dyn TextClassifier>, student: &dyn TextClassifier, config: DistillConfig) -> Result<Self> {
        if let (Some(t), Some(s)) = (teacher.as_transformer(), student.as_transformer()) {
            check_pair(t, s)?;
        }
        let device = student.embedding_input().map_or(Device::Cpu, |e| e.word_embeddings().device());
        let mut pairs = Vec::new();
        let mut widths = None;
        if config.needs_internals() {
            let t = require_layer_outputs(teacher.as_ref(), &format!("{NEEDS_LAYERS} (the teacher)"))?;
            let s = require_layer_outputs(student, &format!("{NEEDS_LAYERS} (the student)"))?;
            pairs = config.mapping.resolve(s.num_layers(), t.num_layers())?;
            widths = Some((s.hidden_size() as i64, t.hidden_size() as i64));
        }
        let projections = nn::VarStore::new(device);
        let (mut hidden_proj, mut embedding_proj) = (None, None);
        if let Some((sh, th)) = widths.filter(|(sh, th)| sh != th) {
            let root = projections.root() / "projection";
            let cfg = nn::LinearConfig::default();
            hidden_proj = (!config.hidden.is_zero()).then(|| nn::linear(&root / "hidden", sh, th, cfg));
            embedding_proj = (!config.embedding.is_zero()).then(|| nn::linear(&root / "embedding", sh, th, cfg));
        }
        Ok(Self { teacher, config, pairs, projections, hidden_proj, embedding_proj, cache: None, step: 0, last: DistillTerms::default() })
    }

    /// Use cached teacher logits where the batch's examples are in `cache` (only when no
    /// intermediate-layer term is on: those need the teacher's forward pass anyway). A batch
    /// without example indices, or with an example that is not cached, runs the teacher.
    pub fn with_cache(mut self, cache: TeacherCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The store holding the learned projections (empty when widths match).
    pub fn projections(&self) -> &nn::VarStore {
        &self.projections
    }

    /// Resolved `(student layer, teacher layer)` pairs (empty without intermediate-layer terms).
    pub fn pairs(&self) -> &[(usize, usize)] {
        &self.pairs
    }

    /// Optimiser steps taken ([`Objective::after_update`] counts them); the weight and
    /// temperature schedules are evaluated at this step.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The terms of the last loss.
    pub fn last_terms(&self) -> DistillTerms {
        self.last
    }

    /// The loss of one batch for `student` at the current step (what [`Objective::loss`]
    /// computes with the trainer's model).
    pub fn try_loss(&mut self, student: &dyn TextClassifier, batch: &Batch) -> Result<Tensor> {
        let (total, terms) = self.compute(student, batch)?;
        self.last = terms;
        Ok(total)
    }

    fn compute(&self, student: &dyn TextClassifier, batch: &Batch) -> Result<(Tensor, DistillTerms)> {
        let step = self.step;
        let (temperature, alpha) = (self.config.temperature.at(step), self.config.alpha.at(step));
        let (ids, mask, labels) = (&batch.input_ids, &batch.attention_mask, &batch.labels);
        let mut terms = DistillTerms::default();
        let total = if !self.config.needs_internals() && alpha == 1.0 {
            // Hard labels only: the teacher is not needed.
            let logits = student.forward_t(ids, mask, true)?;
            let l = logit_distill_loss(&logits, &logits.f_detach()?, labels, temperature, 1.0)?;
            terms.logits = value(&l)?;
            l
        } else if !self.config.needs_internals() {
            let cached = match &self.cache {
                Some(c) => c.lookup(batch)?,
                None => None,
            };
            let teacher_logits = match cached {
                Some(l) => l,
                None => tch::no_grad(|| self.teacher.forward_t(ids, mask, false))?,
            };
            let logits = student.forward_t(ids, mask, true)?;
            let l = logit_distill_loss(&logits, &teacher_logits, labels, temperature, alpha)?;
            terms.logits = value(&l)?;
            l
        } else {
            let t = require_layer_outputs(self.teacher.as_ref(), &format!("{NEEDS_LAYERS} (the teacher)"))?;
            let s = require_layer_outputs(student, &format!("{NEEDS_LAYERS} (the student)"))?;
            let want_attn = !self.config.attention.is_zero();
            let (t_logits, t_out) = tch::no_grad(|| t.forward_detailed(ids, mask, false, want_attn))?;
            let (s_logits, s_out) = s.forward_detailed(ids, mask, true, want_attn)?;
            let mut total = logit_distill_loss(&s_logits, &t_logits, labels, temperature, alpha)?;
            terms.logits = value(&total)?;
            let w = self.config.hidden.at(step);
            if w != 0.0 {
                for &(si, ti) in &self.pairs {
                    let hs = project(&self.hidden_proj, nth(&s_out.hidden_states, si + 1, "hidden states", "student")?)?;
                    let l = hidden_mse(&hs, nth(&t_out.hidden_states, ti + 1, "hidden states", "teacher")?, mask)?;
                    terms.hidden += value(&l)?;
                    total = total.f_add(&l.f_mul_scalar(w)?)?;
                }
            }
            let w = self.config.attention.at(step);
            if w != 0.0 {
                for &(si, ti) in &self.pairs {
                    let sa = nth(&s_out.attentions, si, "attention maps", "student")?;
                    let l = attention_loss(sa, nth(&t_out.attentions, ti, "attention maps", "teacher")?, mask, self.config.attention_loss)?;
                    terms.attention += value(&l)?;
                    total = total.f_add(&l.f_mul_scalar(w)?)?;
                }
            }
            let w = self.config.embedding.at(step);
            if w != 0.0 {
                let es = project(&self.embedding_proj, nth(&s_out.hidden_states, 0, "hidden states", "student")?)?;
                let l = hidden_mse(&es, nth(&t_out.hidden_states, 0, "hidden states", "teacher")?, mask)?;
                terms.embedding = value(&l)?;
                total = total.f_add(&l.f_mul_scalar(w)?)?;
            }
            total
        };
        terms.total = value(&total)?;
        Ok((total, terms))
    }
}

/// Teacher and student must share the vocabulary and the labels.
fn check_pair(t: &TransformerClassifier, s: &TransformerClassifier) -> Result<()> {
    let (tv, sv) = (t.encoder().vocab_size(), s.encoder().vocab_size());
    if tv != sv {
        return Err(CompressError::Mismatch(format!("vocabulary sizes differ (teacher {tv}, student {sv}): the student must use the teacher's tokenizer")));
    }
    let (tl, sl) = (t.head().num_labels(), s.head().num_labels());
    if tl != sl {
        return Err(CompressError::Mismatch(format!("label counts differ (teacher {tl}, student {sl})")));
    }
    Ok(())
}

impl Objective for DistillObjective {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> whetstone_train::Result<Tensor> {
        Ok(self.try_loss(cx.model, batch)?)
    }

    /// The default backward, with the loss's terms logged (`distill_logits`, and
    /// `distill_hidden`, `distill_attention`, `distill_embedding` when they are on).
    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> whetstone_train::Result<StepLoss> {
        let loss = self.loss(cx, batch)?;
        let t = self.last;
        let mut out = backward_weighted(&loss, weight)?.with_term("distill_logits", t.logits);
        for (name, on, v) in [
            ("distill_hidden", !self.config.hidden.is_zero(), t.hidden),
            ("distill_attention", !self.config.attention.is_zero(), t.attention),
            ("distill_embedding", !self.config.embedding.is_zero(), t.embedding),
        ] {
            if on {
                out = out.with_term(name, v);
            }
        }
        Ok(out)
    }

    /// Count the optimiser step: the schedules move on.
    fn after_update(&mut self, _cx: &mut StepContext<'_>) -> whetstone_train::Result<()> {
        self.step += 1;
        Ok(())
    }

    /// The step counter and the learned projections (`projection.hidden.weight`, …).
    fn state(&self) -> whetstone_train::Result<StrategyState> {
        Ok(projections::save(&self.projections, StrategyState::default().with_value(STEP_KEY, self.step)))
    }

    fn load_state(&mut self, state: &StrategyState) -> whetstone_train::Result<()> {
        projections::load(&self.projections, state, "distillation")?;
        self.step = state.value(STEP_KEY)?;
        Ok(())
    }
}
