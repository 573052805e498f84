//! RMSprop (Hinton 2012, Coursera lecture 6e), centred as in Graves 2013 ("Generating Sequences
//! With Recurrent Neural Networks"), with optional momentum.

use crate::chain_optimizer::{check_eps, named_optimizer, ChainOptimizer};
use crate::error::{OptimError, Result};
use crate::params::Param;
use crate::transform::{add_l2_decay, chain, scale_by_learning_rate, scale_by_rms, trace, Chain};
use serde::{Deserialize, Serialize};

/// RMSprop hyper-parameters. Defaults are torch.optim.RMSprop's: α = 0.99, ε = 1e-8, not
/// centred, no momentum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmspropConfig {
    /// Smoothing constant α of the squared-gradient average.
    pub alpha: f64,
    /// ε, added to the root.
    pub eps: f64,
    /// Normalise by the variance estimate `s − ḡ²` instead of `s`.
    pub centered: bool,
    /// Momentum μ on the scaled gradient (0 = none).
    pub momentum: f64,
}

impl Default for RmspropConfig {
    fn default() -> Self {
        Self { alpha: 0.99, eps: 1e-8, centered: false, momentum: 0.0 }
    }
}

impl RmspropConfig {
    /// `add_l2_decay → scale_by_rms → trace (if μ > 0) → lr`.
    pub fn chain(&self) -> Chain {
        let mut parts = vec![add_l2_decay(), scale_by_rms(self.alpha, self.eps, self.centered)];
        if self.momentum > 0.0 {
            parts.push(trace(self.momentum, 0.0, false));
        }
        parts.push(scale_by_learning_rate());
        chain(parts)
    }
}

/// RMSprop, the update of `torch.optim.RMSprop`:
/// `g ← g + λθ; s ← αs + (1−α)g²; d = √s + ε` (centred: `ḡ ← lerp(ḡ, g, 1−α)`, `d = √(s−ḡ²) + ε`);
/// `b ← μb + g/d; θ ← θ − ηb` (or `θ ← θ − ηg/d` without momentum).
///
/// ```
/// use whetstone_optim::{named_params, Optimizer, Rmsprop, RmspropConfig, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Rmsprop::new(named_params(&vs, 0.0, NO_DECAY), RmspropConfig { centered: true, momentum: 0.9, ..Default::default() })?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Rmsprop(ChainOptimizer);
named_optimizer!(Rmsprop);

impl Rmsprop {
    /// RMSprop over `params` on flat buffers.
    pub fn new(params: Vec<Param>, config: RmspropConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }
    /// RMSprop with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: RmspropConfig, flat: bool) -> Result<Self> {
        check_eps("rmsprop", config.eps)?;
        if !(0.0..=1.0).contains(&config.alpha) || config.momentum < 0.0 {
            return Err(OptimError::Config("rmsprop alpha must be in [0, 1] and momentum >= 0".into()));
        }
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?))
    }
}
