//! Gradient accumulation for library users: step the inner optimiser every k-th call.

use crate::error::{OptimError, Result};
use crate::optimizer::{read_scalar, scalar_tensor, Optimizer};
use crate::state::OptimState;

/// Accumulates gradients over `every` micro-batches: `step` only updates on every k-th call,
/// after dividing the summed gradients by k (so the update uses their mean), and `zero_grad`
/// only clears them after such an update. (whetstone's Trainer accumulates on its own.)
/// State: the inner state and the scalar `accumulate.calls`.
///
/// ```
/// use whetstone_optim::{named_params, Accumulate, AdamW, AdamWConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Accumulate::new(AdamW::new(named_params(&vs, 0.01, NO_DECAY), AdamWConfig::default())?, 4)?;
/// for _micro_batch in 0..8 {
///     opt.zero_grad(); // clears only after a real update
///     lin.ws.sum(tch::Kind::Float).backward();
///     opt.step(1e-3)?; // updates on calls 4 and 8
/// }
/// assert_eq!(opt.state().step, 2);
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Accumulate<O: Optimizer> {
    inner: O,
    every: u64,
    calls: u64,
}

impl<O: Optimizer> Accumulate<O> {
    /// Update every `every` calls (≥ 1).
    pub fn new(inner: O, every: u64) -> Result<Self> {
        if every == 0 {
            return Err(OptimError::Config("accumulate needs every >= 1".into()));
        }
        Ok(Self { inner, every, calls: 0 })
    }
}

impl<O: Optimizer> Optimizer for Accumulate<O> {
    fn step(&mut self, lr: f64) -> Result<()> {
        self.calls += 1;
        if !self.calls.is_multiple_of(self.every) {
            return Ok(());
        }
        if self.every > 1 {
            let k = self.every as f64;
            tch::no_grad(|| -> Result<()> {
                for p in self.inner.params() {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.f_div_scalar_(k)?;
                    }
                }
                Ok(())
            })?;
        }
        self.inner.step(lr)
    }
    fn zero_grad(&mut self) {
        if self.calls.is_multiple_of(self.every) {
            self.inner.zero_grad();
        }
    }
    fn state(&self) -> OptimState {
        let mut s = self.inner.state();
        s.tensors.push(("accumulate.calls".into(), scalar_tensor(self.calls as f64)));
        s
    }
    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        self.inner.load_state(state)?;
        self.calls = read_scalar(state, "accumulate.calls")? as u64;
        Ok(())
    }
    crate::forward_to_inner!(inner; params, begin_step, skipped_steps, eval_mode, train_mode, grad_buffers);
}
