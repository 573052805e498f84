//! LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
//! minutes", Algorithm 2 with bias correction and φ = identity).

use crate::chain_optimizer::{check_betas, check_eps, named_optimizer, ChainOptimizer};
use crate::error::Result;
use crate::params::Param;
use crate::transform::{add_decayed_weights, chain, scale_by_adam, scale_by_learning_rate, scale_by_trust_ratio, Chain};
use serde::{Deserialize, Serialize};

/// LAMB hyper-parameters. Defaults: β = (0.9, 0.999), ε = 1e-6 (the paper's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LambConfig {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε, added to √v̂.
    pub eps: f64,
}

impl Default for LambConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-6 }
    }
}

impl LambConfig {
    /// `scale_by_adam → add_decayed_weights → scale_by_trust_ratio → lr`.
    pub fn chain(&self) -> Chain {
        chain(vec![scale_by_adam(self.betas, self.eps, false), add_decayed_weights(), scale_by_trust_ratio(), scale_by_learning_rate()])
    }
}

/// LAMB: `r = m̂/(√v̂ + ε) + λθ`, then per tensor `θ ← θ − η · (‖θ‖/‖r‖) · r` (ratio 1 when
/// either norm is 0). The trust ratio is per tensor, so LAMB never uses flat buffers.
///
/// ```
/// use whetstone_optim::{named_params, Lamb, LambConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Lamb::new(named_params(&vs, 0.01, NO_DECAY), LambConfig::default())?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Lamb(ChainOptimizer);
named_optimizer!(Lamb);

impl Lamb {
    /// LAMB over `params`.
    pub fn new(params: Vec<Param>, config: LambConfig) -> Result<Self> {
        check_betas("lamb", config.betas)?;
        check_eps("lamb", config.eps)?;
        Ok(Self(ChainOptimizer::new(params, config.chain(), false)?))
    }
}
