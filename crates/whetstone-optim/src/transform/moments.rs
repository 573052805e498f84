//! Second-moment scalings: Adam, RMSprop and AdaBelief.

use super::{StepCtx, Transform, TransformState};
use crate::error::Result;
use tch::Tensor;

/// Adam's moment estimates (Kingma & Ba 2015), optionally AMSGrad (Reddi et al. 2018):
/// `m ← lerp(m, g, 1−β₁); v ← β₂v + (1−β₂)g²; v̂max ← max(v̂max, v)` and
/// `u = (m / (√v / √(1−β₂ᵗ) + ε)) / (1−β₁ᵗ)`. State: `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`.
#[derive(Debug, Clone)]
pub struct ScaleByAdam {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε, added to `√v̂`.
    pub eps: f64,
    /// Keep the running maximum of `v` (AMSGrad).
    pub amsgrad: bool,
}

/// [`ScaleByAdam`] as a boxed transform.
pub fn scale_by_adam(betas: (f64, f64), eps: f64, amsgrad: bool) -> Box<dyn Transform> {
    Box::new(ScaleByAdam { betas, eps, amsgrad })
}

/// `v ← β v + (1−β) g²`, torch's `v.mul_(β).addcmul_(g, g, value=1−β)`.
pub(crate) fn ema_sq_(v: &mut Tensor, g: &Tensor, beta: f64) -> Result<()> {
    let gg = g.f_mul_scalar(1.0 - beta)?.f_mul(g)?;
    let _ = v.f_mul_scalar_(beta)?;
    let _ = v.f_add_(&gg)?;
    Ok(())
}

impl Transform for ScaleByAdam {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        let names: &[&str] = if self.amsgrad { &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] } else { &["exp_avg", "exp_avg_sq"] };
        TransformState::zeros(names, params)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let (b1, b2) = self.betas;
        let t = ctx.step as i32;
        let bc1 = 1.0 - b1.powi(t);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let maxes = if self.amsgrad { Some(state.buf("max_exp_avg_sq")?.iter().map(Tensor::shallow_clone).collect::<Vec<_>>()) } else { None };
        let (ms, vs) = state.buf2("exp_avg", "exp_avg_sq")?;
        for (i, u) in updates.iter_mut().enumerate() {
            let (m, v) = (&mut ms[i], &mut vs[i]);
            let _ = m.f_lerp_(&*u, 1.0 - b1)?;
            ema_sq_(v, u, b2)?;
            let mut denom = match &maxes {
                Some(mx) => {
                    let mx = &mx[i];
                    let _ = mx.f_maximum_out(mx, v)?;
                    mx.f_sqrt()?
                }
                None => v.f_sqrt()?,
            };
            let _ = denom.f_div_scalar_(bc2_sqrt)?;
            let _ = denom.f_add_scalar_(self.eps)?;
            *u = m.f_div(&denom)?.f_div_scalar(bc1)?;
        }
        Ok(())
    }
}

/// RMSprop's scaling (Hinton 2012; centred as in Graves 2013):
/// `s ← αs + (1−α)g²`; centred: `ḡ ← lerp(ḡ, g, 1−α)`, `u = g / (√(s − ḡ²) + ε)`, else
/// `u = g / (√s + ε)`. State: `square_avg`, `grad_avg`.
#[derive(Debug, Clone)]
pub struct ScaleByRms {
    /// Smoothing constant α.
    pub alpha: f64,
    /// ε, added to the root.
    pub eps: f64,
    /// Subtract the squared mean gradient (variance instead of second moment).
    pub centered: bool,
}

/// [`ScaleByRms`] as a boxed transform.
pub fn scale_by_rms(alpha: f64, eps: f64, centered: bool) -> Box<dyn Transform> {
    Box::new(ScaleByRms { alpha, eps, centered })
}

impl Transform for ScaleByRms {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        let names: &[&str] = if self.centered { &["square_avg", "grad_avg"] } else { &["square_avg"] };
        TransformState::zeros(names, params)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, _ctx: &StepCtx) -> Result<()> {
        let gavg = if self.centered { Some(state.buf("grad_avg")?.iter().map(Tensor::shallow_clone).collect::<Vec<_>>()) } else { None };
        let sq = state.buf("square_avg")?;
        for (i, u) in updates.iter_mut().enumerate() {
            ema_sq_(&mut sq[i], u, self.alpha)?;
            let mut avg = match &gavg {
                Some(ga) => {
                    let mut ga = ga[i].shallow_clone();
                    let _ = ga.f_lerp_(&*u, 1.0 - self.alpha)?;
                    sq[i].f_sub(&ga.f_mul(&ga)?)?.f_sqrt()?
                }
                None => sq[i].f_sqrt()?,
            };
            let _ = avg.f_add_scalar_(self.eps)?;
            *u = u.f_div(&avg)?;
        }
        Ok(())
    }
}

/// AdaBelief's scaling (Zhuang et al. 2020, official `adabelief-pytorch` 0.2 without
/// rectification): `m ← β₁m + (1−β₁)g; s ← β₂s + (1−β₂)(g−m)² + ε` (ε enters the state, as in the
/// official code); `u = (m / (√s / √(1−β₂ᵗ) + ε)) / (1−β₁ᵗ)`. State: `exp_avg`, `exp_avg_var`.
#[derive(Debug, Clone)]
pub struct ScaleByBelief {
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// ε (the official default is 1e-16).
    pub eps: f64,
}

/// [`ScaleByBelief`] as a boxed transform.
pub fn scale_by_belief(betas: (f64, f64), eps: f64) -> Box<dyn Transform> {
    Box::new(ScaleByBelief { betas, eps })
}

impl Transform for ScaleByBelief {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        TransformState::zeros(&["exp_avg", "exp_avg_var"], params)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let (b1, b2) = self.betas;
        let t = ctx.step as i32;
        let bc1 = 1.0 - b1.powi(t);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let (ms, ss) = state.buf2("exp_avg", "exp_avg_var")?;
        for (i, u) in updates.iter_mut().enumerate() {
            let (m, s) = (&mut ms[i], &mut ss[i]);
            let _ = m.f_mul_scalar_(b1)?;
            let _ = m.f_add_(&u.f_mul_scalar(1.0 - b1)?)?;
            let r = u.f_sub(m)?;
            ema_sq_(s, &r, b2)?;
            let _ = s.f_add_scalar_(self.eps)?;
            let mut denom = s.f_sqrt()?;
            let _ = denom.f_div_scalar_(bc2_sqrt)?;
            let _ = denom.f_add_scalar_(self.eps)?;
            *u = m.f_div(&denom)?.f_div_scalar(bc1)?;
        }
        Ok(())
    }
}
