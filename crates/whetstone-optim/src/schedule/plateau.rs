//! Reduce-on-plateau: the one schedule that depends on the metrics, not on the step.

use crate::error::{OptimError, Result};
use serde::{Deserialize, Serialize};

/// Whether a lower or a higher metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlateauMode {
    /// Lower is better (a loss; the default).
    #[default]
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` defines a significant improvement over the best metric so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThresholdMode {
    /// By more than `threshold × |best|`, i.e. `best·(1 ∓ threshold)` (the default).
    #[default]
    Rel,
    /// By more than `threshold`.
    Abs,
}

/// Settings of reduce-on-plateau, `ReduceLROnPlateau`'s arguments with the learning rates
/// expressed as multipliers on the base rate (`min_factor` is `min_lr / base lr`). Defaults are
/// PyTorch's.
///
/// ```toml
/// [schedule]
/// kind = "reduce-on-plateau"
/// mode = "max"        # the metric is an accuracy
/// factor = 0.5
/// patience = 2
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlateauConfig {
    /// Which direction is better (default `min`).
    pub mode: PlateauMode,
    /// Multiply the rate by this on a plateau (default 0.1).
    pub factor: f64,
    /// Evaluations without improvement tolerated before reducing (default 10).
    pub patience: u64,
    /// Smallest improvement that counts (default 1e-4).
    pub threshold: f64,
    /// Relative or absolute `threshold` (default `rel`).
    pub threshold_mode: ThresholdMode,
    /// Evaluations to wait after a reduction before counting again (default 0).
    pub cooldown: u64,
    /// Floor on the multiplier (default 0).
    pub min_factor: f64,
    /// Skip reductions smaller than this (default 1e-8).
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        Self { mode: PlateauMode::Min, factor: 0.1, patience: 10, threshold: 1e-4, threshold_mode: ThresholdMode::Rel, cooldown: 0, min_factor: 0.0, eps: 1e-8 }
    }
}

impl PlateauConfig {
    pub(super) fn validate(&self) -> Result<()> {
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(OptimError::Config(format!("schedule: reduce-on-plateau factor must be in (0, 1), got {}", self.factor)));
        }
        if !(self.threshold >= 0.0 && self.threshold.is_finite() && self.min_factor >= 0.0 && self.eps >= 0.0) {
            return Err(OptimError::Config(format!(
                "schedule: reduce-on-plateau threshold, min_factor and eps must be >= 0, got {}, {} and {}",
                self.threshold, self.min_factor, self.eps
            )));
        }
        Ok(())
    }
}

/// What [`Plateau`] has seen: the part to checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// The current multiplier.
    pub factor: f64,
    /// Best metric so far (`None` before the first observation).
    pub best: Option<f64>,
    /// Evaluations since the last significant improvement.
    pub bad_evals: u64,
    /// Evaluations of cooldown left.
    pub cooldown_left: u64,
    /// Evaluations observed.
    pub evals: u64,
}

impl Default for PlateauState {
    fn default() -> Self {
        Self { factor: 1.0, best: None, bad_evals: 0, cooldown_left: 0, evals: 0 }
    }
}

/// The stateful half of reduce-on-plateau: feed it each validation metric, read the multiplier.
/// The logic is `ReduceLROnPlateau.step` line for line, so a NaN metric counts as no
/// improvement.
///
/// ```
/// use whetstone_optim::{Plateau, PlateauConfig};
/// let mut p = Plateau::new(PlateauConfig { patience: 1, factor: 0.5, ..Default::default() });
/// for loss in [1.0, 0.9, 0.95, 0.93] {
///     p.observe(loss);
/// }
/// assert_eq!(p.factor(), 0.5); // two evaluations without beating 0.9
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Settings.
    pub config: PlateauConfig,
    /// Progress so far.
    pub state: PlateauState,
}

impl Plateau {
    /// A tracker that has seen nothing yet (multiplier 1).
    pub fn new(config: PlateauConfig) -> Self {
        Self { config, state: PlateauState::default() }
    }

    /// The current multiplier on the base learning rate.
    pub fn factor(&self) -> f64 {
        self.state.factor
    }

    fn is_better(&self, metric: f64) -> bool {
        let c = &self.config;
        let worst = if c.mode == PlateauMode::Min { f64::INFINITY } else { f64::NEG_INFINITY };
        let best = self.state.best.unwrap_or(worst);
        match (c.mode, c.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - c.threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => metric < best - c.threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => metric > best * (c.threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => metric > best + c.threshold,
        }
    }

    /// Record one evaluation's metric and return the (possibly reduced) multiplier.
    pub fn observe(&mut self, metric: f64) -> f64 {
        self.state.evals += 1;
        if self.is_better(metric) {
            self.state.best = Some(metric);
            self.state.bad_evals = 0;
        } else {
            self.state.bad_evals += 1;
        }
        if self.state.cooldown_left > 0 {
            self.state.cooldown_left -= 1;
            self.state.bad_evals = 0;
        }
        if self.state.bad_evals > self.config.patience {
            let old = self.state.factor;
            let new = (old * self.config.factor).max(self.config.min_factor);
            if old - new > self.config.eps {
                self.state.factor = new;
            }
            self.state.cooldown_left = self.config.cooldown;
            self.state.bad_evals = 0;
        }
        self.state.factor
    }
}
