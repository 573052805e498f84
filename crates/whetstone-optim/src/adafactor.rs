//! Adafactor (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
//! Cost"), following the fairseq / Hugging Face implementation.

use crate::chain_optimizer::{named_optimizer, ChainOptimizer};
use crate::error::{OptimError, Result};
use crate::params::Param;
use crate::transform::{chain, Chain, StepCtx, Transform, TransformState};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Adafactor hyper-parameters. Defaults are Hugging Face's except `relative_step`, which is
/// off so that the learning rate (and its schedule) comes from the caller: ε = (1e-30, 1e-3),
/// clip threshold 1, decay rate −0.8, no first moment, `scale_parameter` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdafactorConfig {
    /// (ε₁ added to g², ε₂ lower bound of the parameter RMS when scaling the step).
    pub eps: (f64, f64),
    /// d: the update is divided by max(1, RMS(u)/d).
    pub clip_threshold: f64,
    /// β₂ₜ = 1 − t^decay_rate.
    pub decay_rate: f64,
    /// First-moment coefficient; `None` keeps no first moment (the paper's memory saving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    /// Multiply the step size by max(ε₂, RMS(θ)) (relative step sizes).
    pub scale_parameter: bool,
    /// Use ρₜ = min(1e-2, 1/√t) as the learning rate, ignoring the one passed to `step`.
    pub relative_step: bool,
    /// With `relative_step`, ρₜ = min(1e-6·t, 1/√t) (warm-up).
    pub warmup_init: bool,
}

impl Default for AdafactorConfig {
    fn default() -> Self {
        Self { eps: (1e-30, 1e-3), clip_threshold: 1.0, decay_rate: -0.8, beta1: None, scale_parameter: true, relative_step: false, warmup_init: false }
    }
}

/// Adafactor's whole update, learning rate and decoupled weight decay included (the step size
/// depends on the parameter, so it cannot be a separate `scale_by_learning_rate`). For a tensor
/// with ≥ 2 dimensions the second moment is factored into row and column means of the last two
/// axes: `R ← β₂ₜR + (1−β₂ₜ)mean₋₁(g²+ε₁)`, `C ← β₂ₜC + (1−β₂ₜ)mean₋₂(g²+ε₁)`,
/// `v̂ = (R / mean(R)) ⊗ C`; vectors keep the full `v`. Then `u = g/√v̂`,
/// `u ← u / max(1, RMS(u)/d)`, `u ← αₜu` with `αₜ = ρₜ · max(ε₂, RMS(θ))`, optional first moment,
/// and `θ ← θ − αₜλθ − u`. State: `exp_avg_sq_row`, `exp_avg_sq_col` (matrices), `exp_avg_sq`
/// (vectors), `exp_avg` (with β₁). Not elementwise.
#[derive(Debug, Clone)]
pub struct ScaleByAdafactor {
    /// See [`AdafactorConfig`].
    pub config: AdafactorConfig,
}

fn rms(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_norm()?.f_div_scalar((t.numel() as f64).sqrt())?)
}

