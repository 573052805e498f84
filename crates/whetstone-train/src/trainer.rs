//! The training loop.

use crate::checkpoint::{Checkpoint, BEST_MODEL_FILE, CHECKPOINT_FILE};
use crate::config::TrainConfig;
use crate::error::{io, Result, TrainError};
use crate::evaluate::predict;
use crate::objective::Objective;
use crate::progress::Progress;
use crate::reporter::Reporter;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn::VarStore, Device, Tensor};
use whetstone_data::{make_batch, padding_fraction, BucketBatcher, Encoded};
use whetstone_eval::{classification_report, read_jsonl, MetricsLog};
use whetstone_models::{save_varstore, TextClassifier};
use whetstone_optim::{clip_grad_norm, Optimizer, Schedule, Scheduler};

/// File name of the metrics log inside a run folder.
pub const METRICS_LOG_FILE: &str = "metrics.jsonl";

/// How a call to [`Trainer::fit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All epochs ran.
    Finished,
    /// Early stopping ended the run.
    StoppedEarly,
    /// `stop_after` cut the run short (as a kill would).
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

/// Drives any [`TextClassifier`] with any [`Optimizer`], [`Schedule`] and [`Objective`].
///
/// Seeded and bit-reproducible on CPU: the data order of each epoch is a function of
/// `(seed, epoch)` and the random stream is reseeded from `(seed, step)` before every step, so
/// a checkpoint only needs the step and position to resume exactly.
pub struct Trainer<'a> {
    pub model: &'a dyn TextClassifier,
    pub vs: &'a VarStore,
    pub optim: Box<dyn Optimizer>,
    pub objective: Box<dyn Objective>,
    pub schedule: Schedule,
    /// Peak learning rate (the schedule multiplies it).
    pub lr: f64,
    pub config: TrainConfig,
    pub seed: u64,
    pub device: Device,
    /// Where checkpoints, the best model and the metrics log go.
    pub run_dir: PathBuf,
    /// Class names, for validation reports.
    pub label_names: Vec<String>,
    /// No progress output.
    pub quiet: bool,
}

/// Optimiser steps in one epoch of `train` under `config`: what [`Trainer::fit`] takes per
/// epoch (micro-batches of the first epoch's bucketed order, grouped by `grad_accum`), for
/// settings counted in epochs that must become steps, such as [`crate::FinetuneConfig`]'s.
pub fn steps_per_epoch(config: &TrainConfig, train: &Encoded, seed: u64) -> u64 {
    let lengths: Vec<usize> = train.ids.iter().map(Vec::len).collect();
    let batches = BucketBatcher::new(config.batch_size.max(1), config.bucket_factor.max(1)).epoch_order(&lengths, seed, 0).len();
    batches.div_ceil(config.grad_accum.max(1)) as u64
}

/// Seed of the random stream for `step`: distinct per step, fixed by the run's seed.
fn step_seed(seed: u64, step: u64) -> i64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03)) as i64 & i64::MAX
}

