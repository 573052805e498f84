//! Learning-rate schedules: plain functions of the step, as in optax and nanoGPT.

use crate::error::{OptimError, Result};
use serde::{Deserialize, Serialize};

/// A multiplier on the base learning rate as a function of the step.
///
/// Warmup is linear from 0 (step 0) to 1 (step `warmup`), as in Hugging Face's
/// `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup`. The number of warmup
/// steps is `warmup_steps` when given, else `warmup_ratio × total_steps`.
///
/// ```
/// use whetstone_optim::Schedule;
/// let s = Schedule::WarmupLinear { warmup_steps: Some(10), warmup_ratio: 0.0 };
/// assert_eq!(s.factor(5, 110), 0.5);
/// assert_eq!(s.factor(10, 110), 1.0);
/// assert_eq!(s.factor(60, 110), 0.5);
/// assert_eq!(s.factor(110, 110), 0.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// The base learning rate throughout.
    Constant,
    /// Linear warmup, then linear decay to 0 at the last step.
    WarmupLinear {
        #[serde(default)]
        warmup_steps: Option<u64>,
        #[serde(default)]
        warmup_ratio: f64,
    },
    /// Linear warmup, then a half-cosine down to `min_ratio` × the base rate.
    WarmupCosine {
        #[serde(default)]
        warmup_steps: Option<u64>,
        #[serde(default)]
        warmup_ratio: f64,
        #[serde(default)]
        min_ratio: f64,
    },
    /// Linear warmup, then the base rate.
    WarmupConstant {
        #[serde(default)]
        warmup_steps: Option<u64>,
        #[serde(default)]
        warmup_ratio: f64,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::WarmupLinear { warmup_steps: None, warmup_ratio: 0.06 }
    }
}

fn warmup_len(steps: Option<u64>, ratio: f64, total: u64) -> u64 {
    steps.unwrap_or_else(|| (ratio * total as f64).round() as u64)
}

impl Schedule {
    /// Check ratios are in range.
    pub fn validate(&self) -> Result<()> {
        let (ratio, min) = match self {
            Schedule::Constant => return Ok(()),
            Schedule::WarmupLinear { warmup_ratio, .. } | Schedule::WarmupConstant { warmup_ratio, .. } => (*warmup_ratio, 0.0),
            Schedule::WarmupCosine { warmup_ratio, min_ratio, .. } => (*warmup_ratio, *min_ratio),
        };
        if !(0.0..=1.0).contains(&ratio) || !(0.0..=1.0).contains(&min) {
            return Err(OptimError::Config(format!("schedule warmup_ratio and min_ratio must be in [0, 1], got {ratio} and {min}")));
        }
        Ok(())
    }

    /// The multiplier for `step` (0-based) out of `total` steps.
    pub fn factor(&self, step: u64, total: u64) -> f64 {
        let warm = |ws: &Option<u64>, wr: f64| warmup_len(*ws, wr, total);
        let (w, after) = match self {
            Schedule::Constant => return 1.0,
            Schedule::WarmupLinear { warmup_steps, warmup_ratio } => (warm(warmup_steps, *warmup_ratio), 0u8),
            Schedule::WarmupCosine { warmup_steps, warmup_ratio, .. } => (warm(warmup_steps, *warmup_ratio), 1),
            Schedule::WarmupConstant { warmup_steps, warmup_ratio } => (warm(warmup_steps, *warmup_ratio), 2),
        };
        if step < w {
            return step as f64 / w.max(1) as f64;
        }
        let span = total.saturating_sub(w).max(1) as f64;
        let progress = ((step - w) as f64 / span).min(1.0);
        match (after, self) {
            (0, _) => (1.0 - progress).max(0.0),
            (1, Schedule::WarmupCosine { min_ratio, .. }) => min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            _ => 1.0,
        }
    }
}