impl Transform for ScaleByAdafactor {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        let (mut rows, mut cols, mut full, mut avg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in params {
            let s = p.size();
            if s.len() >= 2 {
                let (k, d) = (p.kind(), p.device());
                rows.push(Tensor::f_zeros(&s[..s.len() - 1], (k, d))?);
                let mut c = s[..s.len() - 2].to_vec();
                c.push(s[s.len() - 1]);
                cols.push(Tensor::f_zeros(c.as_slice(), (k, d))?);
                full.push(Tensor::new());
            } else {
                rows.push(Tensor::new());
                cols.push(Tensor::new());
                full.push(p.f_zeros_like()?);
            }
            avg.push(if self.config.beta1.is_some() { p.f_zeros_like()? } else { Tensor::new() });
        }
        let buffers = vec![("exp_avg_sq_row".into(), rows), ("exp_avg_sq_col".into(), cols), ("exp_avg_sq".into(), full), ("exp_avg".into(), avg)];
        Ok(TransformState { buffers, scalars: Vec::new() })
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let c = &self.config;
        let t = ctx.step as f64;
        let rel = if c.relative_step { (if c.warmup_init { 1e-6 * t } else { 1e-2 }).min(1.0 / t.sqrt()) } else { ctx.lr };
        let beta2t = 1.0 - t.powf(c.decay_rate);
        let rows = state.buf("exp_avg_sq_row")?.iter().map(Tensor::shallow_clone).collect::<Vec<_>>();
        let cols = state.buf("exp_avg_sq_col")?.iter().map(Tensor::shallow_clone).collect::<Vec<_>>();
        let full = state.buf("exp_avg_sq")?.iter().map(Tensor::shallow_clone).collect::<Vec<_>>();
        let avgs = state.buf("exp_avg")?;
        for (i, g) in updates.iter_mut().enumerate() {
            let p = &ctx.params[i];
            let lr_t = if c.scale_parameter { rms(p)?.f_clamp_min(c.eps.1)?.f_mul_scalar(rel)? } else { Tensor::f_from_slice(&[rel])?.f_to_kind(p.kind())?.f_to_device(p.device())?.f_reshape([])? };
            let sq = g.f_mul(g)?.f_add_scalar(c.eps.0)?;
            let mut u = if rows[i].defined() {
                let (mut r, mut cc) = (rows[i].shallow_clone(), cols[i].shallow_clone());
                let _ = r.f_mul_scalar_(beta2t)?;
                let _ = r.f_add_(&sq.f_mean_dim(-1, false, p.kind())?.f_mul_scalar(1.0 - beta2t)?)?;
                let _ = cc.f_mul_scalar_(beta2t)?;
                let _ = cc.f_add_(&sq.f_mean_dim(-2, false, p.kind())?.f_mul_scalar(1.0 - beta2t)?)?;
                let r_factor = r.f_div(&r.f_mean_dim(-1, true, p.kind())?)?.f_rsqrt()?.f_unsqueeze(-1)?;
                let c_factor = cc.f_unsqueeze(-2)?.f_rsqrt()?;
                r_factor.f_mul(&c_factor)?.f_mul(g)?
            } else {
                let mut v = full[i].shallow_clone();
                let _ = v.f_mul_scalar_(beta2t)?;
                let _ = v.f_add_(&sq.f_mul_scalar(1.0 - beta2t)?)?;
                v.f_rsqrt()?.f_mul(g)?
            };
            let denom = rms(&u)?.f_div_scalar(c.clip_threshold)?.f_clamp_min(1.0)?;
            u = u.f_div(&denom)?.f_mul(&lr_t)?;
            if let Some(b1) = c.beta1 {
                let m = &mut avgs[i];
                let _ = m.f_mul_scalar_(b1)?;
                let _ = m.f_add_(&u.f_mul_scalar(1.0 - b1)?)?;
                u = m.shallow_clone();
            }
            let wd = ctx.weight_decay[i];
            *g = if wd != 0.0 { u.f_add(&p.f_mul(&lr_t)?.f_mul_scalar(wd)?)?.f_neg()? } else { u.f_neg()? };
        }
        Ok(())
    }

    fn elementwise(&self) -> bool {
        false
    }
}

impl AdafactorConfig {
    /// The one-transform chain.
    pub fn chain(&self) -> Chain {
        chain(vec![Box::new(ScaleByAdafactor { config: self.clone() })])
    }
}

/// Adafactor (see [`ScaleByAdafactor`] for the update).
///
/// ```
/// use whetstone_optim::{named_params, Adafactor, AdafactorConfig, Optimizer, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = Adafactor::new(named_params(&vs, 0.0, NO_DECAY), AdafactorConfig { relative_step: true, ..Default::default() })?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(0.0)?; // the learning rate is ignored with relative_step
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct Adafactor(ChainOptimizer);
named_optimizer!(Adafactor);

impl Adafactor {
    /// Adafactor over `params` (per tensor; factored statistics cannot be flattened).
    pub fn new(params: Vec<Param>, config: AdafactorConfig) -> Result<Self> {
        if config.clip_threshold <= 0.0 || config.beta1.is_some_and(|b| !(0.0..1.0).contains(&b)) {
            return Err(OptimError::Config("adafactor needs clip_threshold > 0 and beta1 in [0, 1)".into()));
        }
        Ok(Self(ChainOptimizer::new(params, config.chain(), false)?))
    }
}
