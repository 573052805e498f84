//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"; update as in the
//! paper's Algorithm 2 and the authors' reference code).

use crate::chain_optimizer::{check_betas, named_optimizer, ChainOptimizer};
use crate::error::Result;
use crate::params::Param;
use crate::transform::{add_decayed_weights, chain, scale_by_learning_rate, scale_by_sign_momentum, Chain};
use serde::{Deserialize, Serialize};

/// Lion hyper-parameters. Defaults are the paper's: β = (0.9, 0.99). Lion wants a learning
/// rate 3–10× smaller and a weight decay 3–10× larger than AdamW's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LionConfig {
    /// (β₁ for the update direction, β₂ for the momentum).
    pub betas: (f64, f64),
}

impl Default for LionConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.99) }
    }
}

impl LionConfig {
    /// `scale_by_sign_momentum → add_decayed_weights → lr`.
    pub fn chain(&self) -> Chain {
        chain(vec![scale_by_sign_momentum(self.betas), add_decayed_weights(), scale_by_learning_rate()])
    }
}

/// Lion: `θ ← θ − η(sign(β₁m + (1−β₁)g) + λθ); m ← β₂m + (1−β₂)g`.
///
/// ```
/// use whetstone_optim::{named_params, Lion, LionConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Lion::new(named_params(&vs, 0.1, NO_DECAY), LionConfig::default())?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-4)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Lion(ChainOptimizer);
named_optimizer!(Lion);

impl Lion {
    /// Lion over `params` on flat buffers.
    pub fn new(params: Vec<Param>, config: LionConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }
    /// Lion with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: LionConfig, flat: bool) -> Result<Self> {
        check_betas("lion", config.betas)?;
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?))
    }
}
