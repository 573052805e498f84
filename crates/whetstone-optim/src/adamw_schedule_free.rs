//! Schedule-Free AdamW (Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky 2024, "The Road Less
//! Scheduled"), following `adamw_schedulefree_reference.py` of facebookresearch/schedule_free.

use crate::chain_optimizer::{check_betas, check_eps};
use crate::error::{OptimError, Result};
use crate::optimizer::{read_scalar, scalar_tensor, Optimizer};
use crate::params::Param;
use crate::state::OptimState;
use crate::transform::ema_sq_;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Schedule-Free AdamW hyper-parameters. Defaults are the reference code's: β = (0.9, 0.999),
/// ε = 1e-8, no internal warm-up, r = 0, weight_lr_power = 2. (Its suggested lr is 2.5e-3; use a
/// constant schedule, optionally with warm-up: no decay is needed, which is the point.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleFreeAdamWConfig {
    /// (β₁ = interpolation between x and z, β₂ = second-moment decay).
    pub betas: (f64, f64),
    /// ε, added to √v̂.
    pub eps: f64,
    /// Internal linear warm-up steps (0: rely on the caller's schedule).
    pub warmup_steps: u64,
    /// Polynomial weighting power r of the averaging weights.
    pub r: f64,
    /// Averaging weights grow as lr_max^weight_lr_power.
    pub weight_lr_power: f64,
}

impl Default for ScheduleFreeAdamWConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-8, warmup_steps: 0, r: 0.0, weight_lr_power: 2.0 }
    }
}

/// Schedule-Free AdamW. The model's parameters hold the gradient point `y`; the optimiser keeps
/// the base sequence `z` and the average `x`. Per step t (1-based), with `ηₜ` the (warmed-up)
/// learning rate, `η_max = max ηₜ`, `wₜ = tʳ η_max^p`, `cₜ = wₜ / Σwᵢ`:
///
/// `v ← β₂v + (1−β₂)g²; ĝ = g / (√(v/(1−β₂ᵗ)) + ε) + λy; z ← z − ηₜĝ; x ← (1−cₜ)x + cₜz;
/// y ← β₁x + (1−β₁)z`.
///
/// Evaluate at `x`, not `y`: call [`Optimizer::eval_mode`] before validation (parameters ← x)
/// and [`Optimizer::train_mode`] after (parameters ← y), or read [`ScheduleFreeAdamW::eval_params`].
/// State: `{param}.z`, `{param}.x`, `{param}.exp_avg_sq`, `schedule_free.lr_max`,
/// `schedule_free.weight_sum`.
///
/// ```
/// use whetstone_optim::{named_params, Optimizer, ScheduleFreeAdamW, ScheduleFreeAdamWConfig, NO_DECAY};
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// let mut opt = ScheduleFreeAdamW::new(named_params(&vs, 0.0, NO_DECAY), ScheduleFreeAdamWConfig::default())?;
/// # lin.ws.sum(tch::Kind::Float).backward();
/// opt.step(2.5e-3)?;
/// opt.eval_mode()?; // parameters now hold x
/// opt.train_mode()?; // back to y
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
#[derive(Debug)]
pub struct ScheduleFreeAdamW {
    params: Vec<Param>,
    z: Vec<Tensor>,
    x: Vec<Tensor>,
    v: Vec<Tensor>,
    config: ScheduleFreeAdamWConfig,
    lr_max: f64,
    weight_sum: f64,
    step: u64,
    eval: bool,
}

impl ScheduleFreeAdamW {
    /// Over `params`; `z` and `x` start at the current parameters.
    pub fn new(params: Vec<Param>, config: ScheduleFreeAdamWConfig) -> Result<Self> {
        check_betas("schedulefree-adamw", config.betas)?;
        check_eps("schedulefree-adamw", config.eps)?;
        let copy = |p: &Param| p.tensor.f_detach().map(|t| t.copy());
        let (z, x, v) = tch::no_grad(|| -> Result<_> {
            Ok((
                params.iter().map(copy).collect::<std::result::Result<Vec<_>, _>>()?,
                params.iter().map(copy).collect::<std::result::Result<Vec<_>, _>>()?,
                params.iter().map(|p| p.tensor.f_zeros_like()).collect::<std::result::Result<Vec<_>, _>>()?,
            ))
        })?;
        Ok(Self { params, z, x, v, config, lr_max: -1.0, weight_sum: 0.0, step: 0, eval: false })
    }

