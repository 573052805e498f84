//! Multi-task learning in the one training loop: a [`MultiTaskObjective`] over a model with
//! one head per task ([`whetstone_models::MultiHead`]) and batches from a
//! [`whetstone_data::MultiTaskSource`], whose entries name their task as `stream`.
//!
//! Each micro-batch trains its own task's head: cross-entropy for a sequence task,
//! token-level cross-entropy (positions labelled -100 ignored) for a token task. The tasks'
//! losses are combined by a [`Weighting`]:
//!
//! * `fixed`: `Σ w_i L_i` with the tasks' weights;
//! * `uncertainty` (Kendall et al. 2018): `Σ exp(−s_i) L_i + s_i`, `s_i` learned ([`Uncertainty`]);
//! * `gradnorm` (Chen et al. 2018): weights that balance the tasks' gradient norms on the last
//!   shared layer ([`gradnorm_update`]), measured per step from the change each micro-batch
//!   makes to that layer's gradient;
//! * `pcgrad` (Yu et al. 2020): each task's gradient of the shared encoder is kept apart and
//!   the conflicting ones projected ([`pcgrad_project`]) before the optimiser step.
//!
//! GradNorm and PCGrad compare the tasks within an optimiser step, so they need several tasks
//! in each step: use round-robin sampling with `train.grad_accum` = the number of tasks.
//!
//! Validation scores every task on its own validation set and logs `<task>_<metric>` and
//! `<task>_loss` for each; the number that selects the best checkpoint is one task's metric
//! or the mean over the tasks ([`Select`]).

mod pcgrad;
mod validate;
mod weighting;

pub use pcgrad::{pcgrad_project, random_orders};
pub use validate::{score_task, TaskEval, TaskScores};
pub use weighting::{gradnorm_update, Uncertainty, Weighting};

use crate::context::{EvalContext, StepContext};
use crate::error::{Result, TrainError};
use crate::objective::{Objective, StepLoss, Validation};
use crate::state::StrategyState;
use pcgrad::PcGrad;
use serde_json::json;
use tch::{Kind, Tensor};
use weighting::GradNorm;
use whetstone_data::conll::IGNORE_INDEX;
use whetstone_data::{Batch, Encoded};
use whetstone_models::{require_multi_head, HeadKind, MultiHead};

/// One task as the objective sees it.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// The task's name (its head's name).
    pub name: String,
    /// Sequence or token classification.
    pub kind: HeadKind,
    /// Fixed weight of the task's loss (used by `fixed`; 1 by default).
    pub weight: f64,
    /// The validation metric: `accuracy`, `macro_f1`, `mcc` (sequence) or `entity_f1` (token).
    pub metric: String,
    /// The task's validation data.
    pub valid: TaskEval,
}

/// What selects the best checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Task `i`'s metric.
    Task(usize),
    /// The mean of every task's metric.
    Mean,
}

#[derive(Debug)]
enum Balance {
    Fixed,
    Uncertainty(Uncertainty),
    GradNorm(GradNorm),
    PcGrad(PcGrad),
}

/// The multi-task objective (see the module page).
#[derive(Debug)]
pub struct MultiTaskObjective {
    tasks: Vec<TaskSpec>,
    select: Select,
    balance: Balance,
    /// The step whose micro-batches are being accumulated.
    current_step: Option<u64>,
}

/// The mean loss of a task's `logits` against `labels`: `[B, C]` against `[B]`, or `[B, T, C]`
/// against `[B, T]` with [`IGNORE_INDEX`] positions left out (a batch without any labelled
/// position has loss 0, with a graph).
pub fn task_loss(kind: HeadKind, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let logits = logits.f_to_kind(Kind::Float)?;
    match kind {
        HeadKind::Sequence => Ok(logits.f_cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, IGNORE_INDEX, 0.0)?),
        HeadKind::Token => {
            let c = *logits.size().last().unwrap_or(&1);
            let labels = labels.f_reshape([-1])?;
            if labels.f_ne(IGNORE_INDEX)?.f_sum(Kind::Int64)?.f_int64_value(&[])? == 0 {
                return Ok(logits.f_sum(Kind::Float)?.f_mul_scalar(0.0)?);
            }
            Ok(logits.f_reshape([-1, c])?.f_cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, IGNORE_INDEX, 0.0)?)
        }
    }
}

