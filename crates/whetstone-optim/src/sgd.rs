//! Stochastic gradient descent with momentum, dampening, Nesterov and (L2) weight decay.

use crate::error::{OptimError, Result};
use crate::optimizer::Optimizer;
use crate::params::Param;
use crate::state::OptimState;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// SGD hyper-parameters. Defaults: momentum 0.9, no dampening, no Nesterov.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    /// Momentum coefficient μ.
    pub momentum: f64,
    /// Dampening τ of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// Nesterov momentum (Sutskever et al. 2013).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { momentum: 0.9, dampening: 0.0, nesterov: false }
    }
}

/// SGD, the same update as `torch.optim.SGD`:
/// `g ← g + λθ; b ← μb + (1−τ)g` (b₁ = g); `g ← g + μb` (Nesterov) or `g ← b`; `θ ← θ − ηg`.
#[derive(Debug)]
pub struct Sgd {
    params: Vec<Param>,
    buffers: Vec<Tensor>,
    config: SgdConfig,
    step: u64,
}

impl Sgd {
    /// SGD over `params` (weight decay is per parameter).
    pub fn new(params: Vec<Param>, config: SgdConfig) -> Result<Self> {
        if config.momentum < 0.0 || config.dampening < 0.0 {
            return Err(OptimError::Config("sgd momentum and dampening must be >= 0".into()));
        }
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(OptimError::Config("sgd nesterov needs momentum > 0 and dampening = 0".into()));
        }
        let buffers = params.iter().map(|p| p.tensor.zeros_like()).collect();
        Ok(Self { params, buffers, config, step: 0 })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, lr: f64) -> Result<()> {
        let c = &self.config;
        let first = self.step == 0;
        tch::no_grad(|| -> Result<()> {
            for (p, buf) in self.params.iter_mut().zip(self.buffers.iter_mut()) {
                let grad = p.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                let mut g = if p.weight_decay != 0.0 { grad.f_add(&(&p.tensor * p.weight_decay))? } else { grad };
                if c.momentum != 0.0 {
                    if first {
                        buf.f_copy_(&g)?;
                    } else {
                        buf.f_mul_scalar_(c.momentum)?;
                        buf.f_add_(&(&g * (1.0 - c.dampening)))?;
                    }
                    g = if c.nesterov { g.f_add(&(&*buf * c.momentum))? } else { buf.shallow_clone() };
                }
                p.tensor.f_add_(&(g * -lr))?;
            }
            Ok(())
        })?;
        self.step += 1;
        Ok(())
    }

    fn params(&self) -> Vec<&Tensor> {
        self.params.iter().map(|p| &p.tensor).collect()
    }

    fn state(&self) -> OptimState {
        let tensors = self.params.iter().zip(&self.buffers).map(|(p, b)| (format!("{}.momentum_buffer", p.name), b.copy())).collect();
        OptimState { step: self.step, tensors }
    }

    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        let bufs = self.params.iter().map(|p| state.take(&format!("{}.momentum_buffer", p.name), &p.tensor)).collect::<Result<Vec<_>>>()?;
        self.buffers = bufs;
        self.step = state.step;
        Ok(())
    }
}
