//! AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay
//! Regularization"), optionally AMSGrad (Reddi et al. 2018).

use crate::chain_optimizer::{check_betas, check_eps, named_optimizer, ChainOptimizer};
use crate::error::Result;
use crate::fused::FusedKind;
use crate::kernel::Kernel;
use crate::params::Param;
use crate::transform::{add_decayed_weights, chain, scale_by_adam, scale_by_learning_rate, Chain};
use serde::{Deserialize, Serialize};

/// AdamW hyper-parameters. Defaults are torch.optim.AdamW's: β = (0.9, 0.999), ε = 1e-8, no
/// AMSGrad. (Weight decay is per parameter; see [`crate::OptimConfig::weight_decay`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// Decay rates of the first and second moment estimates.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// Use the running maximum of the second moment (AMSGrad).
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-8, amsgrad: false }
    }
}

impl AdamWConfig {
    /// The chain: `scale_by_adam → add_decayed_weights → scale_by_learning_rate`.
    pub fn chain(&self) -> Chain {
        chain(vec![scale_by_adam(self.betas, self.eps, self.amsgrad), add_decayed_weights(), scale_by_learning_rate()])
    }
}

/// AdamW, the update of `torch.optim.AdamW`:
///
/// θ ← θ(1 − ηλ); m ← lerp(m, g, 1−β₁); v ← β₂v + (1−β₂)g²; (AMSGrad: v̂ ← max(v̂, v));
/// θ ← θ − (η / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
///
/// ```
/// use whetstone_optim::{named_params, AdamW, AdamWConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = AdamW::new(named_params(&vs, 0.01, NO_DECAY), AdamWConfig { amsgrad: true, ..Default::default() })?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct AdamW(ChainOptimizer);
named_optimizer!(AdamW);

impl AdamW {
    /// AdamW over `params` on flat buffers (weight decay is per parameter).
    pub fn new(params: Vec<Param>, config: AdamWConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }

    /// AdamW with flat buffers (`flat = true`) or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: AdamWConfig, flat: bool) -> Result<Self> {
        Self::with_kernel(params, config, flat, Kernel::default())
    }

    /// AdamW with flat buffers or one tensor at a time, updated by `kernel` (see [`Kernel`]).
    pub fn with_kernel(params: Vec<Param>, config: AdamWConfig, flat: bool, kernel: Kernel) -> Result<Self> {
        check_betas("adamw", config.betas)?;
        check_eps("adamw", config.eps)?;
        let kind = FusedKind::Adam { betas: config.betas, eps: config.eps, amsgrad: config.amsgrad, decoupled: true };
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?.with_fused(kind).with_kernel(kernel)?))
    }
}