impl MultiTaskObjective {
    /// An objective over `tasks` (in the model's head order) combined by `weighting`,
    /// selecting checkpoints by `select`.
    pub fn new(tasks: Vec<TaskSpec>, weighting: Weighting, select: Select) -> Result<Self> {
        if tasks.is_empty() {
            return Err(TrainError::Config("multi-task learning needs at least one [[tasks]] entry".into()));
        }
        if let Select::Task(i) = select {
            if i >= tasks.len() {
                return Err(TrainError::Config(format!("multitask.select: task index {i} is out of range for {} tasks", tasks.len())));
            }
        }
        for t in &tasks {
            let ok = match t.kind {
                HeadKind::Sequence => ["accuracy", "macro_f1", "mcc"].contains(&t.metric.as_str()),
                HeadKind::Token => ["entity_f1", "f1", "precision", "recall"].contains(&t.metric.as_str()),
            };
            if !ok {
                return Err(TrainError::Config(format!("task `{}`: metric `{}` does not fit a {:?} task (sequence: accuracy, macro_f1, mcc; token: entity_f1)", t.name, t.metric, t.kind)));
            }
            if !(t.weight >= 0.0 && t.weight.is_finite()) {
                return Err(TrainError::Config(format!("task `{}`: weight must be >= 0, got {}", t.name, t.weight)));
            }
        }
        let k = tasks.len();
        let balance = match weighting {
            Weighting::Fixed => Balance::Fixed,
            Weighting::Uncertainty { lr } => Balance::Uncertainty(Uncertainty::new(k, lr)?),
            Weighting::GradNorm { alpha, lr } => Balance::GradNorm(GradNorm::new(k, alpha, lr)),
            Weighting::PcGrad => Balance::PcGrad(PcGrad::default()),
        };
        Ok(Self { tasks, select, balance, current_step: None })
    }

    /// The tasks.
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    /// The current weight of each task's loss: the fixed weights, `exp(−s_i)` under
    /// uncertainty weighting, GradNorm's `w_i`; 1 under PCGrad.
    pub fn task_weights(&self) -> Result<Vec<f64>> {
        Ok(match &self.balance {
            Balance::Fixed => self.tasks.iter().map(|t| t.weight).collect(),
            Balance::Uncertainty(u) => u.weights()?,
            Balance::GradNorm(g) => g.weights.clone(),
            Balance::PcGrad(_) => vec![1.0; self.tasks.len()],
        })
    }

    /// Uncertainty weighting's log-variances `s`, if that is the weighting.
    pub fn log_var(&self) -> Option<&Tensor> {
        match &self.balance {
            Balance::Uncertainty(u) => Some(&u.log_var),
            _ => None,
        }
    }

    fn task_of(&self, batch: &Batch) -> Result<usize> {
        if batch.stream >= self.tasks.len() {
            return Err(TrainError::Config(format!("a batch of stream {} reached a multi-task objective of {} tasks", batch.stream, self.tasks.len())));
        }
        Ok(batch.stream)
    }

    /// The unweighted loss of `batch` on its task's head.
    fn raw_loss(&self, cx: &StepContext<'_>, batch: &Batch) -> Result<(usize, Tensor)> {
        let mh = require_multi_head(cx.model, "multi-task learning")?;
        let task = self.task_of(batch)?;
        check_heads(mh, &self.tasks)?;
        let logits = mh.forward_task(task, &batch.input_ids, &batch.attention_mask, true)?;
        Ok((task, task_loss(self.tasks[task].kind, &logits, &batch.labels)?))
    }

    /// At the first micro-batch of a step, clear what the previous step accumulated.
    fn begin(&mut self, step: u64) -> Result<()> {
        if self.current_step == Some(step) {
            return Ok(());
        }
        self.current_step = Some(step);
        let k = self.tasks.len();
        match &mut self.balance {
            Balance::Fixed => {}
            Balance::Uncertainty(u) => u.zero_grad()?,
            Balance::GradNorm(g) => g.reset(),
            Balance::PcGrad(p) => p.reset(k),
        }
        Ok(())
    }
}

