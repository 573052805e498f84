//! Skipping updates whose gradients are not finite.

use crate::error::Result;
use crate::optimizer::{read_scalar, scalar_tensor, Optimizer};
use crate::state::OptimState;
use tch::{Kind, Tensor};

/// Skips the update (leaving parameters and state untouched) when any gradient holds a NaN or
/// ±∞, as mixed-precision loss scalers do, and counts the skips ([`Optimizer::skipped_steps`]).
/// One device synchronisation per step. State: the inner state and `skip_nonfinite.skipped`.
///
/// ```
/// use whetstone_optim::{named_params, AdamW, AdamWConfig, Optimizer, SkipNonFinite, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = SkipNonFinite::new(AdamW::new(named_params(&vs, 0.01, NO_DECAY), AdamWConfig::default())?);
/// (lin.ws.sum(tch::Kind::Float) * f64::NAN).backward();
/// opt.step(1e-3)?;
/// assert_eq!(opt.skipped_steps(), 1);
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct SkipNonFinite<O: Optimizer> {
    inner: O,
    skipped: u64,
}

impl<O: Optimizer> SkipNonFinite<O> {
    /// Wrap `inner`.
    pub fn new(inner: O) -> Self {
        Self { inner, skipped: 0 }
    }
}

/// True when every defined gradient of `params` is finite.
pub fn grads_finite(params: &[&Tensor]) -> Result<bool> {
    let flags = params.iter().map(|p| p.grad()).filter(|g| g.defined()).map(|g| g.f_isfinite()?.f_all()?.f_to_kind(Kind::Int64)).collect::<std::result::Result<Vec<_>, _>>()?;
    if flags.is_empty() {
        return Ok(true);
    }
    Ok(Tensor::f_stack(&flags, 0)?.f_min()?.f_int64_value(&[])? == 1)
}

impl<O: Optimizer> Optimizer for SkipNonFinite<O> {
    fn step(&mut self, lr: f64) -> Result<()> {
        if !tch::no_grad(|| grads_finite(&self.inner.params()))? {
            self.skipped += 1;
            return Ok(());
        }
        self.inner.step(lr)
    }
    fn state(&self) -> OptimState {
        let mut s = self.inner.state();
        s.tensors.push(("skip_nonfinite.skipped".into(), scalar_tensor(self.skipped as f64)));
        s
    }
    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        self.inner.load_state(state)?;
        self.skipped = read_scalar(state, "skip_nonfinite.skipped")? as u64;
        Ok(())
    }
    fn skipped_steps(&self) -> u64 {
        self.skipped + self.inner.skipped_steps()
    }
    crate::forward_to_inner!(inner; params, begin_step, zero_grad, eval_mode, train_mode, grad_buffers);
}
