//! The training loop.

use crate::checkpoint::{Checkpoint, BEST_MODEL_FILE, CHECKPOINT_FILE};
use crate::config::TrainConfig;
use crate::context::{EvalContext, StepContext};
use crate::error::{Result, TrainError};
use crate::finite::first_non_finite;
use crate::objective::{CrossEntropy, Objective};
use crate::observer::{Lines, Observer, StepStatus};
use crate::progress::Progress;
use crate::replicas::Replicas;
use crate::scaler::{LossScaleConfig, LossScaler};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn::VarStore, Device, Tensor};
use whetstone_data::{BatchSource, Encoded, Fingerprint, PlanEntry};
use whetstone_eval::{read_jsonl, MetricsLog, TfEventsWriter};
use whetstone_models::{save_varstore, TextClassifier};
use whetstone_optim::{clip_grad_norm, Optimizer, Schedule, Scheduler};
use whetstone_torch_ext::Precision;

/// File name of the metrics log inside a run folder.
pub const METRICS_LOG_FILE: &str = "metrics.jsonl";

/// How a call to [`Trainer::fit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All epochs ran.
    Finished,
    /// Early stopping ended the run.
    StoppedEarly,
    /// [`Trainer::stop_after`] cut the run short (as a kill would).
    Interrupted,
}

/// What [`Trainer::fit`] reports.
#[derive(Debug, Clone)]
pub struct FitSummary {
    pub outcome: Outcome,
    pub progress: Progress,
    pub total_steps: u64,
    /// Training throughput of this session (examples per second, excluding evaluation).
    pub seq_per_s: f64,
    /// Share of padding tokens in the first epoch's batches.
    pub padding_fraction: f64,
}

/// What one optimiser step did ([`Trainer::train_step`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Mean loss over the step's examples.
    pub loss: f64,
    /// The learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping (when clipping is on).
    pub grad_norm: Option<f64>,
    /// Examples in the step.
    pub examples: usize,
    /// Named parts of the loss (example-weighted means), from [`crate::StepLoss::terms`].
    pub terms: Vec<(String, f64)>,
    /// True when loss scaling found an overflow and the update was skipped.
    pub skipped: bool,
}

/// Drives any [`TextClassifier`] with any [`Optimizer`], [`Schedule`] and [`Objective`], on
/// batches from any [`BatchSource`].
///
/// Seeded and bit-reproducible on CPU: the data plan of each epoch is a function of
/// `(seed, epoch)` and the random streams are reseeded from `(seed, step)` before every step,
/// so a checkpoint only needs the step, the position and the strategy's state to resume
/// exactly.
///
/// ```no_run
/// # fn demo(model: &dyn whetstone_models::TextClassifier, vs: &tch::nn::VarStore, train: &whetstone_data::Encoded, valid: &whetstone_data::Encoded) -> whetstone_train::Result<()> {
/// use whetstone_data::BucketedSource;
/// use whetstone_optim::{OptimConfig, Schedule};
/// use whetstone_train::{CrossEntropy, TrainConfig, Trainer};
/// let optim = OptimConfig::default().build(vs)?;
/// let config = TrainConfig { epochs: 3, ..Default::default() };
/// let mut trainer = Trainer::new(model, vs, optim, 1e-3, "runs/demo")
///     .objective(CrossEntropy { label_smoothing: 0.1 })
///     .schedule(Schedule::WarmupLinear { warmup_steps: None, warmup_ratio: 0.1 })
///     .config(config.clone())
///     .seed(42);
/// let summary = trainer.fit(&BucketedSource::new(train, config.batch_size, config.bucket_factor), valid, false)?;
/// println!("{} steps", summary.progress.step);
/// # Ok(()) }
/// ```
pub struct Trainer<'a> {
    model: &'a dyn TextClassifier,
    vs: &'a VarStore,
    optim: Box<dyn Optimizer>,
    objective: Box<dyn Objective>,
    schedule: Schedule,
    lr: f64,
    config: TrainConfig,
    seed: u64,
    device: Device,
    run_dir: PathBuf,
    label_names: Vec<String>,
    observer: Box<dyn Observer>,
    stop_after: u64,
    keep_checkpoint: bool,
    identity: BTreeMap<String, String>,
    last_good: Option<PathBuf>,
    precision: Precision,
    scaler: Option<LossScaler>,
    replicas: Option<&'a mut dyn Replicas>,
    /// Set by a step when this process (or, data-parallel, any replica) was asked to stop.
    stop_agreed: bool,
}

