use serde::{Deserialize, Serialize};

/// Where the training loop is. Saved in every checkpoint; together with the seed it fixes the
/// data order and the random stream (dropout is reseeded from `(seed, step)` before every step),
/// which is what makes a resumed run bit-identical to an uninterrupted one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Optimiser steps completed.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Micro-batches of `epoch` already consumed.
    pub batch_in_epoch: usize,
    /// Best validation metric so far.
    pub best_metric: Option<f64>,
    /// Step at which `best_metric` was reached.
    pub best_step: u64,
    /// Evaluations since the best one (early stopping).
    pub evals_since_best: u64,
    /// Whether early stopping has ended the run.
    pub stopped_early: bool,
    /// Training examples seen.
    pub examples_seen: u64,
    /// Seconds spent training in earlier sessions of this run.
    pub train_seconds: f64,
    /// State of a reduce-on-plateau schedule (which sees the validation metric).
    #[serde(default)]
    pub plateau: Option<whetstone_optim::PlateauState>,
    /// The loss scaler's state (fp16 training).
    #[serde(default)]
    pub loss_scale: Option<crate::scaler::LossScaleState>,
}
