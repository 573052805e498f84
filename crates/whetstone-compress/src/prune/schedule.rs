//! The gradual pruning schedule of Zhu & Gupta (2017), "To prune, or not to prune".

use crate::error::{check_sparsity, CompressError, Result};
use serde::{Deserialize, Serialize};

/// Cubic sparsity schedule: from step `start` (t₀), every `every` (Δt) steps for `updates` (n)
/// updates, the sparsity rises as
///
/// s_t = s_f + (s_i − s_f) · (1 − (t − t₀) / (n·Δt))³,
///
/// fast at first, while many redundant weights remain, and slowly near the end (Zhu & Gupta
/// 2017, eq. 1). Before t₀ the sparsity is s_i; after t₀ + nΔt it stays at s_f.
///
/// ```
/// use whetstone_compress::CubicSchedule;
/// let s = CubicSchedule { initial: 0.0, target: 0.9, start: 0, every: 10, updates: 10 };
/// assert_eq!(s.sparsity_at(0), 0.0);
/// assert!((s.sparsity_at(50) - 0.9 * (1.0 - 0.125)).abs() < 1e-12);
/// assert_eq!(s.sparsity_at(1000), 0.9);
/// assert!(s.is_update_step(20) && !s.is_update_step(25) && !s.is_update_step(110));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CubicSchedule {
    /// Initial sparsity s_i (usually 0).
    pub initial: f64,
    /// Final sparsity s_f.
    pub target: f64,
    /// First pruning step t₀.
    pub start: u64,
    /// Steps between mask updates Δt (≥ 1).
    pub every: u64,
    /// Number of mask updates n after t₀ (≥ 1).
    pub updates: u64,
}

impl CubicSchedule {
    /// One-shot: the target from step 0 on.
    pub fn one_shot(target: f64) -> Self {
        Self { initial: target, target, start: 0, every: 1, updates: 1 }
    }

    /// Check both sparsities are in `[0, 1)` and `every`, `updates` are positive.
    pub fn validate(&self) -> Result<()> {
        check_sparsity(self.initial)?;
        check_sparsity(self.target)?;
        if self.every == 0 || self.updates == 0 {
            return Err(CompressError::Config(format!("cubic schedule needs every ≥ 1 and updates ≥ 1, got {} and {}", self.every, self.updates)));
        }
        Ok(())
    }

    /// Last step at which the mask changes: t₀ + nΔt.
    pub fn end(&self) -> u64 {
        self.start + self.updates * self.every
    }

    /// s_t (eq. 1), clamped to s_i before t₀ and to s_f after the end.
    pub fn sparsity_at(&self, step: u64) -> f64 {
        if step <= self.start {
            return self.initial;
        }
        let frac = ((step - self.start) as f64 / (self.updates * self.every) as f64).min(1.0);
        self.target + (self.initial - self.target) * (1.0 - frac).powi(3)
    }

    /// Whether the masks are recomputed after `step`: t₀, t₀+Δt, …, t₀+nΔt.
    pub fn is_update_step(&self, step: u64) -> bool {
        step >= self.start && step <= self.end() && (step - self.start).is_multiple_of(self.every)
    }
}