/// Optimiser steps in one epoch of `source` under `config`: what [`Trainer::fit`] takes per
/// epoch (micro-batches of the first epoch's plan, grouped by `grad_accum`), for settings
/// counted in epochs that must become steps, such as [`crate::FinetuneConfig`]'s.
pub fn steps_per_epoch(config: &TrainConfig, source: &dyn BatchSource, seed: u64) -> Result<u64> {
    Ok(source.epoch_plan(seed, 0)?.len().div_ceil(config.grad_accum.max(1)) as u64)
}

/// Seed of the random stream for `step`: distinct per step, fixed by the run's seed.
fn step_seed(seed: u64, step: u64) -> i64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03)) as i64 & i64::MAX
}

/// A fingerprint of a plan's micro-batches and their grouping into steps.
fn plan_fingerprint(plan: &[PlanEntry], grad_accum: usize) -> String {
    let mut h = Fingerprint::new();
    h.write_u64(grad_accum as u64);
    for e in plan {
        h.write_u64(e.stream as u64);
        h.write_u64(e.indices.len() as u64);
        e.indices.iter().for_each(|&i| h.write_u64(i as u64));
    }
    format!("{} micro-batches, {:016x}", plan.len(), h.finish())
}

impl<'a> Trainer<'a> {
    /// A trainer for `model` (whose variables are `vs`) with `optim` at peak learning rate
    /// `lr`, writing checkpoints, the best model and the metrics log to `run_dir`.
    ///
    /// Defaults: [`CrossEntropy`], a constant schedule, [`TrainConfig::default`], seed 42,
    /// the device of `vs`, class names `0, 1, …`, progress as plain lines on stderr.
    pub fn new(model: &'a dyn TextClassifier, vs: &'a VarStore, optim: Box<dyn Optimizer>, lr: f64, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            model,
            vs,
            optim,
            objective: Box::new(CrossEntropy::default()),
            schedule: Schedule::Constant,
            lr,
            config: TrainConfig::default(),
            seed: 42,
            device: vs.device(),
            run_dir: run_dir.into(),
            label_names: Vec::new(),
            observer: Box::new(Lines),
            stop_after: 0,
            keep_checkpoint: true,
            identity: BTreeMap::new(),
            last_good: None,
            precision: Precision::Fp32,
            scaler: None,
            replicas: None,
            stop_agreed: false,
        }
    }

    /// Train as one replica of a data-parallel run (see [`crate::replicas`]): the source given
    /// to [`Trainer::fit`] must be this replica's shard of the global batches (e.g.
    /// [`whetstone_data::ShardedSource`]). [`Trainer::fit`] starts every replica from rank 0's
    /// state, every step averages the gradients over the replicas, and only rank 0 writes
    /// checkpoints, the metrics log and the best model. The world size is part of the
    /// checkpoint's identity: a run resumes only at the world size it was trained with.
    pub fn replicas(mut self, replicas: &'a mut dyn Replicas) -> Self {
        self.identity.insert("data-parallel world size".into(), replicas.world_size().to_string());
        self.replicas = Some(replicas);
        self
    }

    /// Whether this process writes the run's files: always, unless it is a replica other than
    /// rank 0.
    pub fn is_primary(&self) -> bool {
        self.replicas.as_ref().is_none_or(|r| r.rank() == 0)
    }

    /// Overwrite the parameters, optimiser state and strategy state with rank 0's (a no-op
    /// without replicas). [`Trainer::fit`] calls it before its first step; a custom driver of
    /// [`Trainer::train_step`] calls it once before the first step.
    pub fn sync_replicas(&mut self) -> Result<()> {
        let Some(r) = self.replicas.as_deref_mut() else { return Ok(()) };
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let vars: Vec<Tensor> = vars.into_iter().map(|(_, t)| t).collect();
        tch::no_grad(|| r.broadcast(&vars))?;
        let mut optim = self.optim.state();
        if !optim.tensors.is_empty() {
            let ts: Vec<Tensor> = optim.tensors.iter_mut().map(|(_, t)| t.contiguous()).collect();
            r.broadcast(&ts)?;
            for ((_, t), b) in optim.tensors.iter_mut().zip(ts) {
                *t = b;
            }
            self.optim.load_state(&optim)?;
        }
        let mut strategy = self.objective.state()?;
        if !strategy.tensors.is_empty() {
            let ts: Vec<Tensor> = strategy.tensors.iter().map(|(_, t)| t.contiguous()).collect();
            r.broadcast(&ts)?;
            for ((_, t), b) in strategy.tensors.iter_mut().zip(ts) {
                *t = b;
            }
            self.objective.load_state(&strategy)?;
        }
        Ok(())
    }

    /// The precision of the forward passes (default fp32). Reduced precision is mixed: the
    /// forward passes of training and validation run in an autocast region, parameters,
    /// gradients, optimiser state and checkpoints stay float32. `Fp16` (CUDA only) turns on
    /// dynamic loss scaling with [`LossScaleConfig::default`] unless [`Trainer::loss_scaling`]
    /// set it.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        if precision.needs_loss_scaling() && self.scaler.is_none() {
            self.scaler = LossScaler::new(LossScaleConfig::default()).ok();
        }
        self
    }

    /// Dynamic loss scaling ([`LossScaler`]) with these settings, whatever the precision
    /// (`None` turns it off; fp16 needs it). Its state is checkpointed.
    pub fn loss_scaling(mut self, config: Option<LossScaleConfig>) -> Result<Self> {
        self.scaler = config.map(LossScaler::new).transpose()?;
        Ok(self)
    }

    /// The current loss scale, when loss scaling is on.
    pub fn loss_scale(&self) -> Option<f64> {
        self.scaler.as_ref().map(LossScaler::scale)
    }

    /// What the loop minimises, and how (see [`Objective`]).
    pub fn objective(mut self, objective: impl Objective + 'static) -> Self {
        self.objective = Box::new(objective);
        self
    }

    /// The learning-rate schedule (a factor on the peak `lr`).
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Epochs, batch size, clipping, evaluation and checkpoint cadence.
    pub fn config(mut self, config: TrainConfig) -> Self {
        self.config = config;
        self
    }

    /// The seed of the data order and of every step's random stream.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Where batches go (default: the device of the `VarStore`).
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Class names for validation reports.
    pub fn label_names(mut self, names: Vec<String>) -> Self {
        self.label_names = names;
        self
    }

    /// Who hears about progress (default [`Lines`]; [`crate::Silent`] for none).
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observer = Box::new(observer);
        self
    }

    /// Stop abruptly once `steps` optimiser steps are done, as if the process were killed
    /// (a run option for tests and time-boxed sessions; 0 = never).
    pub fn stop_after(mut self, steps: u64) -> Self {
        self.stop_after = steps;
        self
    }

    /// Whether the resumable checkpoint stays in the run folder once the run has finished
    /// (default `true`). With `false`, a finished or early-stopped run removes it and keeps
    /// only the best model; an interrupted run always keeps it, to resume from.
    pub fn keep_checkpoint(mut self, keep: bool) -> Self {
        self.keep_checkpoint = keep;
        self
    }

    /// Record `value` under `what` in every checkpoint; resuming with a different value is
    /// an error that names `what` (e.g. `("recipe", hash)`, `("labels", "neg, pos")`). The
    /// loop itself records the training data's fingerprint and its batch plan.
    pub fn identity(mut self, what: impl Into<String>, value: impl Into<String>) -> Self {
        self.identity.insert(what.into(), value.into());
        self
    }

    /// The objective (for its logged terms or learned parts after training).
    pub fn get_objective(&self) -> &dyn Objective {
        self.objective.as_ref()
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optim.as_ref()
    }

    /// The objective, taken out of a trainer that is done.
    pub fn into_objective(self) -> Box<dyn Objective> {
        self.objective
    }

    /// The training settings.
    pub fn train_config(&self) -> &TrainConfig {
        &self.config
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.run_dir.join(CHECKPOINT_FILE)
    }

    fn last_good_name(&self) -> String {
        match &self.last_good {
            Some(p) => p.display().to_string(),
            None => "(none: no checkpoint was written before the failure)".into(),
        }
    }

    /// One optimiser step on the micro-batches `group` of `source`: reseed,
    /// [`Optimizer::begin_step`], zero the gradients, [`Objective::backward`] each micro-batch
    /// (in the run's precision), unscale the gradients (loss scaling), [`Objective::before_update`],
    /// clip, step the optimiser at `lr`, [`Objective::after_update`]. `step` counts the
    /// steps done before this one. A non-finite loss stops before the update, with an error
    /// naming the last good checkpoint; under loss scaling, an overflow instead skips the
    /// update (no clipping, no optimiser step, no `after_update`) and shrinks the scale.
    pub fn train_step(&mut self, source: &dyn BatchSource, group: &[PlanEntry], step: u64, epoch: u64, lr: f64) -> Result<StepReport> {
        let examples: usize = group.iter().map(|e| e.indices.len()).sum();
        if examples == 0 {
            return Err(TrainError::Config("a training step needs at least one example".into()));
        }
        let seed = step_seed(self.seed, step);
        tch::manual_seed(seed);
        self.optim.begin_step()?;
        self.optim.zero_grad();
        let mut cx = StepContext::new(self.model, self.vs, step, epoch, self.device, seed as u64);
        let (mut loss, mut terms) = (0.0, Vec::<(String, f64)>::new());
        // The loss is multiplied by the scale through the backward weight; the objective
        // reports it unscaled.
        let scale = self.scaler.as_ref().map_or(1.0, LossScaler::scale);
        let mut overflow = false;
        // With replicas, a non-finite loss is not returned at once: the others would wait for
        // this replica's gradients until their timeout. It travels with the reduced loss, so
        // every replica stops at the same step with the same error.
        let mut non_finite: Option<f64> = None;
        {
            // Forward passes in the run's precision; backward follows the recorded graph.
            let _amp = self.precision.region(self.device)?;
            for entry in group {
                let batch = source.batch(entry, self.device)?;
                let w = entry.indices.len() as f64 / examples as f64;
                let l = self.objective.backward(&mut cx, &batch, w * scale)?;
                if !l.value.is_finite() {
                    if self.scaler.is_some() {
                        // Under loss scaling an overflow in the forward pass skips the step.
                        overflow = true;
                        continue;
                    }
                    if self.replicas.is_some() {
                        non_finite = Some(l.value);
                        continue;
                    }
                    return Err(TrainError::NonFiniteLoss { step: step + 1, epoch: epoch + 1, loss: l.value, checkpoint: self.last_good_name() });
                }
                loss += l.value * w;
                for (name, v) in l.terms {
                    match terms.iter_mut().find(|(n, _)| *n == name) {
                        Some(t) => t.1 += v * w,
                        None => terms.push((name, v * w)),
                    }
                }
            }
        }
        let mut examples = examples;
        if let Some(r) = self.replicas.as_deref_mut() {
            let grads = self.optim.grad_buffers()?;
            let reduced = r.reduce_gradients(&grads, examples, non_finite.unwrap_or(loss), overflow, crate::interrupt::stop_requested())?;
            (examples, loss, overflow) = (reduced.examples, reduced.loss, reduced.flag);
            self.stop_agreed = reduced.stop;
        } else {
            self.stop_agreed = crate::interrupt::stop_requested();
            if self.scaler.is_none() && !loss.is_finite() {
                return Err(TrainError::NonFiniteLoss { step: step + 1, epoch: epoch + 1, loss, checkpoint: self.last_good_name() });
            }
        }
        // The parameters are needed only to unscale or clip their gradients.
        let params: Vec<Tensor> = if self.scaler.is_some() || self.config.clip_norm > 0.0 { self.optim.params().into_iter().map(Tensor::shallow_clone).collect() } else { Vec::new() };
        let params: Vec<&Tensor> = params.iter().collect();
        if let Some(scaler) = &self.scaler {
            overflow |= scaler.unscale(&params)?;
        }
        self.objective.before_update(&mut cx)?;
        if overflow {
            if let Some(scaler) = &mut self.scaler {
                scaler.update(true)?;
            }
            return Ok(StepReport { loss, lr, grad_norm: None, examples, terms, skipped: true });
        }
        let grad_norm = if self.config.clip_norm > 0.0 { Some(clip_grad_norm(&params, self.config.clip_norm)?) } else { None };
        self.optim.step(lr)?;
        self.objective.after_update(&mut cx)?;
        if let Some(scaler) = &mut self.scaler {
            scaler.update(false)?;
        }
        Ok(StepReport { loss, lr, grad_norm, examples, terms, skipped: false })
    }

    /// Train on `train`, validating on `valid`. With `resume`, continue from the run
    /// folder's checkpoint instead of starting afresh.
    pub fn fit(&mut self, train: &dyn BatchSource, valid: &Encoded, resume: bool) -> Result<FitSummary> {
        let mut s = self.open_session(train, resume)?;
        self.sync_replicas()?;
        self.observer.start(s.total, s.prog.step);
        let outcome = loop {
            if let Some(done) = s.done(self.config.epochs) {
                break done;
            }
            if s.plan_epoch != Some(s.prog.epoch) {
                s.plan = train.epoch_plan(self.seed, s.prog.epoch)?;
                s.plan_epoch = Some(s.prog.epoch);
            }
            s.check_position()?;
            let group = s.plan[s.prog.batch_in_epoch..(s.prog.batch_in_epoch + self.config.grad_accum).min(s.plan.len())].to_vec();
            let t0 = Instant::now();
            let lr = self.lr * s.scheduler.factor(s.prog.step, s.total);
            let report = match self.train_step(train, &group, s.prog.step, s.prog.epoch, lr) {
                Ok(r) => r,
                Err(e) => return Err(self.fail(&mut s, e)),
            };
            let end_of_epoch = s.advance(&group, &report, t0.elapsed().as_secs_f64());
            self.log_step(&mut s, &report, end_of_epoch)?;
            if let Some(stop) = self.after_step(&mut s, valid, end_of_epoch)? {
                break stop;
            }
        };
        self.observer.finish();
        s.prog.train_seconds += s.train_time;
        if !self.keep_checkpoint && outcome != Outcome::Interrupted && self.is_primary() {
            let path = self.checkpoint_path();
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(crate::error::io(path)(e)),
                _ => self.last_good = None,
            }
        }
        Ok(FitSummary { outcome, total_steps: s.total, seq_per_s: s.seq_per_s(), padding_fraction: s.padding, progress: s.prog })
    }

    /// Check the settings, plan the first epoch, and start or resume the session.
    fn open_session(&mut self, train: &dyn BatchSource, resume: bool) -> Result<Session> {
        self.config.validate()?;
        self.schedule.validate()?;
        self.precision.check_device(self.device)?;
        if train.is_empty() {
            return Err(TrainError::Config("the training split is empty".into()));
        }
        let first = train.epoch_plan(self.seed, 0)?;
        if first.is_empty() {
            return Err(TrainError::Config("the training source planned no batches".into()));
        }
        let steps_per_epoch = first.len().div_ceil(self.config.grad_accum) as u64;
        let total = steps_per_epoch
            .checked_mul(self.config.epochs)
            .ok_or_else(|| TrainError::Config(format!("train.epochs = {} × {steps_per_epoch} steps per epoch overflows", self.config.epochs)))?;
        self.identity.insert("training data".into(), format!("{} examples, fingerprint {:016x}", train.len(), train.fingerprint()));
        // The global plan: the same on every replica, and different at another world size.
        self.identity.insert("batch plan".into(), plan_fingerprint(&train.global_plan(self.seed, 0)?, self.config.grad_accum));
        let primary = self.is_primary();
        if primary {
            std::fs::create_dir_all(&self.run_dir).map_err(crate::error::io(&self.run_dir))?;
        }
        let log_path = self.run_dir.join(METRICS_LOG_FILE);
        let mut scheduler = Scheduler::new(self.schedule.clone())?;
        let (prog, log) = if resume {
            let prog = self.restore()?;
            scheduler.load_state(prog.plateau.clone())?;
            match (&mut self.scaler, prog.loss_scale) {
                (Some(scaler), Some(state)) => scaler.load_state(state)?,
                (Some(_), None) => return Err(TrainError::Resume { run: self.run_dir.clone(), msg: "the checkpoint has no loss-scaler state but this run scales the loss (fp16); resume it in the precision it was trained in".into() }),
                (None, Some(_)) => return Err(TrainError::Resume { run: self.run_dir.clone(), msg: "the checkpoint was trained with loss scaling (fp16) but this run does not scale the loss; resume it in the precision it was trained in".into() }),
                (None, None) => {}
            }
            let log = if primary {
                truncate_log(&log_path, prog.step)?;
                // TensorBoard's event files are cut back to the checkpoint too, and continued.
                let mut log = MetricsLog::append(&log_path)?.with_tfevents(TfEventsWriter::resume(&self.run_dir, prog.step)?);
                log.write(&json!({"event": "resume", "step": prog.step, "epoch": prog.epoch}))?;
                Some(log)
            } else {
                None
            };
            (prog, log)
        } else {
            // Every record's scalars also go to a TensorBoard event file in the run folder.
            let log = if primary { Some(MetricsLog::create(&log_path)?.with_tfevents(TfEventsWriter::create(&self.run_dir)?)) } else { None };
            (Progress::default(), log)
        };
        let padding = train.padding_fraction(&first).unwrap_or(0.0);
        Ok(Session::new(prog, scheduler, log, total, first, padding))
    }

    /// Log a failure where it helps (a non-finite loss goes into the metrics log), end the
    /// progress display, and hand the error back.
    fn fail(&mut self, s: &mut Session, e: TrainError) -> TrainError {
        if let TrainError::NonFiniteLoss { loss, .. } = &e {
            let _ = s.write(&json!({"event": "non-finite loss", "step": s.prog.step, "loss": loss.to_string()}));
        }
        self.observer.finish();
        e
    }

    fn log_step(&mut self, s: &mut Session, r: &StepReport, end_of_epoch: bool) -> Result<()> {
        let logged = s.prog.step.is_multiple_of(self.config.log_every.max(1)) || end_of_epoch;
        let epoch = if end_of_epoch { s.prog.epoch - 1 } else { s.prog.epoch };
        let loss = s.loss_acc / s.loss_n.max(1) as f64;
        let eta_s = s.total.saturating_sub(s.prog.step) as f64 * s.train_time / (s.prog.step - s.start_step).max(1) as f64;
        self.observer.step(&StepStatus { step: s.prog.step, total: s.total, epoch, loss, seq_per_s: s.seq_per_s(), eta_s, logged });
        if logged {
            let mut rec = json!({"split": "train", "step": s.prog.step, "epoch": epoch + 1, "loss": loss, "lr": r.lr, "seq_per_s": s.seq_per_s()});
            if let Some(g) = r.grad_norm {
                rec["grad_norm"] = json!(g);
            }
            for (name, v) in &r.terms {
                rec[name.as_str()] = json!(v);
            }
            if self.optim.skipped_steps() > 0 {
                rec["skipped_steps"] = json!(self.optim.skipped_steps());
            }
            if let Some(scaler) = &self.scaler {
                rec["loss_scale"] = json!(scaler.scale());
                rec["overflow_skipped_steps"] = json!(scaler.state().skipped_steps);
            }
            s.write(&rec)?;
            (s.loss_acc, s.loss_n) = (0.0, 0);
        }
        Ok(())
    }

    /// Validate, checkpoint and decide whether to stop, after a step.
    fn after_step(&mut self, s: &mut Session, valid: &Encoded, end_of_epoch: bool) -> Result<Option<Outcome>> {
        let c = &self.config;
        let eval_due = if c.eval_every > 0 { s.prog.step.is_multiple_of(c.eval_every) || s.prog.step == s.total } else { end_of_epoch };
        let timed = c.checkpoint_minutes > 0.0 && s.last_save.elapsed().as_secs_f64() >= 60.0 * c.checkpoint_minutes;
        let stop = self.stop_agreed;
        let save_due = eval_due || end_of_epoch || stop || timed || (c.checkpoint_every > 0 && s.prog.step.is_multiple_of(c.checkpoint_every));
        if save_due {
            // Nothing non-finite is ever saved: not as the best model, not as a checkpoint.
            self.ensure_finite(s.prog.step)?;
        }
        if eval_due {
            let epoch = if end_of_epoch { s.prog.epoch - 1 } else { s.prog.epoch };
            self.evaluate(valid, s, epoch)?;
        }
        if save_due && self.is_primary() {
            s.prog.train_seconds += s.train_time;
            s.prog.plateau = s.scheduler.state().cloned();
            s.prog.loss_scale = self.scaler.as_ref().map(LossScaler::state);
            let saved = self.save_checkpoint(&s.prog);
            s.prog.train_seconds -= s.train_time;
            saved?;
            s.last_save = Instant::now();
        }
        if stop {
            self.observer.message(&format!("stopping at step {} as asked; the checkpoint is saved", s.prog.step));
            return Ok(Some(Outcome::Interrupted));
        }
        if self.stop_after > 0 && s.prog.step >= self.stop_after {
            return Ok(Some(Outcome::Interrupted));
        }
        if s.prog.stopped_early {
            self.observer.message(&format!("early stopping at step {}: no improvement in {} evaluations", s.prog.step, s.prog.evals_since_best));
            return Ok(Some(Outcome::StoppedEarly));
        }
        Ok(None)
    }

    /// An error naming the first non-finite parameter, optimiser buffer or strategy tensor.
    fn ensure_finite(&self, step: u64) -> Result<()> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let optim = self.optim.state();
        let strategy = self.objective.state()?;
        let named = vars
            .iter()
            .map(|(n, t)| (format!("parameter `{n}`"), t))
            .chain(optim.tensors.iter().map(|(n, t)| (format!("optimiser buffer `{n}`"), t)))
            .chain(strategy.tensors.iter().map(|(n, t)| (format!("strategy tensor `{n}`"), t)));
        if let Some(what) = first_non_finite(named)? {
            return Err(TrainError::NonFiniteState { what, step, checkpoint: self.last_good_name() });
        }
        Ok(())
    }

    fn save_checkpoint(&mut self, progress: &Progress) -> Result<()> {
        let mut model: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        model.sort_by(|a, b| a.0.cmp(&b.0));
        let ckpt = Checkpoint { progress: progress.clone(), model, optim: self.optim.state(), strategy: self.objective.state()?, identity: self.identity.clone() };
        let path = self.checkpoint_path();
        ckpt.save(&path)?;
        self.last_good = Some(path);
        Ok(())
    }

    fn restore(&mut self) -> Result<Progress> {
        let path = self.checkpoint_path();
        if !path.exists() {
            return Err(TrainError::Resume { run: self.run_dir.clone(), msg: format!("{} does not exist", path.display()) });
        }
        let ckpt = Checkpoint::load(&path)?;
        // The world size first: with it, the batch plan changes too, and this says why.
        const WORLD: &str = "data-parallel world size";
        match (ckpt.identity.get(WORLD), self.identity.get(WORLD)) {
            (Some(then), now) if Some(then) != now => {
                return Err(TrainError::Resume { run: self.run_dir.clone(), msg: format!("the {WORLD} changed: the checkpoint was trained by {then} processes, this run has {}; resume it with `--nproc {then}` (or WORLD_SIZE={then})", now.map_or("1", String::as_str)) });
            }
            (None, Some(now)) => {
                return Err(TrainError::Resume { run: self.run_dir.clone(), msg: format!("the {WORLD} changed: the checkpoint was trained by one process, this run has {now}; resume it without --nproc (and without WORLD_SIZE)") });
            }
            _ => {}
        }
        let changed: Vec<String> = self
            .identity
            .iter()
            .filter_map(|(what, now)| match ckpt.identity.get(what) {
                Some(then) if then == now => None,
                Some(then) => Some(format!("the {what} changed (checkpoint: {then}; now: {now})")),
                None => Some(format!("the checkpoint does not record the {what}")),
            })
            .collect();
        if !changed.is_empty() {
            return Err(TrainError::Resume { run: self.run_dir.clone(), msg: changed.join("; ") });
        }
        let vars = self.vs.variables();
        let mut problems = Vec::new();
        for (name, var) in &vars {
            match ckpt.model.iter().find(|(n, _)| n == name) {
                None => problems.push(format!("missing {name}")),
                Some((_, t)) if t.size() != var.size() => problems.push(format!("{name}: shape {:?} vs {:?}", t.size(), var.size())),
                Some(_) => {}
            }
        }
        if !problems.is_empty() || ckpt.model.len() != vars.len() {
            return Err(TrainError::Checkpoint { path, msg: format!("does not fit the model: {}", problems.join(", ")) });
        }
        tch::no_grad(|| -> Result<()> {
            for (name, t) in &ckpt.model {
                vars[name].shallow_clone().f_copy_(t)?;
            }
            Ok(())
        })?;
        self.optim.load_state(&ckpt.optim)?;
        self.objective.load_state(&ckpt.strategy)?;
        self.last_good = Some(path);
        Ok(ckpt.progress)
    }

    /// Validate with the optimiser's evaluation weights (they differ from the training point
    /// for schedule-free methods), keep the best model, and tell the scheduler the metric.
    fn evaluate(&mut self, valid: &Encoded, s: &mut Session, epoch: u64) -> Result<()> {
        self.optim.eval_mode()?;
        let r = self.evaluate_weights(valid, s, epoch);
        self.optim.train_mode()?;
        r
    }

    fn evaluate_weights(&mut self, valid: &Encoded, s: &mut Session, epoch: u64) -> Result<()> {
        let best_path = self.run_dir.join(BEST_MODEL_FILE);
        let primary = self.is_primary();
        if valid.ids.is_empty() {
            // Nothing to select on: the latest weights are the best we know.
            return if primary { Ok(save_varstore(self.vs, &best_path)?) } else { Ok(()) };
        }
        let cx = EvalContext { model: self.model, vs: self.vs, device: self.device, batch_size: self.config.eval_batch_size, metric: &self.config.metric, label_names: &self.label_names };
        let v = {
            let _amp = self.precision.region(self.device)?;
            self.objective.validate(&cx, valid)?
        };
        let mut rec = json!({"split": "valid", "step": s.prog.step, "epoch": epoch + 1});
        if let Some(obj) = rec.as_object_mut() {
            obj.extend(v.record);
        }
        s.write(&rec)?;
        if !v.metric.is_finite() {
            return Err(TrainError::NonFiniteState { what: format!("the validation metric ({})", v.metric), step: s.prog.step, checkpoint: self.last_good_name() });
        }
        s.scheduler.observe(v.metric);
        let prog = &mut s.prog;
        let improved = prog.best_metric.is_none_or(|b| v.metric > b);
        self.observer.message(&format!("step {:>6}  epoch {:>3}  {}{}", prog.step, epoch + 1, v.summary, if improved { "  (best)" } else { "" }));
        if improved {
            prog.best_metric = Some(v.metric);
            prog.best_step = prog.step;
            prog.evals_since_best = 0;
            if primary {
                save_varstore(self.vs, &best_path)?;
            }
        } else {
            prog.evals_since_best += 1;
            if self.config.patience > 0 && prog.evals_since_best >= self.config.patience {
                prog.stopped_early = true;
            }
        }
        Ok(())
    }
}

