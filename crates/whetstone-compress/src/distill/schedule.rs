//! Distillation hyper-parameters that change with the step.

use serde::{Deserialize, Serialize};

/// A scalar as a function of the training step: a constant, or a linear ramp from `from` to `to`
/// over `steps` steps (then held). Serialised as a number or `{from, to, steps}`.
///
/// ```
/// use whetstone_compress::ScalarSchedule;
/// let t = ScalarSchedule::Linear { from: 4.0, to: 1.0, steps: 100 };
/// assert_eq!((t.at(0), t.at(50), t.at(500)), (4.0, 2.5, 1.0));
/// assert_eq!(ScalarSchedule::from(2.0).at(7), 2.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScalarSchedule {
    /// The same value at every step.
    Constant(f64),
    /// Linear interpolation, then constant.
    Linear {
        /// Value at step 0.
        from: f64,
        /// Value from `steps` on.
        to: f64,
        /// Length of the ramp.
        steps: u64,
    },
}

impl From<f64> for ScalarSchedule {
    fn from(v: f64) -> Self {
        ScalarSchedule::Constant(v)
    }
}

impl ScalarSchedule {
    /// The value at `step`.
    pub fn at(&self, step: u64) -> f64 {
        match *self {
            ScalarSchedule::Constant(v) => v,
            ScalarSchedule::Linear { from, to, steps } => {
                let f = if steps == 0 { 1.0 } else { (step as f64 / steps as f64).min(1.0) };
                from + (to - from) * f
            }
        }
    }

    /// True when the value is 0 at every step (the term can be skipped).
    pub fn is_zero(&self) -> bool {
        matches!(*self, ScalarSchedule::Constant(v) if v == 0.0) || matches!(*self, ScalarSchedule::Linear { from, to, .. } if from == 0.0 && to == 0.0)
    }
}
