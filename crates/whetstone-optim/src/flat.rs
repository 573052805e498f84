//! Flat ("multi-tensor") parameter buffers.
//!
//! The parameters of a group that share dtype, device and weight decay are copied into one
//! contiguous 1-D buffer, and every `VarStore` variable is rebound to a view of it with
//! `Tensor::set_data` (the same trick as `p.data = flat[a:b].view_as(p)` in Apex / DeepSpeed:
//! the variable keeps its identity, `requires_grad` and autograd hooks; only its storage moves).
//! The gradients are rebound the same way to views of a flat gradient buffer; autograd then
//! accumulates into them in place (`AccumulateGrad` adds into an existing `.grad` when grad mode
//! is off, which is how `backward` runs), so a step reads the gradients as one tensor and the
//! update is a handful of large kernels instead of a loop over hundreds of small tensors.
//!
//! Caveats: every variable gets a (zero) gradient when the buffers are built, so a parameter
//! that took no part in the forward pass is updated with a zero gradient instead of being
//! skipped (torch's `zero_grad(set_to_none=False)` behaves the same way); and anything that
//! later replaces a variable's storage (`VarStore::set_kind`, `half()`, or `set_data`) detaches
//! it from the buffer. Copying into variables in place (`copy_`, `VarStore::load`) is fine.

use crate::error::{OptimError, Result};
use crate::params::Param;
use tch::{Device, Kind, Tensor};

/// One flat buffer: the members' parameters and gradients, side by side.
#[derive(Debug)]
pub struct FlatBucket {
    /// All members' values, 1-D and contiguous; each member variable is a view of it.
    pub param: Tensor,
    /// All members' gradients; each member's `.grad()` is a view of it.
    pub grad: Tensor,
    /// `(index into the parameter list, offset, shape)` of each member.
    pub members: Vec<(usize, i64, Vec<i64>)>,
    /// Weight decay shared by the members.
    pub weight_decay: f64,
}

impl FlatBucket {
    /// The view of `buffer` (laid out like `self.param`) that belongs to member `j`.
    pub fn member_view(&self, buffer: &Tensor, j: usize) -> Result<Tensor> {
        let (_, off, shape) = &self.members[j];
        let n: i64 = shape.iter().product();
        Ok(buffer.f_narrow(0, *off, n)?.f_view(shape.as_slice())?)
    }
}

/// Give every parameter a defined gradient (zeros where there was none), so it can be rebound.
fn ensure_grads(params: &[Param]) -> Result<()> {
    define_grads(&params.iter().map(|p| &p.tensor).collect::<Vec<_>>())
}

/// Give every tensor that requires a gradient and has none a zero gradient (by a backward pass
/// of `0 · Σ t`), so that `.grad()` is a defined tensor that later backward passes add into.
pub fn define_grads(tensors: &[&Tensor]) -> Result<()> {
    let missing: Vec<&Tensor> = tensors.iter().copied().filter(|t| t.requires_grad() && !t.grad().defined()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    tch::with_grad(|| -> Result<()> {
        let mut total: Option<Tensor> = None;
        for t in missing {
            let z = t.f_sum(t.kind())?.f_mul_scalar(0.0)?.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
            total = Some(match total {
                None => z,
                Some(t) => t.f_add(&z)?,
            });
        }
        if let Some(t) = total {
            t.f_backward()?;
        }
        Ok(())
    })
}

/// Move `params` into flat buckets (one per dtype × device × weight decay) and rebind the
/// variables and their gradients to views of them. Fails on non-float or sparse parameters.
pub fn flatten(params: &[Param]) -> Result<Vec<FlatBucket>> {
    for p in params {
        if !matches!(p.tensor.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16) {
            return Err(OptimError::Config(format!("parameter `{}` has kind {:?}; flat buffers need floating point", p.name, p.tensor.kind())));
        }
    }
    ensure_grads(params)?;
    let mut keys: Vec<(Kind, Device, u64)> = Vec::new();
    for p in params {
        let k = (p.tensor.kind(), p.tensor.device(), p.weight_decay.to_bits());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    tch::no_grad(|| {
        let mut buckets = Vec::new();
        for (kind, device, wd) in keys {
            let idx: Vec<usize> = params.iter().enumerate().filter(|(_, p)| (p.tensor.kind(), p.tensor.device(), p.weight_decay.to_bits()) == (kind, device, wd)).map(|(i, _)| i).collect();
            let flats = idx.iter().map(|&i| params[i].tensor.f_detach()?.f_reshape([-1])).collect::<std::result::Result<Vec<_>, _>>()?;
            let gflats = idx.iter().map(|&i| params[i].tensor.grad().f_reshape([-1])).collect::<std::result::Result<Vec<_>, _>>()?;
            let flat_p = Tensor::f_cat(&flats, 0)?.f_contiguous()?;
            let flat_g = Tensor::f_cat(&gflats, 0)?.f_contiguous()?;
            let mut members = Vec::with_capacity(idx.len());
            let mut off = 0i64;
            for &i in &idx {
                let shape = params[i].tensor.size();
                members.push((i, off, shape.clone()));
                off += shape.iter().product::<i64>();
            }
            let bucket = FlatBucket { param: flat_p, grad: flat_g, members, weight_decay: f64::from_bits(wd) };
            for (j, &(i, _, _)) in bucket.members.iter().enumerate() {
                let mut t = params[i].tensor.shallow_clone();
                t.f_set_data(&bucket.member_view(&bucket.param, j)?)?;
                let mut g = params[i].tensor.grad();
                g.f_set_data(&bucket.member_view(&bucket.grad, j)?)?;
            }
            buckets.push(bucket);
        }
        Ok(buckets)
    })
}

/// True when every member variable and gradient still aliases its bucket.
pub fn still_bound(buckets: &[FlatBucket], params: &[Param]) -> bool {
    buckets.iter().all(|b| {
        b.members.iter().enumerate().all(|(j, (i, _, _))| {
            let p = &params[*i].tensor;
            let g = p.grad();
            let off = (b.members[j].1 as usize) * p.kind().elt_size_in_bytes();
            g.defined() && p.data_ptr() as usize == b.param.data_ptr() as usize + off && g.data_ptr() as usize == b.grad.data_ptr() as usize + off
        })
    })
}
