//! AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019).

use crate::error::{OptimError, Result};
use crate::optimizer::Optimizer;
use crate::params::Param;
use crate::state::OptimState;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// AdamW hyper-parameters. Defaults are torch.optim.AdamW's: β = (0.9, 0.999), ε = 1e-8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// Decay rates of the first and second moment estimates.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { betas: (0.9, 0.999), eps: 1e-8 }
    }
}

/// AdamW with the same arithmetic as `torch.optim.AdamW` (single-tensor path):
///
/// θ ← θ(1 − ηλ); m ← lerp(m, g, 1−β₁); v ← β₂v + (1−β₂)g²;
/// θ ← θ − (η / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
#[derive(Debug)]
pub struct AdamW {
    params: Vec<Param>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    config: AdamWConfig,
    step: u64,
}

impl AdamW {
    /// AdamW over `params` (weight decay is per parameter).
    pub fn new(params: Vec<Param>, config: AdamWConfig) -> Result<Self> {
        let (b1, b2) = config.betas;
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            return Err(OptimError::Config(format!("adamw betas must be in [0, 1), got ({b1}, {b2})")));
        }
        if config.eps < 0.0 {
            return Err(OptimError::Config(format!("adamw eps must be >= 0, got {}", config.eps)));
        }
        let exp_avg = params.iter().map(|p| p.tensor.zeros_like()).collect();
        let exp_avg_sq = params.iter().map(|p| p.tensor.zeros_like()).collect();
        Ok(Self { params, exp_avg, exp_avg_sq, config, step: 0 })
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, lr: f64) -> Result<()> {
        self.step += 1;
        let (b1, b2) = self.config.betas;
        let t = self.step as i32;
        let step_size = lr / (1.0 - b1.powi(t));
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let eps = self.config.eps;
        tch::no_grad(|| -> Result<()> {
            for ((p, m), v) in self.params.iter_mut().zip(self.exp_avg.iter_mut()).zip(self.exp_avg_sq.iter_mut()) {
                let g = p.tensor.grad();
                if !g.defined() {
                    continue;
                }
                if p.weight_decay != 0.0 {
                    p.tensor.f_mul_scalar_(1.0 - lr * p.weight_decay)?;
                }
                m.f_lerp_(&g, 1.0 - b1)?;
                v.f_mul_scalar_(b2)?;
                v.f_add_(&((&g * (1.0 - b2)) * &g))?;
                let mut denom = v.f_sqrt()?;
                denom.f_div_scalar_(bc2_sqrt)?;
                denom.f_add_scalar_(eps)?;
                let mut upd = &*m * -step_size;
                upd.f_div_(&denom)?;
                p.tensor.f_add_(&upd)?;
            }
            Ok(())
        })
    }

    fn params(&self) -> Vec<&Tensor> {
        self.params.iter().map(|p| &p.tensor).collect()
    }

    fn state(&self) -> OptimState {
        let mut tensors = Vec::with_capacity(2 * self.params.len());
        for ((p, m), v) in self.params.iter().zip(&self.exp_avg).zip(&self.exp_avg_sq) {
            tensors.push((format!("{}.exp_avg", p.name), m.copy()));
            tensors.push((format!("{}.exp_avg_sq", p.name), v.copy()));
        }
        OptimState { step: self.step, tensors }
    }

    fn load_state(&mut self, state: &OptimState) -> Result<()> {
        let mut ms = Vec::new();
        let mut vs = Vec::new();
        for p in &self.params {
            ms.push(state.take(&format!("{}.exp_avg", p.name), &p.tensor)?);
            vs.push(state.take(&format!("{}.exp_avg_sq", p.name), &p.tensor)?);
        }
        self.exp_avg = ms;
        self.exp_avg_sq = vs;
        self.step = state.step;
        Ok(())
    }
}
