//! The 1cycle policy (Smith & Topin 2018, "Super-convergence"), as PyTorch's `OneCycleLR`.

use crate::error::{OptimError, Result};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// How [`OneCycle`] moves between its end points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anneal {
    /// Half-cosine (PyTorch's default).
    #[default]
    Cos,
    /// Straight line.
    Linear,
}

/// One cycle over the run, as `OneCycleLR(max_lr = max_factor × base lr, total_steps = total)`:
/// up from `max_factor / div_factor` to `max_factor` over the first `pct_start` of the run, then
/// down to `max_factor / div_factor / final_div_factor` at the last step. With `three_phase`, it
/// comes back down to the start value by `2 × pct_start` and only then anneals to the minimum
/// (fast.ai's variant). Only the learning rate cycles; `OneCycleLR`'s momentum cycling is out of
/// scope for a schedule.
///
/// ```
/// use whetstone_optim::{OneCycle, Schedule};
/// let s = Schedule::OneCycle(OneCycle::default());
/// assert!((s.factor(0, 100) - 1.0 / 25.0).abs() < 1e-15);
/// assert!((s.factor(29, 100) - 1.0).abs() < 1e-15);
/// assert!((s.factor(99, 100) - 1.0 / 25.0 / 1e4).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OneCycle {
    /// Peak multiplier on the base learning rate (default 1).
    pub max_factor: f64,
    /// Fraction of the run spent rising (default 0.3).
    pub pct_start: f64,
    /// Curve between the end points (default `cos`).
    pub anneal: Anneal,
    /// Start value is `max_factor / div_factor` (default 25).
    pub div_factor: f64,
    /// Final value is the start value `/ final_div_factor` (default 1e4).
    pub final_div_factor: f64,
    /// Rise, fall back to the start value, then anneal to the minimum (default false).
    pub three_phase: bool,
}

impl Default for OneCycle {
    fn default() -> Self {
        Self { max_factor: 1.0, pct_start: 0.3, anneal: Anneal::Cos, div_factor: 25.0, final_div_factor: 1e4, three_phase: false }
    }
}

impl OneCycle {
    pub(super) fn validate(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !(ok(self.max_factor) && ok(self.div_factor) && ok(self.final_div_factor)) {
            return Err(OptimError::Config(format!(
                "schedule: one-cycle max_factor, div_factor and final_div_factor must be finite and > 0, got {}, {} and {}",
                self.max_factor, self.div_factor, self.final_div_factor
            )));
        }
        if !(0.0..=1.0).contains(&self.pct_start) {
            return Err(OptimError::Config(format!("schedule: one-cycle pct_start must be in [0, 1], got {}", self.pct_start)));
        }
        Ok(())
    }

    /// `OneCycleLR.get_lr` at `last_epoch = step`, held at the final value from step `total − 1`.
    pub(super) fn factor(&self, step: u64, total: u64) -> f64 {
        let initial = self.max_factor / self.div_factor;
        let max = self.max_factor;
        let min = initial / self.final_div_factor;
        let rise_end = self.pct_start * total as f64 - 1.0;
        let last = total as f64 - 1.0;
        let phases: &[(f64, f64, f64)] =
            if self.three_phase { &[(rise_end, initial, max), (2.0 * self.pct_start * total as f64 - 2.0, max, initial), (last, initial, min)] } else { &[(rise_end, initial, max), (last, max, min)] };
        let t = step as f64;
        let mut start_step = 0.0;
        for (i, &(end_step, from, to)) in phases.iter().enumerate() {
            if t <= end_step || i == phases.len() - 1 {
                let span = end_step - start_step;
                let pct = if span > 0.0 { ((t - start_step) / span).clamp(0.0, 1.0) } else { 1.0 };
                return match self.anneal {
                    Anneal::Cos => to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0),
                    Anneal::Linear => (to - from) * pct + from,
                };
            }
            start_step = end_step;
        }
        min
    }
}
