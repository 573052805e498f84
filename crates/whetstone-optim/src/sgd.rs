//! Stochastic gradient descent with momentum (Polyak 1964), dampening, Nesterov momentum
//! (Sutskever et al. 2013) and L2 weight decay.

use crate::chain_optimizer::{named_optimizer, ChainOptimizer};
use crate::error::{OptimError, Result};
use crate::fused::FusedKind;
use crate::kernel::Kernel;
use crate::params::Param;
use crate::transform::{add_l2_decay, chain, scale_by_learning_rate, trace, Chain};
use serde::{Deserialize, Serialize};

/// SGD hyper-parameters. Defaults: momentum 0.9 (torch's is 0), no dampening, no Nesterov.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    /// Momentum coefficient μ (0 = plain SGD).
    pub momentum: f64,
    /// Dampening τ of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { momentum: 0.9, dampening: 0.0, nesterov: false }
    }
}

impl SgdConfig {
    /// The chain: `add_l2_decay → trace (if μ > 0) → scale_by_learning_rate`.
    pub fn chain(&self) -> Chain {
        let mut parts = vec![add_l2_decay()];
        if self.momentum != 0.0 {
            parts.push(trace(self.momentum, self.dampening, self.nesterov));
        }
        parts.push(scale_by_learning_rate());
        chain(parts)
    }
}

/// SGD, the update of `torch.optim.SGD`:
/// `g ← g + λθ; b ← μb + (1−τ)g` (b₁ = g); `g ← g + μb` (Nesterov) or `g ← b`; `θ ← θ − ηg`.
///
/// ```
/// use whetstone_optim::{named_params, Optimizer, Sgd, SgdConfig, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Sgd::new(named_params(&vs, 1e-4, NO_DECAY), SgdConfig { nesterov: true, ..Default::default() })?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(0.1)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Sgd(ChainOptimizer);
named_optimizer!(Sgd);

impl Sgd {
    /// SGD over `params` on flat buffers (weight decay is per parameter).
    pub fn new(params: Vec<Param>, config: SgdConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }

    /// SGD with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: SgdConfig, flat: bool) -> Result<Self> {
        Self::with_kernel(params, config, flat, Kernel::default())
    }

    /// SGD with flat buffers or one tensor at a time, updated by `kernel` (see [`Kernel`];
    /// with [`Kernel::TorchFused`], momentum 0 runs libtorch's kernel without buffers).
    pub fn with_kernel(params: Vec<Param>, config: SgdConfig, flat: bool, kernel: Kernel) -> Result<Self> {
        if config.momentum < 0.0 || config.dampening < 0.0 {
            return Err(OptimError::Config("sgd momentum and dampening must be >= 0".into()));
        }
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(OptimError::Config("sgd nesterov needs momentum > 0 and dampening = 0".into()));
        }
        if !(config.momentum.is_finite() && config.dampening.is_finite()) {
            return Err(OptimError::Config(format!("sgd momentum and dampening must be finite, got {} and {}", config.momentum, config.dampening)));
        }
        // Whetstone's kernel leaves μ = 0 to the chain (`ChainOptimizer::step`).
        let kind = FusedKind::Sgd { momentum: config.momentum, dampening: config.dampening, nesterov: config.nesterov };
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?.with_fused(kind).with_kernel(kernel)?))
    }
}