    /// The evaluation weights `x`, one per parameter.
    pub fn eval_params(&self) -> &[Tensor] {
        &self.x
    }

    fn y(&self, i: usize) -> Result<Tensor> {
        Ok(self.x[i].f_mul_scalar(self.config.betas.0)?.f_add(&self.z[i].f_mul_scalar(1.0 - self.config.betas.0)?)?)
    }
}

impl Optimizer for ScheduleFreeAdamW {
    fn step(&mut self, lr: f64) -> Result<()> {
        if self.eval {
            return Err(OptimError::State("schedule-free step in eval mode: call train_mode() first".into()));
        }
        let c = &self.config;
        let k = self.step;
        let sched = if k < c.warmup_steps { (k + 1) as f64 / c.warmup_steps as f64 } else { 1.0 };
        let (b1, b2) = c.betas;
        let bc2 = 1.0 - b2.powi((k + 1) as i32);
        let lr_t = lr * sched;
        self.lr_max = self.lr_max.max(lr_t);
        let weight = ((k + 1) as f64).powf(c.r) * self.lr_max.powf(c.weight_lr_power);
        self.weight_sum += weight;
        let ckp1 = if self.weight_sum != 0.0 { weight / self.weight_sum } else { 0.0 };
        tch::no_grad(|| -> Result<()> {
            for (i, p) in self.params.iter().enumerate() {
                let g = p.tensor.grad();
                if !g.defined() {
                    continue;
                }
                ema_sq_(&mut self.v[i], &g, b2)?;
                let mut denom = self.v[i].f_div_scalar(bc2)?.f_sqrt()?;
                let _ = denom.f_add_scalar_(c.eps)?;
                let mut gn = g.f_div(&denom)?;
                if p.weight_decay != 0.0 {
                    gn = gn.f_add(&p.tensor.f_mul_scalar(p.weight_decay)?)?;
                }
                let _ = self.z[i].f_sub_(&gn.f_mul_scalar(lr_t)?)?;
                let _ = self.x[i].f_mul_scalar_(1.0 - ckp1)?;
                let _ = self.x[i].f_add_(&self.z[i].f_mul_scalar(ckp1)?)?;
                let y = self.x[i].f_mul_scalar(b1)?.f_add(&self.z[i].f_mul_scalar(1.0 - b1)?)?;
                p.tensor.shallow_clone().f_copy_(&y)?;
            }
            Ok(())
        })?;
        self.step += 1;
        Ok(())
    }

    fn params(&self) -> Vec<&Tensor> {
        self.params.iter().map(|p| &p.tensor).collect()
    }

    fn state(&self) -> OptimState {
        let mut tensors = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            tensors.push((format!("{}.z", p.name), self.z[i].copy()));
            tensors.push((format!("{}.x", p.name), self.x[i].copy()));
            tensors.push((format!("{}.exp_avg_sq", p.name), self.v[i].copy()));
        }
        tensors.push(("schedule_free.lr_max".into(), scalar_tensor(self.lr_max)));
        tensors.push(("schedule_free.weight_sum".into(), scalar_tensor(self.weight_sum)));
        OptimState { step: self.step, tensors }
    }

    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        for (i, p) in self.params.iter().enumerate() {
            self.z[i] = state.take(&format!("{}.z", p.name), &p.tensor)?;
            self.x[i] = state.take(&format!("{}.x", p.name), &p.tensor)?;
            self.v[i] = state.take(&format!("{}.exp_avg_sq", p.name), &p.tensor)?;
        }
        self.lr_max = read_scalar(state, "schedule_free.lr_max")?;
        self.weight_sum = read_scalar(state, "schedule_free.weight_sum")?;
        self.step = state.step;
        self.eval = false;
        Ok(())
    }

    fn eval_mode(&mut self) -> Result<()> {
        if !self.eval {
            tch::no_grad(|| -> Result<()> {
                for (p, x) in self.params.iter().zip(&self.x) {
                    p.tensor.shallow_clone().f_copy_(x)?;
                }
                Ok(())
            })?;
            self.eval = true;
        }
        Ok(())
    }

    fn train_mode(&mut self) -> Result<()> {
        if self.eval {
            tch::no_grad(|| -> Result<()> {
                for i in 0..self.params.len() {
                    let y = self.y(i)?;
                    self.params[i].tensor.shallow_clone().f_copy_(&y)?;
                }
                Ok(())
            })?;
            self.eval = false;
        }
        Ok(())
    }
}
