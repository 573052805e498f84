use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};

/// How the training loop runs. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training set (default 10).
    pub epochs: u64,
    /// Examples per micro-batch (default 32).
    pub batch_size: usize,
    /// Micro-batches per optimiser step; the effective batch is `batch_size × grad_accum` (default 1).
    pub grad_accum: usize,
    /// Clip the global gradient norm to this value; `0` disables (default 1.0).
    pub clip_norm: f64,
    /// Evaluate every N optimiser steps; `0` means at the end of every epoch (default 0).
    pub eval_every: u64,
    /// Stop after this many evaluations without improvement; `0` disables (default 0).
    pub patience: u64,
    /// Validation metric that picks the best checkpoint: accuracy, macro_f1 or mcc (default accuracy).
    pub metric: String,
    /// Save a resumable checkpoint every N steps, besides every evaluation; `0` = only at evaluations.
    pub checkpoint_every: u64,
    /// Also save a resumable checkpoint once this many minutes have passed since the last one,
    /// so a long epoch is never lost whole; `0` disables (default 10).
    pub checkpoint_minutes: f64,
    /// Length-bucketing: a bucket holds `batch_size × bucket_factor` examples (default 50).
    pub bucket_factor: usize,
    /// Batch size for evaluation (default 128).
    pub eval_batch_size: usize,
    /// Print / log the training loss every N steps (default 20).
    pub log_every: u64,
    /// Label smoothing ε of the cross-entropy (Szegedy et al. 2016); 0 disables (default 0).
    pub label_smoothing: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 32,
            grad_accum: 1,
            clip_norm: 1.0,
            eval_every: 0,
            patience: 0,
            metric: "accuracy".into(),
            checkpoint_every: 0,
            checkpoint_minutes: 10.0,
            bucket_factor: 50,
            eval_batch_size: 128,
            log_every: 20,
            label_smoothing: 0.0,
        }
    }
}

impl TrainConfig {
    /// Check the settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::Config(m.into()));
        if self.epochs == 0 {
            return bad("train.epochs must be >= 1");
        }
        if !(self.checkpoint_minutes.is_finite() && self.checkpoint_minutes >= 0.0) {
            return bad("train.checkpoint_minutes must be a non-negative number of minutes (0 disables)");
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("train.batch_size and train.eval_batch_size must be >= 1");
        }
        if self.grad_accum == 0 {
            return bad("train.grad_accum must be >= 1");
        }
        if self.bucket_factor == 0 {
            return bad("train.bucket_factor must be >= 1");
        }
        // Bounds that keep every product the loop forms far from overflow, and batches in memory.
        for (key, v, max) in [
            ("train.batch_size", self.batch_size as u64, 1 << 20),
            ("train.eval_batch_size", self.eval_batch_size as u64, 1 << 20),
            ("train.grad_accum", self.grad_accum as u64, 1 << 16),
            ("train.bucket_factor", self.bucket_factor as u64, 1 << 20),
            ("train.epochs", self.epochs, 1 << 24),
        ] {
            if v > max {
                return Err(TrainError::Config(format!("{key} = {v} is too large (at most {max})")));
            }
        }
        if self.clip_norm < 0.0 || !self.clip_norm.is_finite() {
            return bad("train.clip_norm must be >= 0 (0 disables clipping)");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(TrainError::Config(format!("train.label_smoothing must be in [0, 1), got {}", self.label_smoothing)));
        }
        if !["accuracy", "macro_f1", "mcc"].contains(&self.metric.as_str()) {
            return Err(TrainError::Config(format!("train.metric must be accuracy, macro_f1 or mcc, got `{}`", self.metric)));
        }
        Ok(())
    }
}
