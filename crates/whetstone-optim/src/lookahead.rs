//! Lookahead (Zhang, Lucas, Hinton & Ba 2019, "Lookahead Optimizer: k steps forward, 1 step
//! back"), wrapping any other optimiser.

use crate::error::{OptimError, Result};
use crate::optimizer::{read_scalar, scalar_tensor, Optimizer};
use crate::state::OptimState;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Lookahead hyper-parameters. Defaults are the paper's: k = 5, α = 0.5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LookaheadConfig {
    /// Fast steps between synchronisations.
    pub k: u64,
    /// Slow-weight step size α.
    pub alpha: f64,
}

impl Default for LookaheadConfig {
    fn default() -> Self {
        Self { k: 5, alpha: 0.5 }
    }
}

/// Lookahead: the inner optimiser takes fast steps; every k-th step the slow weights move
/// `φ ← φ + α(θ − φ)` and the fast weights restart from them, `θ ← φ`. State: the inner state,
/// `lookahead.slow.{i}` for parameter i and the scalar `lookahead.count`.
///
/// ```
/// use whetstone_optim::{named_params, Lookahead, LookaheadConfig, Optimizer, Sgd, SgdConfig, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let inner = Sgd::new(named_params(&vs, 0.0, NO_DECAY), SgdConfig::default())?;
/// let mut opt = Lookahead::new(inner, LookaheadConfig::default())?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(0.1)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Lookahead<O: Optimizer> {
    inner: O,
    slow: Vec<Tensor>,
    config: LookaheadConfig,
    count: u64,
}

impl<O: Optimizer> Lookahead<O> {
    /// Wrap `inner`; the slow weights start at the current parameters.
    pub fn new(inner: O, config: LookaheadConfig) -> Result<Self> {
        if config.k == 0 || !(0.0..=1.0).contains(&config.alpha) {
            return Err(OptimError::Config(format!("lookahead needs k >= 1 and alpha in [0, 1], got k = {}, alpha = {}", config.k, config.alpha)));
        }
        let slow = tch::no_grad(|| inner.params().iter().map(|p| p.f_detach().map(|t| t.copy())).collect::<std::result::Result<Vec<_>, _>>())?;
        Ok(Self { inner, slow, config, count: 0 })
    }

    /// The wrapped optimiser.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The slow weights φ, one per parameter.
    pub fn slow_weights(&self) -> &[Tensor] {
        &self.slow
    }
}

impl<O: Optimizer> Optimizer for Lookahead<O> {
    fn step(&mut self, lr: f64) -> Result<()> {
        self.inner.step(lr)?;
        self.count += 1;
        if self.count.is_multiple_of(self.config.k) {
            let alpha = self.config.alpha;
            tch::no_grad(|| -> Result<()> {
                for (p, s) in self.inner.params().into_iter().zip(self.slow.iter_mut()) {
                    let _ = s.f_add_(&p.f_sub(s)?.f_mul_scalar(alpha)?)?;
                    p.shallow_clone().f_copy_(s)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
    fn state(&self) -> OptimState {
        let mut s = self.inner.state();
        for (i, t) in self.slow.iter().enumerate() {
            s.tensors.push((format!("lookahead.slow.{i}"), t.copy()));
        }
        s.tensors.push(("lookahead.count".into(), scalar_tensor(self.count as f64)));
        s
    }
    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        self.inner.load_state(state)?;
        for (i, s) in self.slow.iter_mut().enumerate() {
            let saved = state.find(&format!("lookahead.slow.{i}"))?;
            if saved.size() != s.size() {
                return Err(OptimError::State(format!("lookahead.slow.{i} has shape {:?}, expected {:?}", saved.size(), s.size())));
            }
            tch::no_grad(|| s.f_copy_(saved))?;
        }
        self.count = read_scalar(state, "lookahead.count")? as u64;
        Ok(())
    }
    crate::forward_to_inner!(inner; params, begin_step, zero_grad, skipped_steps, eval_mode, train_mode, grad_buffers);
}