/// Keep only metrics logged up to `step` (a killed run may have logged past its checkpoint).
fn truncate_log(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<String> = read_jsonl(path)?
        .into_iter()
        .filter(|r| r.get("step").and_then(|s| s.as_u64()).is_none_or(|s| s <= step))
        .map(|r| r.to_string())
        .collect();
    let body = if kept.is_empty() { String::new() } else { kept.join("\n") + "\n" };
    whetstone_eval::write_atomic(path, body.as_bytes()).map_err(crate::error::io(path))
}

/// The state of one call to [`Trainer::fit`].
struct Session {
    prog: Progress,
    scheduler: Scheduler,
    /// The metrics log (rank 0 of a data-parallel run only).
    log: Option<MetricsLog>,
    total: u64,
    start_step: u64,
    plan: Vec<PlanEntry>,
    plan_epoch: Option<u64>,
    padding: f64,
    train_time: f64,
    /// When the last checkpoint was written (or the session began).
    last_save: Instant,
    examples: u64,
    loss_acc: f64,
    loss_n: u64,
}

impl Session {
    fn new(prog: Progress, scheduler: Scheduler, log: Option<MetricsLog>, total: u64, first: Vec<PlanEntry>, padding: f64) -> Self {
        let start_step = prog.step;
        Self { prog, scheduler, log, total, start_step, plan: first, plan_epoch: Some(0), padding, train_time: 0.0, last_save: Instant::now(), examples: 0, loss_acc: 0.0, loss_n: 0 }
    }

