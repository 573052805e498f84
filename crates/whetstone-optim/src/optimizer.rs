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
    /// Called by the training loop at the start of every step, before the forward pass.
    /// Wrappers that change which parameters train (freezing on a schedule) act here; the
    /// default does nothing. Wrappers forward it to what they wrap.
    fn begin_step(&mut self) -> Result<()> {
        Ok(())
    }
    /// Set every gradient to zero.
    fn zero_grad(&mut self) {
        for p in self.params() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }
    /// The tensors that hold every trainable parameter's gradient, for code that reduces
    /// gradients as a whole (data-parallel all-reduce). The default is each parameter's
    /// `.grad()` (giving a zero gradient to a trainable parameter that has none yet, so every
    /// replica returns the same list); optimisers with flat buffers return those, a few large
    /// contiguous tensors. Writing into them changes the gradients the next step reads.
    fn grad_buffers(&self) -> Result<Vec<Tensor>> {
        let params = self.params();
        crate::flat::define_grads(&params)?;
        Ok(params.iter().filter(|p| p.requires_grad()).map(|p| p.grad()).collect())
    }
    /// A copy of the state (buffers are deep-copied).
    fn state(&self) -> OptimState;
    /// Restore a state saved by [`Optimizer::state`].
    fn load_state(&mut self, state: &OptimState) -> Result<()>;
    /// Steps skipped because a gradient was not finite ([`crate::SkipNonFinite`]); 0 for
    /// optimisers that never skip.
    fn skipped_steps(&self) -> u64 {
        0
    }
    /// Put the evaluation weights into the parameters before validation. A no-op except for
    /// optimisers whose training point differs from their output, such as
    /// [`crate::ScheduleFreeAdamW`] (which swaps in its averaged iterate `x`).
    fn eval_mode(&mut self) -> Result<()> {
        Ok(())
    }
    /// Undo [`Optimizer::eval_mode`] before the next training step.
    fn train_mode(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<O: Optimizer + ?Sized> Optimizer for Box<O> {
    fn step(&mut self, lr: f64) -> Result<()> {
        (**self).step(lr)
    }
    fn params(&self) -> Vec<&Tensor> {
        (**self).params()
    }
    fn begin_step(&mut self) -> Result<()> {
        (**self).begin_step()
    }
    fn zero_grad(&mut self) {
        (**self).zero_grad()
    }
    fn state(&self) -> OptimState {
        (**self).state()
    }
    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        (**self).load_state(state)
    }
    fn skipped_steps(&self) -> u64 {
        (**self).skipped_steps()
    }
    fn eval_mode(&mut self) -> Result<()> {
        (**self).eval_mode()
    }
    fn train_mode(&mut self) -> Result<()> {
        (**self).train_mode()
    }
}

/// Inside `impl Optimizer for Wrapper`, the methods a wrapper leaves to the optimiser it wraps:
/// `forward_to_inner!(inner; params, begin_step, zero_grad, skipped_steps, eval_mode, train_mode, grad_buffers)` forwards
/// each named method to `self.inner`.
///
/// ```
/// use whetstone_optim::{forward_to_inner, OptimState, Optimizer, Result};
/// #[derive(Debug)]
/// struct CountSteps<O> { inner: O, steps: u64 }
/// impl<O: Optimizer> Optimizer for CountSteps<O> {
///     fn step(&mut self, lr: f64) -> Result<()> { self.steps += 1; self.inner.step(lr) }
///     fn state(&self) -> OptimState { self.inner.state() }
///     fn load_state(&mut self, s: &OptimState) -> Result<()> { self.inner.load_state(s) }
///     forward_to_inner!(inner; params, begin_step, zero_grad, skipped_steps, eval_mode, train_mode);
/// }
/// ```
#[macro_export]
macro_rules! forward_to_inner {
    ($field:ident; $($method:ident),+ $(,)?) => { $( $crate::forward_to_inner!(@one $field $method); )+ };
    (@one $f:ident params) => { fn params(&self) -> Vec<&::tch::Tensor> { self.$f.params() } };
    (@one $f:ident zero_grad) => { fn zero_grad(&mut self) { self.$f.zero_grad() } };
    (@one $f:ident begin_step) => { fn begin_step(&mut self) -> $crate::Result<()> { self.$f.begin_step() } };
    (@one $f:ident skipped_steps) => { fn skipped_steps(&self) -> u64 { self.$f.skipped_steps() } };
    (@one $f:ident eval_mode) => { fn eval_mode(&mut self) -> $crate::Result<()> { self.$f.eval_mode() } };
    (@one $f:ident grad_buffers) => { fn grad_buffers(&self) -> $crate::Result<Vec<::tch::Tensor>> { self.$f.grad_buffers() } };
    (@one $f:ident train_mode) => { fn train_mode(&mut self) -> $crate::Result<()> { self.$f.train_mode() } };
}

/// A one-element float64 tensor holding `v`, for scalars kept in [`OptimState`].
pub(crate) fn scalar_tensor(v: f64) -> Tensor {
    Tensor::from_slice(&[v])
}

/// Read back a scalar saved with [`scalar_tensor`].
pub(crate) fn read_scalar(state: &OptimState, name: &str) -> Result<f64> {
    Ok(state.find(name)?.f_to_kind(tch::Kind::Double)?.f_double_value(&[0])?)
}
