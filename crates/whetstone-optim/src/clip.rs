//! Gradient clipping.

use crate::error::Result;
use tch::{Kind, Tensor};

/// Scale all gradients so that their global L2 norm is at most `max_norm`, exactly as
/// `torch.nn.utils.clip_grad_norm_` does (coefficient `max_norm / (norm + 1e-6)`, clamped to 1).
/// Returns the norm before clipping, which is non-finite when a gradient is.
pub fn clip_grad_norm(params: &[&Tensor], max_norm: f64) -> Result<f64> {
    let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).filter(|g| g.defined()).collect();
    if grads.is_empty() {
        return Ok(0.0);
    }
    tch::no_grad(|| {
        let norms = grads.iter().map(|g| g.f_norm()?.f_to_kind(Kind::Float)).collect::<std::result::Result<Vec<_>, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
        // The ops of tch's `max_norm / (&total + 1e-6)`, which computes `((total + 1e-6) /
        // max_norm)⁻¹`; kept op for op so that the clipped gradients do not change.
        let coef = total.f_add_scalar(1e-6)?.f_div_scalar(max_norm)?.f_pow_tensor_scalar(-1)?.f_clamp_max(1.0)?;
        for g in &grads {
            let mut g = g.shallow_clone();
            let _ = g.f_mul_(&coef.f_to_kind(g.kind())?)?;
        }
        Ok(total.f_double_value(&[])?)
    })
}

/// The global L2 norm of the gradients, without changing them.
pub fn grad_norm(params: &[&Tensor]) -> f64 {
    let norms: Vec<Tensor> = params.iter().map(|p| p.grad()).filter(|g| g.defined()).map(|g| g.norm().to_kind(Kind::Float)).collect();
    if norms.is_empty() {
        return 0.0;
    }
    Tensor::stack(&norms, 0).norm().double_value(&[])
}

/// Clamp every gradient element to `[−clip, clip]`, as `torch.nn.utils.clip_grad_value_`.
///
/// ```
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let lin = tch::nn::linear(vs.root(), 3, 2, Default::default());
/// (lin.ws.sum(tch::Kind::Float) * 10.0).backward();
/// whetstone_optim::clip_grad_value(&[&lin.ws], 1.0)?;
/// assert_eq!(lin.ws.grad().max().double_value(&[]), 1.0);
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
pub fn clip_grad_value(params: &[&Tensor], clip: f64) -> Result<()> {
    tch::no_grad(|| {
        for p in params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.f_clamp_(-clip, clip)?;
            }
        }
        Ok(())
    })
}