    /// Append `rec` to the metrics log, where this process keeps one.
    fn write(&mut self, rec: &serde_json::Value) -> Result<()> {
        if let Some(log) = &mut self.log {
            log.write(rec)?;
        }
        Ok(())
    }

    /// Whether the run is over before the next step.
    fn done(&self, epochs: u64) -> Option<Outcome> {
        if self.prog.stopped_early {
            Some(Outcome::StoppedEarly)
        } else if self.prog.epoch >= epochs {
            Some(Outcome::Finished)
        } else {
            None
        }
    }

    /// A resumed position must lie inside the current epoch's plan.
    fn check_position(&self) -> Result<()> {
        if self.prog.batch_in_epoch >= self.plan.len() {
            return Err(TrainError::Config(format!(
                "the saved position (micro-batch {} of epoch {}) lies outside the epoch's plan of {} micro-batches: the data or the batch settings changed since the checkpoint",
                self.prog.batch_in_epoch,
                self.prog.epoch + 1,
                self.plan.len()
            )));
        }
        Ok(())
    }

    /// Count a finished step; returns whether it ended the epoch.
    fn advance(&mut self, group: &[PlanEntry], r: &StepReport, seconds: f64) -> bool {
        self.prog.step += 1;
        self.prog.batch_in_epoch += group.len();
        self.prog.examples_seen += r.examples as u64;
        self.examples += r.examples as u64;
        self.train_time += seconds;
        self.loss_acc += r.loss;
        self.loss_n += 1;
        let end = self.prog.batch_in_epoch >= self.plan.len();
        if end {
            self.prog.epoch += 1;
            self.prog.batch_in_epoch = 0;
        }
        end
    }

    fn seq_per_s(&self) -> f64 {
        self.examples as f64 / self.train_time.max(1e-9)
    }
}
