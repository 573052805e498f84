//! RAdam: Adam with variance rectification (Liu et al. 2020, "On the Variance of the Adaptive
//! Learning Rate and Beyond").

use crate::chain_optimizer::{check_betas, check_eps, named_optimizer, ChainOptimizer};
use crate::error::Result;
use crate::params::Param;
use crate::transform::ema_sq_;
use crate::transform::{add_decayed_weights, add_l2_decay, chain, scale_by_learning_rate, Chain, StepCtx, Transform, TransformState};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// RAdam hyper-parameters. Defaults are torch.optim.RAdam's: β = (0.9, 0.999), ε = 1e-8,
/// L2 weight decay unless `decoupled_weight_decay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RAdamConfig {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε, added to √v (not √v̂, as in torch).
    pub eps: f64,
    /// Decoupled weight decay (as AdamW) instead of L2.
    pub decoupled_weight_decay: bool,
}

impl Default for RAdamConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-8, decoupled_weight_decay: false }
    }
}

/// RAdam's scaling: `ρ∞ = 2/(1−β₂) − 1`, `ρₜ = ρ∞ − 2tβ₂ᵗ/(1−β₂ᵗ)`; when `ρₜ > 5`,
/// `r = √((ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ))` and `u = m̂ · r·√(1−β₂ᵗ)/(√v + ε)`, else `u = m̂`
/// (SGD with momentum while the variance estimate is unreliable). State: `exp_avg`, `exp_avg_sq`.
#[derive(Debug, Clone)]
pub struct ScaleByRadam {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε.
    pub eps: f64,
}

impl Transform for ScaleByRadam {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        TransformState::zeros(&["exp_avg", "exp_avg_sq"], params)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let (b1, b2) = self.betas;
        let t = ctx.step as f64;
        let bc1 = 1.0 - b1.powf(t);
        let bc2 = 1.0 - b2.powf(t);
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
        let (ms, vs) = state.buf2("exp_avg", "exp_avg_sq")?;
        for (i, u) in updates.iter_mut().enumerate() {
            let _ = ms[i].f_lerp_(&*u, 1.0 - b1)?;
            ema_sq_(&mut vs[i], u, b2)?;
            let m_hat = ms[i].f_div_scalar(bc1)?;
            *u = if rho_t > 5.0 {
                let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt();
                let mut d = vs[i].f_sqrt()?;
                let _ = d.f_add_scalar_(self.eps)?;
                let adaptive = d.f_reciprocal()?.f_mul_scalar(bc2.sqrt())?;
                m_hat.f_mul(&adaptive)?.f_mul_scalar(rect)?
            } else {
                m_hat
            };
        }
        Ok(())
    }
}

impl RAdamConfig {
    /// `add_l2_decay → radam → lr`, or `radam → add_decayed_weights → lr` when decoupled.
    pub fn chain(&self) -> Chain {
        let core: Box<dyn Transform> = Box::new(ScaleByRadam { betas: self.betas, eps: self.eps });
        if self.decoupled_weight_decay {
            chain(vec![core, add_decayed_weights(), scale_by_learning_rate()])
        } else {
            chain(vec![add_l2_decay(), core, scale_by_learning_rate()])
        }
    }
}

/// RAdam, the update of `torch.optim.RAdam` (see [`ScaleByRadam`]).
///
/// ```
/// use whetstone_optim::{named_params, Optimizer, RAdam, RAdamConfig, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = RAdam::new(named_params(&vs, 0.01, NO_DECAY), RAdamConfig { decoupled_weight_decay: true, ..Default::default() })?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(1e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct RAdam(ChainOptimizer);
named_optimizer!(RAdam);

impl RAdam {
    /// RAdam over `params` on flat buffers.
    pub fn new(params: Vec<Param>, config: RAdamConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }
    /// RAdam with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: RAdamConfig, flat: bool) -> Result<Self> {
        check_betas("radam", config.betas)?;
        check_eps("radam", config.eps)?;
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?))
    }
}
