//! Weight decay, trust ratio and the final learning-rate scaling.

use super::{StepCtx, Transform, TransformState};
use crate::error::Result;
use tch::{Kind, Tensor};

/// `u ← u + λθ` with each slot's λ ([`StepCtx::weight_decay`], 0 for biases / LayerNorm).
/// Placed before the scaling it is L2 regularisation (`torch.optim.Adam(weight_decay=λ)`);
/// placed after it, decoupled decay (AdamW, Loshchilov & Hutter 2019). Stateless.
#[derive(Debug, Clone)]
pub struct AddDecayedWeights;

/// Alias of [`AddDecayedWeights`] for the L2 position (first in the chain).
pub type AddL2Decay = AddDecayedWeights;

/// Decoupled weight decay: put it after the adaptive scaling.
pub fn add_decayed_weights() -> Box<dyn Transform> {
    Box::new(AddDecayedWeights)
}

/// L2 weight decay added to the gradient: put it first.
pub fn add_l2_decay() -> Box<dyn Transform> {
    Box::new(AddDecayedWeights)
}

impl Transform for AddDecayedWeights {
    fn init(&self, _params: &[Tensor]) -> Result<TransformState> {
        Ok(TransformState::default())
    }

    fn update(&self, updates: &mut [Tensor], _state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        for ((u, p), &wd) in updates.iter_mut().zip(ctx.params).zip(ctx.weight_decay) {
            if wd != 0.0 {
                *u = u.f_add(&p.f_mul_scalar(wd)?)?;
            }
        }
        Ok(())
    }
}

/// `u ← −η u`: the last transform of a chain; its output is added to the parameters.
#[derive(Debug, Clone)]
pub struct ScaleByLearningRate;

/// [`ScaleByLearningRate`] as a boxed transform.
pub fn scale_by_learning_rate() -> Box<dyn Transform> {
    Box::new(ScaleByLearningRate)
}

impl Transform for ScaleByLearningRate {
    fn init(&self, _params: &[Tensor]) -> Result<TransformState> {
        Ok(TransformState::default())
    }

    fn update(&self, updates: &mut [Tensor], _state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        for u in updates.iter_mut() {
            *u = u.f_mul_scalar(-ctx.lr)?;
        }
        Ok(())
    }
}

/// LAMB's layer-wise trust ratio (You et al. 2020): `u ← u · ‖θ‖/‖u‖` per tensor, 1 when either
/// norm is zero. Not elementwise, so a chain with it never uses flat buffers.
#[derive(Debug, Clone)]
pub struct ScaleByTrustRatio;

/// [`ScaleByTrustRatio`] as a boxed transform.
pub fn scale_by_trust_ratio() -> Box<dyn Transform> {
    Box::new(ScaleByTrustRatio)
}

impl Transform for ScaleByTrustRatio {
    fn init(&self, _params: &[Tensor]) -> Result<TransformState> {
        Ok(TransformState::default())
    }

    fn update(&self, updates: &mut [Tensor], _state: &mut TransformState, ctx: &StepCtx) -> Result<()> {
        for (u, p) in updates.iter_mut().zip(ctx.params) {
            let wn = p.f_norm()?.f_to_kind(Kind::Double)?.f_double_value(&[])?;
            let un = u.f_norm()?.f_to_kind(Kind::Double)?.f_double_value(&[])?;
            if wn > 0.0 && un > 0.0 {
                *u = u.f_mul_scalar(wn / un)?;
            }
        }
        Ok(())
    }

    fn elementwise(&self) -> bool {
        false
    }
}
