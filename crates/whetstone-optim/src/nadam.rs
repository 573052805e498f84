//! NAdam: Adam with Nesterov momentum (Dozat 2016, "Incorporating Nesterov Momentum into Adam"),
//! with torch's momentum-decay schedule μₜ = β₁(1 − ½·0.96^(t·ψ)).

use crate::chain_optimizer::{check_betas, check_eps, named_optimizer, ChainOptimizer};
use crate::error::Result;
use crate::params::Param;
use crate::transform::{add_decayed_weights, add_l2_decay, chain, scale_by_learning_rate, Chain, StepCtx, Transform, TransformState};
use crate::transform::{ema_sq_, scalar_state};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// NAdam hyper-parameters. Defaults are torch.optim.NAdam's: β = (0.9, 0.999), ε = 1e-8,
/// ψ = 4e-3, L2 (not decoupled) weight decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NAdamConfig {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε, added to √v̂.
    pub eps: f64,
    /// ψ, how fast μₜ approaches β₁.
    pub momentum_decay: f64,
    /// Decoupled weight decay (NAdamW) instead of L2.
    pub decoupled_weight_decay: bool,
}

impl Default for NAdamConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-8, momentum_decay: 4e-3, decoupled_weight_decay: false }
    }
}

/// NAdam's scaling: with `μₜ`, `Πₜ = ∏μᵢ`, `d = √(v/(1−β₂ᵗ)) + ε`:
/// `u = (1−μₜ)/(1−Πₜ) · g/d + μₜ₊₁/(1−Πₜμₜ₊₁) · m/d`. State: `exp_avg`, `exp_avg_sq`, scalar
/// `nadam.mu_product`.
#[derive(Debug, Clone)]
pub struct ScaleByNadam {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε.
    pub eps: f64,
    /// ψ.
    pub momentum_decay: f64,
}

impl Transform for ScaleByNadam {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        let mut s = TransformState::zeros(&["exp_avg", "exp_avg_sq"], params)?;
        s.scalars.push(scalar_state("nadam.mu_product", 1.0));
        Ok(s)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let (b1, b2) = self.betas;
        let t = ctx.step as f64;
        let bc2 = 1.0 - b2.powf(t);
        let mu = b1 * (1.0 - 0.5 * 0.96f64.powf(t * self.momentum_decay));
        let mu_next = b1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * self.momentum_decay));
        let prod = state.scalar("nadam.mu_product")?;
        *prod *= mu;
        let mu_product = *prod;
        let c_g = (1.0 - mu) / (1.0 - mu_product);
        let c_m = mu_next / (1.0 - mu_product * mu_next);
        let (ms, vs) = state.buf2("exp_avg", "exp_avg_sq")?;
        for (i, u) in updates.iter_mut().enumerate() {
            let _ = ms[i].f_lerp_(&*u, 1.0 - b1)?;
            ema_sq_(&mut vs[i], u, b2)?;
            let mut denom = vs[i].f_div_scalar(bc2)?.f_sqrt()?;
            let _ = denom.f_add_scalar_(self.eps)?;
            let a = u.f_mul_scalar(c_g)?.f_div(&denom)?;
            *u = a.f_add(&ms[i].f_mul_scalar(c_m)?.f_div(&denom)?)?;
        }
        Ok(())
    }
}

impl NAdamConfig {
    /// `add_l2_decay → nadam → lr`, or `nadam → add_decayed_weights → lr` when decoupled.
    pub fn chain(&self) -> Chain {
        let core: Box<dyn Transform> = Box::new(ScaleByNadam { betas: self.betas, eps: self.eps, momentum_decay: self.momentum_decay });
        if self.decoupled_weight_decay {
            chain(vec![core, add_decayed_weights(), scale_by_learning_rate()])
        } else {
            chain(vec![add_l2_decay(), core, scale_by_learning_rate()])
        }
    }
}

/// NAdam, the update of `torch.optim.NAdam` (see [`ScaleByNadam`]).
///
/// ```
/// use whetstone_optim::{named_params, NAdam, NAdamConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = NAdam::new(named_params(&vs, 0.0, NO_DECAY), NAdamConfig::default())?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(2e-3)?;
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct NAdam(ChainOptimizer);
named_optimizer!(NAdam);

impl NAdam {
    /// NAdam over `params` (flat buffers when `flat`).
    pub fn new(params: Vec<Param>, config: NAdamConfig) -> Result<Self> {
        Self::with_layout(params, config, true)
    }
    /// NAdam with flat buffers or one tensor at a time.
    pub fn with_layout(params: Vec<Param>, config: NAdamConfig, flat: bool) -> Result<Self> {
        check_betas("nadam", config.betas)?;
        check_eps("nadam", config.eps)?;
        Ok(Self(ChainOptimizer::new(params, config.chain(), flat)?))
    }
}
