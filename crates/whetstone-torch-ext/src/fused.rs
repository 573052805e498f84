//! libtorch's fused optimiser kernels (`torch.optim`'s `fused=True`): one kernel per tensor
//! list that reads θ, g and the state once and writes them once, on CPU and CUDA.
//!
//! These are the raw kernels: they update `params` and the state buffers in place and *read*
//! `steps` (one float32 scalar tensor per parameter holding the step number, already
//! incremented for this step, as torch.optim does before calling them). Lengths are checked
//! here, and so are shapes, dtypes, devices and layouts (libtorch's CPU kernels trust them);
//! anything libtorch still refuses comes back as [`ExtError::Torch`].

use crate::error::{ExtError, Result};
use crate::ffi;
use std::ffi::c_int;
use tch::Tensor;
use torch_sys::C_tensor;

/// Adam / AdamW hyper-parameters for one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamArgs {
    /// Learning rate.
    pub lr: f64,
    /// (β₁, β₂).
    pub betas: (f64, f64),
    /// Weight decay: decoupled (θ ← θ(1 − ηλ)) when `decoupled`, else L2 (g ← g + λθ).
    pub weight_decay: f64,
    /// ε.
    pub eps: f64,
    /// AMSGrad (needs `max_exp_avg_sqs`).
    pub amsgrad: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
    /// AdamW (`_fused_adamw_`) instead of Adam (`_fused_adam_`).
    pub decoupled: bool,
}

/// The tensors of one Adam call, index-aligned.
#[derive(Debug, Clone, Copy)]
pub struct AdamBuffers<'a> {
    /// Parameters, updated in place.
    pub params: &'a [Tensor],
    /// Their gradients.
    pub grads: &'a [Tensor],
    /// First moments.
    pub exp_avgs: &'a [Tensor],
    /// Second moments.
    pub exp_avg_sqs: &'a [Tensor],
    /// Running maxima of the second moments: one per parameter with AMSGrad, else empty.
    pub max_exp_avg_sqs: &'a [Tensor],
    /// Step numbers (float32 scalars), read only.
    pub steps: &'a [Tensor],
}

/// Gradient-scaler inputs: the kernels divide the gradients by `scale` and skip the update
/// (leaving everything untouched) where `found_inf` is non-zero, as `torch.amp.GradScaler`
/// arranges with fused optimisers.
#[derive(Debug, Clone, Copy)]
pub struct Unscale<'a> {
    /// The loss scale (float32 scalar on the parameters' device).
    pub scale: &'a Tensor,
    /// 1.0 when a non-finite gradient was found, else 0.0 (float32 scalar).
    pub found_inf: &'a Tensor,
}

fn same_len(what: &str, n: usize, got: usize) -> Result<()> {
    if n == got {
        Ok(())
    } else {
        Err(ExtError::Invalid(format!("fused kernel: {got} {what} for {n} parameters")))
    }
}

fn defined(name: &str, ts: &[Tensor]) -> Result<()> {
    match ts.iter().position(|t| !t.defined()) {
        Some(i) => Err(ExtError::Invalid(format!("fused kernel: {name}[{i}] is undefined"))),
        None => Ok(()),
    }
}

/// libtorch's kernels trust their inputs (the CPU kernel walks `param.numel()` elements of every
/// buffer through raw pointers), so everything that makes that safe is checked here: per
/// index, every buffer is a defined, dense, contiguous tensor with the parameter's shape, dtype
/// and device, and the step is a one-element float32 tensor.
fn check_aligned(n: usize, lists: &[(&str, &[Tensor])], steps: Option<&[Tensor]>) -> Result<()> {
    let bad = |name: &str, i: usize, what: String| Err(ExtError::Invalid(format!("fused kernel: {name}[{i}] {what}")));
    for i in 0..n {
        let p = &lists[0].1[i];
        let (shape, kind, device) = (p.size(), p.kind(), p.device());
        if !matches!(kind, tch::Kind::Float | tch::Kind::Double | tch::Kind::Half | tch::Kind::BFloat16) {
            return bad(lists[0].0, i, format!("has dtype {kind:?}; the kernels update floating-point tensors"));
        }
        for &(name, ts) in lists {
            let Some(t) = ts.get(i) else { continue };
            if t.is_sparse() || t.is_mkldnn() {
                return bad(name, i, "is not a dense tensor".into());
            }
            if t.size() != shape {
                return bad(name, i, format!("has shape {:?}, the parameter {shape:?}", t.size()));
            }
            if t.kind() != kind {
                return bad(name, i, format!("has dtype {:?}, the parameter {kind:?}", t.kind()));
            }
            if t.device() != device {
                return bad(name, i, format!("is on {:?}, the parameter on {device:?}", t.device()));
            }
            if !t.is_contiguous() {
                return bad(name, i, "is not contiguous".into());
            }
        }
        if let Some(steps) = steps {
            let s = &steps[i];
            if s.numel() != 1 || s.kind() != tch::Kind::Float {
                return bad("steps", i, format!("must be a one-element float32 tensor (got {:?} {:?})", s.size(), s.kind()));
            }
        }
    }
    Ok(())
}

