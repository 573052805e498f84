//! AdaBelief (Zhuang et al. 2020, "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
//! Observed Gradients"), following the official `adabelief-pytorch` 0.2 code without
//! rectification (the paper's Algorithm 2).

use crate::chain_optimizer::{check_betas, check_eps, named_optimizer, ChainOptimizer};
use crate::error::Result;
use crate::params::Param;
use crate::transform::{add_decayed_weights, add_l2_decay, chain, scale_by_belief, scale_by_learning_rate, Chain};
use serde::{Deserialize, Serialize};

/// AdaBelief hyper-parameters. Defaults are the official package's: β = (0.9, 0.999),
/// ε = 1e-16, decoupled weight decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaBeliefConfig {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε, added both inside the "belief" state and to its root.
    pub eps: f64,
    /// Decoupled weight decay (`weight_decouple`) instead of L2.
    pub decoupled_weight_decay: bool,
}

impl Default for AdaBeliefConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-16, decoupled_weight_decay: true }
    }
}

impl AdaBeliefConfig {
    /// `scale_by_belief → add_decayed_weights → lr` (or L2 first).
    pub fn chain(&self) -> Chain {
        if self.decoupled_weight_decay {
            chain(vec![scale_by_belief(self.betas, self.eps), add_decayed_weights(), scale_by_learning_rate()])
        } else {
            chain(vec![add_l2_decay(), scale_by_belief(self.betas, self.eps), scale_by_learning_rate()])
        }
    }
}

/// AdaBelief: `m ← β₁m + (1−β₁)g; s ← β₂s + (1−β₂)(g−m)² + ε;
/// θ ← θ(1−ηλ) − η/(1−β₁ᵗ) · m / (√s/√(1−β₂ᵗ) + ε)`.
///
/// ```
/// use whetstone_optim::{named_params, AdaBelief, AdaBeliefConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = AdaBelief::new(named_params(&vs, 0.0, NO_DECAY), AdaBeliefConfig::default())?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct AdaBelief(ChainOptimizer);
named_optimizer!(AdaBelief);

impl AdaBelief {
    /// AdaBelief over `params` on flat buffers.
    pub fn new(params: Vec<Param>, config: AdaBeliefConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }
    /// AdaBelief with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: AdaBeliefConfig, flat: bool) -> Result<Self> {
        check_betas("adabelief", config.betas)?;
        check_eps("adabelief", config.eps)?;
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?))
    }
}