impl Trainer<'_> {
    fn checkpoint_path(&self) -> PathBuf {
        self.run_dir.join(CHECKPOINT_FILE)
    }

    fn save_checkpoint(&self, progress: &Progress) -> Result<()> {
        let mut model: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        model.sort_by(|a, b| a.0.cmp(&b.0));
        Checkpoint { progress: progress.clone(), model, optim: self.optim.state() }.save(&self.checkpoint_path())
    }

    fn restore(&mut self) -> Result<Progress> {
        let path = self.checkpoint_path();
        if !path.exists() {
            return Err(TrainError::Run { run: self.run_dir.clone(), msg: format!("cannot resume: {} does not exist", path.display()) });
        }
        let ckpt = Checkpoint::load(&path)?;
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
                let mut v = vars[name].shallow_clone();
                v.f_copy_(t)?;
            }
            Ok(())
        })?;
        self.optim.load_state(&ckpt.optim)?;
        Ok(ckpt.progress)
    }

    /// Keep only metrics logged up to `step` (a killed run may have logged past its checkpoint).
    fn truncate_log(path: &Path, step: u64) -> Result<()> {
        if !path.exists() {
            return Ok(());
        }
        let kept: Vec<String> = read_jsonl(path)?
            .into_iter()
            .filter(|r| r.get("step").and_then(|s| s.as_u64()).map_or(true, |s| s <= step))
            .map(|r| r.to_string())
            .collect();
        let body = if kept.is_empty() { String::new() } else { kept.join("\n") + "\n" };
        std::fs::write(path, body).map_err(io(path))
    }

    /// Train on `train`, evaluating on `valid`. With `resume`, continue from the run folder's
    /// checkpoint instead of starting afresh.
    pub fn fit(&mut self, train: &Encoded, valid: &Encoded, resume: bool) -> Result<FitSummary> {
        self.config.validate()?;
        self.schedule.validate()?;
        if train.ids.is_empty() {
            return Err(TrainError::Config("the training split is empty".into()));
        }
        std::fs::create_dir_all(&self.run_dir).map_err(io(&self.run_dir))?;
        let c = self.config.clone();
        let lengths: Vec<usize> = train.ids.iter().map(Vec::len).collect();
        let batcher = BucketBatcher::new(c.batch_size, c.bucket_factor);
        let first_order = batcher.epoch_order(&lengths, self.seed, 0);
        let padding = padding_fraction(train, &first_order);
        let steps_per_epoch = first_order.len().div_ceil(c.grad_accum) as u64;
        let total = steps_per_epoch * c.epochs;

        let log_path = self.run_dir.join(METRICS_LOG_FILE);
        let mut scheduler = Scheduler::new(self.schedule.clone())?;
        let mut prog = if resume {
            let p = self.restore()?;
            Self::truncate_log(&log_path, p.step)?;
            p
        } else {
            Progress::default()
        };
        if resume {
            scheduler.load_state(prog.plateau.clone())?;
        }
        let mut log = if resume { MetricsLog::append(&log_path)? } else { MetricsLog::create(&log_path)? };
        if resume {
            log.write(&json!({"event": "resume", "step": prog.step, "epoch": prog.epoch}))?;
        }

        let reporter = Reporter::new(total, prog.step, self.quiet);
        let start_step = prog.step;
        let mut train_time = 0.0f64;
        let mut session_examples = 0u64;
        let (mut loss_acc, mut loss_n) = (0.0f64, 0u64);
        let mut outcome = Outcome::Finished;

        'epochs: while prog.epoch < c.epochs && !prog.stopped_early {
            let order = if prog.epoch == 0 { first_order.clone() } else { batcher.epoch_order(&lengths, self.seed, prog.epoch) };
            while prog.batch_in_epoch < order.len() {
                let t0 = Instant::now();
                let group = &order[prog.batch_in_epoch..(prog.batch_in_epoch + c.grad_accum).min(order.len())];
                let n_group: usize = group.iter().map(Vec::len).sum();
                tch::manual_seed(step_seed(self.seed, prog.step));
                self.optim.zero_grad();
                let mut loss_val = 0.0;
                for idx in group {
                    let batch = make_batch(train, idx, self.device);
                    let loss = self.objective.loss(self.model, &batch);
                    let w = idx.len() as f64 / n_group as f64;
                    let l = loss.f_double_value(&[])?;
                    loss_val += l * w;
                    if !l.is_finite() {
                        break;
                    }
                    (loss * w).f_backward()?;
                }
                if !loss_val.is_finite() {
                    reporter.finish();
                    let ck = self.checkpoint_path();
                    let checkpoint = if ck.exists() { ck.display().to_string() } else { "(none yet: no checkpoint was written before the failure)".into() };
                    log.write(&json!({"event": "non-finite loss", "step": prog.step, "loss": loss_val.to_string()}))?;
                    return Err(TrainError::NonFiniteLoss { step: prog.step + 1, epoch: prog.epoch + 1, loss: loss_val, checkpoint });
                }
                let params = self.optim.params().into_iter().map(Tensor::shallow_clone).collect::<Vec<_>>();
                let grad_norm = if c.clip_norm > 0.0 { Some(clip_grad_norm(&params.iter().collect::<Vec<_>>(), c.clip_norm)?) } else { None };
                let lr = self.lr * scheduler.factor(prog.step, total);
                self.optim.step(lr)?;
                prog.step += 1;
                prog.batch_in_epoch += group.len();
                prog.examples_seen += n_group as u64;
                session_examples += n_group as u64;
                train_time += t0.elapsed().as_secs_f64();
                loss_acc += loss_val;
                loss_n += 1;

                let end_of_epoch = prog.batch_in_epoch >= order.len();
                let seq_per_s = session_examples as f64 / train_time.max(1e-9);
                let eta = total.saturating_sub(prog.step) as f64 * train_time / (prog.step - start_step).max(1) as f64;
                let log_now = prog.step % c.log_every.max(1) == 0 || end_of_epoch;
                reporter.update(prog.step, prog.epoch, loss_acc / loss_n.max(1) as f64, seq_per_s, eta, log_now);
                if log_now {
                    let mut rec = json!({"split": "train", "step": prog.step, "epoch": prog.epoch + 1, "loss": loss_acc / loss_n as f64, "lr": lr, "seq_per_s": seq_per_s});
                    if let Some(g) = grad_norm {
                        rec["grad_norm"] = json!(g);
                    }
                    if self.optim.skipped_steps() > 0 {
                        rec["skipped_steps"] = json!(self.optim.skipped_steps());
                    }
                    log.write(&rec)?;
                    (loss_acc, loss_n) = (0.0, 0);
                }
                let epoch_done = prog.epoch;
                if end_of_epoch {
                    prog.epoch += 1;
                    prog.batch_in_epoch = 0;
                }
                let eval_due = if c.eval_every > 0 { prog.step % c.eval_every == 0 || prog.step == total } else { end_of_epoch };
                if eval_due {
                    self.evaluate(valid, &mut prog, epoch_done, &mut log, &reporter, &mut scheduler)?;
                }
                if eval_due || end_of_epoch || (c.checkpoint_every > 0 && prog.step % c.checkpoint_every == 0) {
                    prog.train_seconds += train_time;
                    prog.plateau = scheduler.state().cloned();
                    self.save_checkpoint(&prog)?;
                    prog.train_seconds -= train_time;
                }
                if c.stop_after > 0 && prog.step >= c.stop_after {
                    outcome = Outcome::Interrupted;
                    break 'epochs;
                }
                if prog.stopped_early {
                    outcome = Outcome::StoppedEarly;
                    reporter.println(&format!("early stopping at step {}: no improvement in {} evaluations", prog.step, prog.evals_since_best));
                    break 'epochs;
                }
                if end_of_epoch {
                    continue 'epochs;
                }
            }
        }
        reporter.finish();
        prog.train_seconds += train_time;
        Ok(FitSummary { outcome, progress: prog, total_steps: total, seq_per_s: session_examples as f64 / train_time.max(1e-9), padding_fraction: padding })
    }

    /// Validate with the optimiser's evaluation weights (they differ from the training point for
    /// schedule-free methods), keep the best model, and tell the scheduler the metric.
    fn evaluate(&mut self, valid: &Encoded, prog: &mut Progress, epoch: u64, log: &mut MetricsLog, reporter: &Reporter, scheduler: &mut Scheduler) -> Result<()> {
        self.optim.eval_mode()?;
        let r = self.evaluate_weights(valid, prog, epoch, log, reporter, scheduler);
        self.optim.train_mode()?;
        r
    }

    fn evaluate_weights(&mut self, valid: &Encoded, prog: &mut Progress, epoch: u64, log: &mut MetricsLog, reporter: &Reporter, scheduler: &mut Scheduler) -> Result<()> {
        let best_path = self.run_dir.join(BEST_MODEL_FILE);
        if valid.ids.is_empty() {
            // Nothing to select on: the latest weights are the best we know.
            return Ok(save_varstore(self.vs, &best_path)?);
        }
        let (metric, summary) = match self.objective.validate(self.model, valid, self.config.eval_batch_size, self.device) {
            Some(v) => {
                let v = v?;
                let mut rec = json!({"split": "valid", "step": prog.step, "epoch": epoch + 1});
                rec.as_object_mut().expect("a JSON object").extend(v.record);
                log.write(&rec)?;
                (v.metric, v.summary)
            }
            None => {
                let p = predict(self.model, valid, self.config.eval_batch_size, self.device)?;
                let report = classification_report(&valid.labels, &p.preds, &self.label_names)?;
                let metric = report.metric(&self.config.metric).unwrap_or(report.accuracy);
                log.write(&json!({"split": "valid", "step": prog.step, "epoch": epoch + 1, "loss": p.loss,
                    "accuracy": report.accuracy, "macro_f1": report.macro_f1, "mcc": report.mcc}))?;
                (metric, format!("valid loss {:.4}  {} {metric:.4}", p.loss, self.config.metric))
            }
        };
        scheduler.observe(metric);
        let improved = prog.best_metric.map_or(true, |b| metric > b);
        reporter.println(&format!("step {:>6}  epoch {:>3}  {summary}{}", prog.step, epoch + 1, if improved { "  (best)" } else { "" }));
        if improved {
            prog.best_metric = Some(metric);
            prog.best_step = prog.step;
            prog.evals_since_best = 0;
            save_varstore(self.vs, &best_path)?;
        } else {
            prog.evals_since_best += 1;
            if self.config.patience > 0 && prog.evals_since_best >= self.config.patience {
                prog.stopped_early = true;
            }
        }
        Ok(())
    }
}