/// The model's heads must be the objective's tasks, in order.
fn check_heads(mh: &dyn MultiHead, tasks: &[TaskSpec]) -> Result<()> {
    let heads = mh.tasks();
    if heads.len() != tasks.len() || heads.iter().zip(tasks).any(|(h, t)| h.name != t.name || h.kind != t.kind) {
        return Err(TrainError::Config(format!(
            "the model's heads ({}) are not the objective's tasks ({})",
            heads.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", "),
            tasks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

fn trainable(params: Vec<(String, Tensor)>) -> Vec<Tensor> {
    params.into_iter().map(|(_, t)| t).filter(Tensor::requires_grad).collect()
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.f_detach()?.f_to_kind(Kind::Double)?.f_double_value(&[])?)
}

impl Objective for MultiTaskObjective {
    /// The task's loss as this weighting counts it: `w_i L_i` (fixed, GradNorm),
    /// `exp(−s_i) L_i + s_i` (uncertainty), `L_i` (PCGrad).
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor> {
        let (task, loss) = self.raw_loss(cx, batch)?;
        Ok(match &self.balance {
            Balance::Fixed => loss.f_mul_scalar(self.tasks[task].weight)?,
            Balance::Uncertainty(u) => u.weigh(task, &loss)?,
            Balance::GradNorm(g) => loss.f_mul_scalar(g.weights[task])?,
            Balance::PcGrad(_) => loss,
        })
    }

    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        self.begin(cx.step)?;
        let (task, raw) = self.raw_loss(cx, batch)?;
        let value = scalar(&raw)?;
        let name = format!("{}_loss", self.tasks[task].name);
        if !value.is_finite() {
            return Ok(StepLoss::new(value));
        }
        let mh = require_multi_head(cx.model, "multi-task learning")?;
        let total = match &mut self.balance {
            Balance::Fixed => {
                let l = raw.f_mul_scalar(self.tasks[task].weight)?;
                l.f_mul_scalar(weight)?.f_backward()?;
                scalar(&l)?
            }
            Balance::Uncertainty(u) => {
                let l = u.weigh(task, &raw)?;
                l.f_mul_scalar(weight)?.f_backward()?;
                scalar(&l)?
            }
            Balance::GradNorm(g) => {
                let last = trainable(mh.last_shared_parameters());
                let before = GradNorm::snapshot(&last)?;
                let w = g.weights[task];
                raw.f_mul_scalar(w * weight)?.f_backward()?;
                g.record(task, value, weight, &before, &last)?;
                w * value
            }
            Balance::PcGrad(p) => {
                raw.f_mul_scalar(weight)?.f_backward()?;
                p.take(task, &trainable(mh.shared_parameters()))?;
                value
            }
        };
        Ok(StepLoss::new(total).with_term(name, value))
    }

    fn before_update(&mut self, cx: &mut StepContext<'_>) -> Result<()> {
        if let Balance::PcGrad(p) = &mut self.balance {
            let mh = require_multi_head(cx.model, "PCGrad")?;
            let shared = trainable(mh.shared_parameters());
            p.apply(&shared, cx.rng())?;
        }
        Ok(())
    }

    fn after_update(&mut self, _cx: &mut StepContext<'_>) -> Result<()> {
        match &mut self.balance {
            Balance::Uncertainty(u) => u.step(),
            Balance::GradNorm(g) => g.update(),
            _ => Ok(()),
        }
    }

    /// Every task's metric on its own validation set; the selected one (or the mean) picks
    /// the checkpoint. The trainer's `valid` split is not used.
    fn validate(&mut self, cx: &EvalContext<'_>, _valid: &Encoded) -> Result<Validation> {
        let mh = require_multi_head(cx.model, "multi-task validation")?;
        check_heads(mh, &self.tasks)?;
        let mut record = serde_json::Map::new();
        let mut metrics = Vec::with_capacity(self.tasks.len());
        let mut parts = Vec::new();
        for (i, t) in self.tasks.iter().enumerate() {
            let (scores, loss) = score_task(mh, i, &t.valid, cx.batch_size, cx.device)?;
            let m = scores.metric(&t.metric).unwrap_or(f64::NAN);
            record.insert(format!("{}_{}", t.name, t.metric), json!(m));
            record.insert(format!("{}_loss", t.name), json!(loss));
            parts.push(format!("{} {} {m:.4}", t.name, t.metric));
            metrics.push(m);
        }
        let mean = metrics.iter().sum::<f64>() / metrics.len() as f64;
        let metric = match self.select {
            Select::Task(i) => metrics[i],
            Select::Mean => mean,
        };
        record.insert("mean".into(), json!(mean));
        record.insert("score".into(), json!(metric));
        for (t, w) in self.tasks.iter().zip(self.task_weights()?) {
            record.insert(format!("{}_weight", t.name), json!(w));
        }
        Ok(Validation { metric, summary: parts.join("  "), record })
    }

    fn state(&self) -> Result<StrategyState> {
        Ok(match &self.balance {
            Balance::Fixed | Balance::PcGrad(_) => StrategyState::default(),
            Balance::Uncertainty(u) => StrategyState::default().with_tensor("log_var", &u.log_var),
            Balance::GradNorm(g) => StrategyState::default().with_value("weights", &g.weights).with_value("initial_losses", &g.initial),
        })
    }

    fn load_state(&mut self, state: &StrategyState) -> Result<()> {
        match &mut self.balance {
            Balance::Fixed => state.expect_empty("fixed multi-task weighting"),
            Balance::PcGrad(_) => state.expect_empty("PCGrad"),
            Balance::Uncertainty(u) => state.copy_into("log_var", &u.log_var),
            Balance::GradNorm(g) => {
                let weights: Vec<f64> = state.value("weights")?;
                let initial: Vec<Option<f64>> = state.value("initial_losses")?;
                if weights.len() != g.weights.len() || initial.len() != g.weights.len() {
                    return Err(TrainError::State(format!("GradNorm state for {} tasks, the run has {}", weights.len(), g.weights.len())));
                }
                (g.weights, g.initial) = (weights, initial);
                Ok(())
            }
        }
    }
}
