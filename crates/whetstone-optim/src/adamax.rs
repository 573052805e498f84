//! Adamax: Adam with the infinity norm (Kingma & Ba 2015, section 7.1).

use crate::chain_optimizer::{check_betas, check_eps, named_optimizer, ChainOptimizer};
use crate::error::Result;
use crate::params::Param;
use crate::transform::{add_l2_decay, chain, scale_by_learning_rate, Chain, StepCtx, Transform, TransformState};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Adamax hyper-parameters. Defaults are torch.optim.Adamax's: β = (0.9, 0.999), ε = 1e-8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamaxConfig {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε, added to |g| before the maximum (as torch does).
    pub eps: f64,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-8 }
    }
}

/// Adamax's scaling: `m ← lerp(m, g, 1−β₁); u∞ ← max(β₂u∞, |g| + ε)`; `u = m / u∞ / (1−β₁ᵗ)`.
/// State: `exp_avg`, `exp_inf`.
#[derive(Debug, Clone)]
pub struct ScaleByAdamax {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε.
    pub eps: f64,
}

impl Transform for ScaleByAdamax {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        TransformState::zeros(&["exp_avg", "exp_inf"], params)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let (b1, b2) = self.betas;
        let bc = 1.0 - b1.powi(ctx.step as i32);
        let (ms, us) = state.buf2("exp_avg", "exp_inf")?;
        for (i, g) in updates.iter_mut().enumerate() {
            let _ = ms[i].f_lerp_(&*g, 1.0 - b1)?;
            let _ = us[i].f_mul_scalar_(b2)?;
            let a = g.f_abs()?.f_add_scalar(self.eps)?;
            let _ = us[i].f_maximum_out(&us[i], &a)?;
            *g = ms[i].f_div(&us[i])?.f_div_scalar(bc)?;
        }
        Ok(())
    }
}

impl AdamaxConfig {
    /// `add_l2_decay → adamax → lr`.
    pub fn chain(&self) -> Chain {
        chain(vec![add_l2_decay(), Box::new(ScaleByAdamax { betas: self.betas, eps: self.eps }), scale_by_learning_rate()])
    }
}

/// Adamax, the update of `torch.optim.Adamax` (see [`ScaleByAdamax`]).
///
/// ```
/// use whetstone_optim::{named_params, Adamax, AdamaxConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Adamax::new(named_params(&vs, 0.0, NO_DECAY), AdamaxConfig::default())?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(2e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Adamax(ChainOptimizer);
named_optimizer!(Adamax);

impl Adamax {
    /// Adamax over `params` on flat buffers.
    pub fn new(params: Vec<Param>, config: AdamaxConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }
    /// Adamax with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: AdamaxConfig, flat: bool) -> Result<Self> {
        check_betas("adamax", config.betas)?;
        check_eps("adamax", config.eps)?;
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?))
    }
}
