//! Adagrad (Duchi, Hazan & Singer 2011, "Adaptive Subgradient Methods for Online Learning and
//! Stochastic Optimization").

use crate::chain_optimizer::{check_eps, named_optimizer, ChainOptimizer};
use crate::error::{OptimError, Result};
use crate::params::Param;
use crate::transform::{add_l2_decay, chain, scale_by_learning_rate, Chain, StepCtx, Transform, TransformState};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Adagrad hyper-parameters. Defaults are torch.optim.Adagrad's: no learning-rate decay,
/// accumulator starting at 0, ε = 1e-10.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdagradConfig {
    /// ηₜ = η / (1 + (t−1)·lr_decay).
    pub lr_decay: f64,
    /// Starting value of the squared-gradient sum.
    pub initial_accumulator_value: f64,
    /// ε, added to √sum.
    pub eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self { lr_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 }
    }
}

/// Adagrad's scaling: `s ← s + g²`, `u = g / (√s + ε) / (1 + (t−1)·lr_decay)`. State: `sum`.
#[derive(Debug, Clone)]
pub struct ScaleByAdagrad {
    /// See [`AdagradConfig`].
    pub config: AdagradConfig,
}

impl Transform for ScaleByAdagrad {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        let sums = params.iter().map(|p| p.f_full_like(self.config.initial_accumulator_value)).collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(TransformState { buffers: vec![("sum".into(), sums)], scalars: Vec::new() })
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let decay = 1.0 / (1.0 + (ctx.step as f64 - 1.0) * self.config.lr_decay);
        for (u, s) in updates.iter_mut().zip(state.buf("sum")?.iter_mut()) {
            let _ = s.f_add_(&u.f_mul(u)?)?;
            let mut std = s.f_sqrt()?;
            let _ = std.f_add_scalar_(self.config.eps)?;
            *u = u.f_mul_scalar(decay)?.f_div(&std)?;
        }
        Ok(())
    }
}

impl AdagradConfig {
    /// `add_l2_decay → adagrad → lr`.
    pub fn chain(&self) -> Chain {
        chain(vec![add_l2_decay(), Box::new(ScaleByAdagrad { config: self.clone() }), scale_by_learning_rate()])
    }
}

/// Adagrad, the update of `torch.optim.Adagrad`:
/// `g ← g + λθ; s ← s + g²; θ ← θ − ηₜ g / (√s + ε)`.
///
/// ```
/// use whetstone_optim::{named_params, Adagrad, AdagradConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Adagrad::new(named_params(&vs, 0.0, NO_DECAY), AdagradConfig { initial_accumulator_value: 0.1, ..Default::default() })?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-2)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Adagrad(ChainOptimizer);
named_optimizer!(Adagrad);

impl Adagrad {
    /// Adagrad over `params` on flat buffers.
    pub fn new(params: Vec<Param>, config: AdagradConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }
    /// Adagrad with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: AdagradConfig, flat: bool) -> Result<Self> {
        check_eps("adagrad", config.eps)?;
        if config.lr_decay < 0.0 || config.initial_accumulator_value < 0.0 {
            return Err(OptimError::Config("adagrad lr_decay and initial_accumulator_value must be >= 0".into()));
        }
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?))
    }
}
