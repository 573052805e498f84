//! Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization") with L2 weight decay,
//! optionally AMSGrad (Reddi et al. 2018, "On the Convergence of Adam and Beyond").

use crate::chain_optimizer::{check_betas, check_eps, named_optimizer, ChainOptimizer};
use crate::error::Result;
use crate::fused::FusedKind;
use crate::kernel::Kernel;
use crate::params::Param;
use crate::transform::{add_l2_decay, chain, scale_by_adam, scale_by_learning_rate, Chain};
use serde::{Deserialize, Serialize};

/// Adam hyper-parameters. Defaults are torch.optim.Adam's: β = (0.9, 0.999), ε = 1e-8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    /// Decay rates of the first and second moment estimates.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// AMSGrad.
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-8, amsgrad: false }
    }
}

impl AdamConfig {
    /// The chain: `add_l2_decay → scale_by_adam → scale_by_learning_rate`.
    pub fn chain(&self) -> Chain {
        chain(vec![add_l2_decay(), scale_by_adam(self.betas, self.eps, self.amsgrad), scale_by_learning_rate()])
    }
}

/// Adam as `torch.optim.Adam`: g ← g + λθ, then the moments and step of [`crate::AdamW`].
///
/// ```
/// use whetstone_optim::{named_params, Adam, AdamConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Adam::new(named_params(&vs, 0.0, NO_DECAY), AdamConfig::default())?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Adam(ChainOptimizer);
named_optimizer!(Adam);

impl Adam {
    /// Adam over `params` on flat buffers.
    pub fn new(params: Vec<Param>, config: AdamConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }

    /// Adam with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: AdamConfig, flat: bool) -> Result<Self> {
        Self::with_kernel(params, config, flat, Kernel::default())
    }

    /// Adam with flat buffers or one tensor at a time, updated by `kernel` (see [`Kernel`]).
    pub fn with_kernel(params: Vec<Param>, config: AdamConfig, flat: bool, kernel: Kernel) -> Result<Self> {
        check_betas("adam", config.betas)?;
        check_eps("adam", config.eps)?;
        let kind = FusedKind::Adam { betas: config.betas, eps: config.eps, amsgrad: config.amsgrad, decoupled: false };
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?.with_fused(kind).with_kernel(kernel)?))
    }
}
