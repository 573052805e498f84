//! A schedule together with the reduce-on-plateau state it may need: what a trainer holds.

use super::{Plateau, PlateauState, Schedule};
use crate::error::{OptimError, Result};

/// A [`Schedule`] plus, when it contains `reduce-on-plateau`, the [`Plateau`] that tracks the
/// metrics. The learning rate of update `step + 1` is `base × scheduler.factor(step, total)`:
/// the schedule's multiplier times the plateau's. A trainer calls [`Scheduler::observe`] after
/// each evaluation (a no-op for the other kinds) and keeps [`Scheduler::state`] in its checkpoint.
///
/// ```
/// use whetstone_optim::{PlateauConfig, Schedule, Scheduler};
/// // 10 warmup steps, then 1 until validation stops improving.
/// let plateau = PlateauConfig { patience: 0, factor: 0.5, ..Default::default() };
/// let schedule = Schedule::Warmup { warmup_steps: Some(10), warmup_ratio: 0.0, start_factor: 0.0, then: Box::new(Schedule::ReduceOnPlateau(plateau)) };
/// let mut s = Scheduler::new(schedule)?;
/// assert_eq!(s.factor(5, 1000), 0.5);
/// s.observe(0.7);
/// s.observe(0.8); // worse: halve
/// assert_eq!(s.factor(500, 1000), 0.5);
/// let saved = s.state().cloned();
/// let mut resumed = Scheduler::new(s.schedule().clone())?;
/// resumed.load_state(saved)?;
/// assert_eq!(resumed.factor(500, 1000), 0.5);
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduler {
    schedule: Schedule,
    plateau: Option<Plateau>,
}

impl Scheduler {
    /// Validate `schedule` and start any plateau tracking afresh.
    pub fn new(schedule: Schedule) -> Result<Self> {
        schedule.validate()?;
        let plateau = schedule.plateau().cloned().map(Plateau::new);
        Ok(Self { schedule, plateau })
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The multiplier for `step` (steps already taken) out of `total`.
    pub fn factor(&self, step: u64, total: u64) -> f64 {
        self.schedule.factor(step, total) * self.plateau.as_ref().map_or(1.0, Plateau::factor)
    }

    /// Record a validation metric; returns the plateau multiplier (1 without a plateau).
    pub fn observe(&mut self, metric: f64) -> f64 {
        self.plateau.as_mut().map_or(1.0, |p| p.observe(metric))
    }

    /// The state to checkpoint (`None` for schedules that are functions of the step).
    pub fn state(&self) -> Option<&PlateauState> {
        self.plateau.as_ref().map(|p| &p.state)
    }

    /// Restore [`Scheduler::state`] from a checkpoint; it must match the schedule's kind.
    pub fn load_state(&mut self, state: Option<PlateauState>) -> Result<()> {
        match (&mut self.plateau, state) {
            (Some(p), Some(s)) => p.state = s,
            (None, None) => {}
            (Some(_), None) => return Err(OptimError::State("the schedule has reduce-on-plateau but the checkpoint has no plateau state".into())),
            (None, Some(_)) => return Err(OptimError::State("the checkpoint has plateau state but the schedule has no reduce-on-plateau".into())),
        }
        Ok(())
    }
}
