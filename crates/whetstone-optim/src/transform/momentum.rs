//! Momentum: heavy-ball / Nesterov trace, and Lion's signed interpolation.

use super::{StepCtx, Transform, TransformState};
use crate::error::Result;
use tch::Tensor;

/// Momentum as in `torch.optim.SGD`: `b₁ = u`, then `b ← μb + (1−τ)u`; the output is
/// `u + μb` (Nesterov) or `b`. State: `momentum_buffer`.
#[derive(Debug, Clone)]
pub struct Trace {
    /// μ.
    pub momentum: f64,
    /// τ (not applied on the first step, as in torch).
    pub dampening: f64,
    /// Nesterov's look-ahead form (Sutskever et al. 2013).
    pub nesterov: bool,
}

/// [`Trace`] as a boxed transform.
pub fn trace(momentum: f64, dampening: f64, nesterov: bool) -> Box<dyn Transform> {
    Box::new(Trace { momentum, dampening, nesterov })
}

impl Transform for Trace {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        TransformState::zeros(&["momentum_buffer"], params)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        let bufs = state.buf("momentum_buffer")?;
        for (u, b) in updates.iter_mut().zip(bufs.iter_mut()) {
            if ctx.step == 1 {
                b.f_copy_(u)?;
            } else {
                let _ = b.f_mul_scalar_(self.momentum)?;
                let _ = b.f_add_(&u.f_mul_scalar(1.0 - self.dampening)?)?;
            }
            *u = if self.nesterov { u.f_add(&b.f_mul_scalar(self.momentum)?)? } else { b.shallow_clone() };
        }
        Ok(())
    }
}

/// Lion's update direction (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"):
/// `u = sign(β₁m + (1−β₁)g)`, then `m ← β₂m + (1−β₂)g`. State: `exp_avg`.
#[derive(Debug, Clone)]
pub struct ScaleBySignMomentum {
    /// (β₁, β₂).
    pub betas: (f64, f64),
}

/// [`ScaleBySignMomentum`] as a boxed transform.
pub fn scale_by_sign_momentum(betas: (f64, f64)) -> Box<dyn Transform> {
    Box::new(ScaleBySignMomentum { betas })
}

impl Transform for ScaleBySignMomentum {
    fn init(&self, params: &[Tensor]) -> Result<TransformState> {
        TransformState::zeros(&["exp_avg"], params)
    }

    fn update(&self, updates: &mut [Tensor], state: &mut TransformState, _ctx: &StepCtx) -> Result<()> {
        let (b1, b2) = self.betas;
        for (u, m) in updates.iter_mut().zip(state.buf("exp_avg")?.iter_mut()) {
            let dir = m.f_mul_scalar(b1)?.f_add(&u.f_mul_scalar(1.0 - b1)?)?.f_sign()?;
            let _ = m.f_mul_scalar_(b2)?;
            let _ = m.f_add_(&u.f_mul_scalar(1.0 - b2)?)?;
            *u = dir;
        }
        Ok(())
    }
}
