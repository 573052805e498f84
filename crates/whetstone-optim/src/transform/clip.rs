//! Clipping inside a chain.

use super::{StepCtx, Transform, TransformState};
use crate::error::Result;
use tch::{Kind, Tensor};

/// Clamp every update element to `[−c, c]` (`torch.nn.utils.clip_grad_value_`). Stateless.
#[derive(Debug, Clone)]
pub struct ClipByValue {
    /// c.
    pub max: f64,
}

/// [`ClipByValue`] as a boxed transform.
pub fn clip_by_value(max: f64) -> Box<dyn Transform> {
    Box::new(ClipByValue { max })
}

impl Transform for ClipByValue {
    fn init(&self, _params: &[Tensor]) -> Result<TransformState> {
        Ok(TransformState::default())
    }

    fn update(&self, updates: &mut [Tensor], _state: &mut TransformState, _ctx: &StepCtx) -> Result<()> {
        for u in updates.iter_mut() {
            *u = u.f_clamp(-self.max, self.max)?;
        }
        Ok(())
    }
}

/// Scale all updates so that their joint L2 norm is at most `max_norm` (coefficient
/// `max_norm / (‖u‖ + 1e-6)` clamped to 1, as `clip_grad_norm_`). The global norm does not
/// depend on how parameters are laid out, so this works on flat buffers too. Stateless.
#[derive(Debug, Clone)]
pub struct ClipByGlobalNorm {
    /// Largest allowed norm.
    pub max_norm: f64,
}

/// [`ClipByGlobalNorm`] as a boxed transform.
pub fn clip_by_global_norm(max_norm: f64) -> Box<dyn Transform> {
    Box::new(ClipByGlobalNorm { max_norm })
}

impl Transform for ClipByGlobalNorm {
    fn init(&self, _params: &[Tensor]) -> Result<TransformState> {
        Ok(TransformState::default())
    }

    fn update(&self, updates: &mut [Tensor], _state: &mut TransformState, _ctx: &StepCtx) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let norms = updates.iter().map(|u| u.f_norm()?.f_to_kind(Kind::Double)).collect::<std::result::Result<Vec<_>, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
        let coef = (self.max_norm / (total + 1e-6)).min(1.0);
        if coef < 1.0 {
            for u in updates.iter_mut() {
                *u = u.f_mul_scalar(coef)?;
            }
        }
        Ok(())
    }
}
