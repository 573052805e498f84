//! Distillation as a training objective: plugs into whetstone's one training loop.

use super::cache::TeacherCache;
use super::loss::{attention_loss, hidden_mse, logit_distill_loss, DistillConfig};
use crate::error::{CompressError, Result};
use tch::{nn, Device, Tensor};
use whetstone_data::Batch;
use whetstone_models::{TextClassifier, TransformerClassifier};
use whetstone_train::Objective;

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

/// Knowledge distillation as an [`Objective`]: the trainer passes the student; the teacher runs
/// in evaluation mode under `no_grad` (or its logits come from a [`TeacherCache`]).
///
/// When the widths differ, hidden and embedding states go through learned projections
/// student→teacher width (TinyBERT's W_h, W_e). They live in [`DistillObjective::projections`],
/// a separate store, so the student's checkpoint stays an ordinary model: add its variables
/// to the optimiser's parameters (`named_params(objective.projections(), …)`). They are not
/// part of the trainer's checkpoint, so a resumed run restarts them.
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

impl DistillObjective {
    /// Pair `teacher` with `student` (whose shape it checks: same vocabulary and labels; for
    /// intermediate-layer terms both must be [`TransformerClassifier`]s and the mapping must fit).
    pub fn new(teacher: Box<dyn TextClassifier>, student: &dyn TextClassifier, config: DistillConfig) -> Result<Self> {
        let mut me = Self {
            teacher,
            config,
            pairs: Vec::new(),
            projections: nn::VarStore::new(Device::Cpu),
            hidden_proj: None,
            embedding_proj: None,
            cache: None,
            step: 0,
            last: DistillTerms::default(),
        };
        let (Some(t), Some(s)) = (me.teacher.as_transformer(), student.as_transformer()) else {
            if me.config.needs_internals() {
                return Err(CompressError::Config("hidden, attention and embedding distillation need a Transformer teacher and student; use logit distillation (their weights 0) for other models".into()));
            }
            return Ok(me);
        };
        check_pair(t, s)?;
        let pairs = me.config.mapping.resolve(s.encoder().config().layers, t.encoder().config().layers)?;
        let (sh, th) = (s.encoder().config().hidden as i64, t.encoder().config().hidden as i64);
        let device = s.head().named_parameters()[0].1.device();
        me.projections = nn::VarStore::new(device);
        if sh != th {
            let root = me.projections.root();
            let cfg = nn::LinearConfig::default();
            me.hidden_proj = (!me.config.hidden.is_zero()).then(|| nn::linear(&root / "hidden", sh, th, cfg));
            me.embedding_proj = (!me.config.embedding.is_zero()).then(|| nn::linear(&root / "embedding", sh, th, cfg));
        }
        me.pairs = pairs;
        Ok(me)
    }

    /// Use cached teacher logits where the batch's examples are in `cache` (only when no
    /// intermediate-layer term is on: those need the teacher's forward pass anyway).
    pub fn with_cache(mut self, cache: TeacherCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The store holding the learned projections (empty when widths match).
    pub fn projections(&self) -> &nn::VarStore {
        &self.projections
    }

    /// Resolved `(student layer, teacher layer)` pairs.
    pub fn pairs(&self) -> &[(usize, usize)] {
        &self.pairs
    }

    /// Steps taken (schedules are evaluated at this step).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The terms of the last loss.
    pub fn last_terms(&self) -> DistillTerms {
        self.last
    }

    /// The loss of one batch, with errors (the [`Objective`] impl panics on them instead).
    pub fn try_loss(&mut self, student: &dyn TextClassifier, batch: &Batch) -> Result<Tensor> {
        let step = self.step;
        let (temperature, alpha) = (self.config.temperature.at(step), self.config.alpha.at(step));
        let mask = &batch.attention_mask;
        let mut terms = DistillTerms::default();
        let total = if !self.config.needs_internals() && alpha == 1.0 {
            // Hard labels only: the teacher is not needed.
            let logits = student.forward_t(&batch.input_ids, mask, true)?;
            let l = logit_distill_loss(&logits, &logits.detach(), &batch.labels, temperature, 1.0)?;
            terms.logits = l.double_value(&[]);
            l
        } else if !self.config.needs_internals() {
            let cached = match &self.cache {
                Some(c) => c.lookup(batch)?,
                None => None,
            };
            let teacher_logits = match cached {
                Some(l) => l,
                None => tch::no_grad(|| self.teacher.forward_t(&batch.input_ids, mask, false))?,
            };
            let logits = student.forward_t(&batch.input_ids, mask, true)?;
            let l = logit_distill_loss(&logits, &teacher_logits, &batch.labels, temperature, alpha)?;
            terms.logits = l.double_value(&[]);
            l
        } else {
            let t = self.teacher.as_transformer().ok_or_else(|| CompressError::Config("the teacher is not a Transformer".into()))?;
            let s = student.as_transformer().ok_or_else(|| CompressError::Config("the student is not a Transformer".into()))?;
            let want_attn = !self.config.attention.is_zero();
            let (t_logits, t_out) = tch::no_grad(|| t.forward_detailed(&batch.input_ids, mask, false, want_attn))?;
            let (s_logits, s_out) = s.forward_detailed(&batch.input_ids, mask, true, want_attn)?;
            let mut total = logit_distill_loss(&s_logits, &t_logits, &batch.labels, temperature, alpha)?;
            terms.logits = total.double_value(&[]);
            let project = |p: &Option<nn::Linear>, x: &Tensor| match p {
                Some(l) => x.apply(l),
                None => x.shallow_clone(),
            };
            let w = self.config.hidden.at(step);
            if w != 0.0 {
                for &(si, ti) in &self.pairs {
                    let l = hidden_mse(&project(&self.hidden_proj, &s_out.hidden_states[si + 1]), &t_out.hidden_states[ti + 1], mask)?;
                    terms.hidden += l.double_value(&[]);
                    total += l * w;
                }
            }
            let w = self.config.attention.at(step);
            if w != 0.0 {
                for &(si, ti) in &self.pairs {
                    let l = attention_loss(&s_out.attentions[si], &t_out.attentions[ti], mask, self.config.attention_loss)?;
                    terms.attention += l.double_value(&[]);
                    total += l * w;
                }
            }
            let w = self.config.embedding.at(step);
            if w != 0.0 {
                let l = hidden_mse(&project(&self.embedding_proj, &s_out.hidden_states[0]), &t_out.hidden_states[0], mask)?;
                terms.embedding = l.double_value(&[]);
                total += l * w;
            }
            total
        };
        terms.total = total.double_value(&[]);
        self.last = terms;
        self.step += 1;
        Ok(total)
    }
}

/// Teacher and student must share the vocabulary, the labels and the sequence length.
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
    fn loss(&mut self, model: &dyn TextClassifier, batch: &Batch) -> Tensor {
        self.try_loss(model, batch).unwrap_or_else(|e| panic!("distillation loss: {e}"))
    }
}
