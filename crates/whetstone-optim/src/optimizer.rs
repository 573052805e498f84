//! The optimiser interface shared by every algorithm.

use crate::error::Result;
use crate::state::OptimState;
use tch::Tensor;

/// An optimiser that owns its state in Rust.
///
/// `step` reads the `.grad()` of each parameter and updates the parameters in place. The learning
/// rate is passed in on every step so that schedules stay plain functions of the step.
pub trait Optimizer: std::fmt::Debug + Send {
    /// One update with learning rate `lr`.
    fn step(&mut self, lr: f64) -> Result<()>;
    /// The parameters being optimised.
    fn params(&self) -> Vec<&Tensor>;
    /// Set every gradient to zero.
    fn zero_grad(&mut self) {
        for p in self.params() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }
    /// A copy of the state (buffers are deep-copied).
    fn state(&self) -> OptimState;
    /// Restore a state saved by [`Optimizer::state`].
    fn load_state(&mut self, state: &OptimState) -> Result<()>;
}