fn unscale_handles(u: Option<Unscale<'_>>) -> Result<(*mut C_tensor, *mut C_tensor)> {
    match u {
        None => Ok((std::ptr::null_mut(), std::ptr::null_mut())),
        Some(u) => {
            for (name, t) in [("grad scale", u.scale), ("found_inf", u.found_inf)] {
                if !t.defined() || t.numel() != 1 || t.kind() != tch::Kind::Float {
                    return Err(ExtError::Invalid(format!("fused kernel: the {name} must be a one-element float32 tensor")));
                }
            }
            Ok((u.scale.as_ptr() as *mut C_tensor, u.found_inf.as_ptr() as *mut C_tensor))
        }
    }
}

/// One fused Adam / AdamW update (`at::_fused_adam_` / `at::_fused_adamw_`) of `b.params`.
pub fn adam_(b: AdamBuffers<'_>, args: &AdamArgs, unscale: Option<Unscale<'_>>) -> Result<()> {
    let n = b.params.len();
    same_len("gradients", n, b.grads.len())?;
    same_len("exp_avgs", n, b.exp_avgs.len())?;
    same_len("exp_avg_sqs", n, b.exp_avg_sqs.len())?;
    same_len("steps", n, b.steps.len())?;
    same_len(if args.amsgrad { "max_exp_avg_sqs (AMSGrad)" } else { "max_exp_avg_sqs (no AMSGrad: none)" }, if args.amsgrad { n } else { 0 }, b.max_exp_avg_sqs.len())?;
    for (name, ts) in [("params", b.params), ("grads", b.grads), ("exp_avgs", b.exp_avgs), ("exp_avg_sqs", b.exp_avg_sqs), ("max_exp_avg_sqs", b.max_exp_avg_sqs), ("steps", b.steps)] {
        defined(name, ts)?;
    }
    check_aligned(n, &[("params", b.params), ("grads", b.grads), ("exp_avgs", b.exp_avgs), ("exp_avg_sqs", b.exp_avg_sqs), ("max_exp_avg_sqs", b.max_exp_avg_sqs)], Some(b.steps))?;
    if n == 0 {
        return Ok(());
    }
    let (scale, found) = unscale_handles(unscale)?;
    let (p, g, m, v, vm, s) = (ffi::handles(b.params), ffi::handles(b.grads), ffi::handles(b.exp_avgs), ffi::handles(b.exp_avg_sqs), ffi::handles(b.max_exp_avg_sqs), ffi::handles(b.steps));
    // SAFETY: every array holds the stated number of live tch handles, borrowed for the call.
    let msg = unsafe {
        ffi::wt_fused_adam(
            c_int::from(args.decoupled),
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            vm.as_ptr(),
            vm.len() as i64,
            s.as_ptr(),
            n as i64,
            args.lr,
            args.betas.0,
            args.betas.1,
            args.weight_decay,
            args.eps,
            c_int::from(args.amsgrad),
            c_int::from(args.maximize),
            scale,
            found,
        )
    };
    ffi::check(if args.decoupled { "_fused_adamw_" } else { "_fused_adam_" }, msg)
}

/// SGD hyper-parameters for one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdArgs {
    /// Learning rate.
    pub lr: f64,
    /// Momentum μ (0: plain SGD, no buffers).
    pub momentum: f64,
    /// Dampening τ.
    pub dampening: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
    /// The first step (the momentum buffer is initialised to the gradient).
    pub first_step: bool,
}

/// One fused SGD update (`at::_fused_sgd_`) of `params`; `momentum_buffers` has one buffer per
/// parameter when `momentum != 0`, else none.
pub fn sgd_(params: &[Tensor], grads: &[Tensor], momentum_buffers: &[Tensor], args: &SgdArgs, unscale: Option<Unscale<'_>>) -> Result<()> {
    let n = params.len();
    same_len("gradients", n, grads.len())?;
    same_len("momentum buffers", if args.momentum != 0.0 { n } else { 0 }, momentum_buffers.len())?;
    for (name, ts) in [("params", params), ("grads", grads), ("momentum_buffers", momentum_buffers)] {
        defined(name, ts)?;
    }
    check_aligned(n, &[("params", params), ("grads", grads), ("momentum_buffers", momentum_buffers)], None)?;
    if n == 0 {
        return Ok(());
    }
    let (scale, found) = unscale_handles(unscale)?;
    let (p, g, b) = (ffi::handles(params), ffi::handles(grads), ffi::handles(momentum_buffers));
    // SAFETY: every array holds the stated number of live tch handles, borrowed for the call.
    let msg = unsafe {
        ffi::wt_fused_sgd(
            p.as_ptr(),
            g.as_ptr(),
            b.as_ptr(),
            b.len() as i64,
            n as i64,
            args.weight_decay,
            args.momentum,
            args.lr,
            args.dampening,
            c_int::from(args.nesterov),
            c_int::from(args.maximize),
            c_int::from(args.first_step),
            scale,
            found,
        )
    };
    ffi::check("_fused_sgd_", msg)
}
