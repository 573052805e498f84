//! Semi-structured N:M sparsity (NVIDIA Ampere's 2:4; Mishra et al. 2021, "Accelerating Sparse
//! Deep Neural Networks"; Zhou et al. 2021, "Learning N:M Fine-grained Structured Sparse Neural
//! Networks From Scratch").

use super::mask::MaskSet;
use crate::error::{CompressError, Result};
use tch::{Kind, Tensor};

/// Masks keeping, in every group of `m` consecutive weights along the input dimension (the last
/// one of a Linear weight `[out, in]`), the `n` of largest magnitude. `in` must be a multiple
/// of `m`, and `0 < n < m`.
///
/// ```
/// use whetstone_compress::nm_masks;
/// use tch::Tensor;
/// let w = Tensor::from_slice(&[1.0f32, -4.0, 3.0, 2.0, 0.5, 0.1, -0.2, 0.3]).view([1, 8]);
/// let m = nm_masks(&[("w".into(), w)], 2, 4)?;
/// assert_eq!(Vec::<f32>::try_from(m.get("w").unwrap().view([-1]))?, vec![0., 1., 1., 0., 1., 0., 0., 1.]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn nm_masks(params: &[(String, Tensor)], n: i64, m: i64) -> Result<MaskSet> {
    if !(0 < n && n < m) {
        return Err(CompressError::Config(format!("N:M sparsity needs 0 < N < M, got {n}:{m}")));
    }
    let mut set = MaskSet::default();
    tch::no_grad(|| -> Result<()> {
        for (name, w) in params {
            let cols = *w.size().last().unwrap_or(&0);
            if w.dim() < 1 || cols % m != 0 {
                return Err(CompressError::Config(format!("`{name}` has shape {:?}: its last dimension must be a multiple of M = {m}", w.size())));
            }
            let groups = w.f_detach()?.f_abs()?.f_to_kind(Kind::Float)?.f_reshape([-1, m])?;
            let (_, top) = groups.f_topk(n, -1, true, false)?;
            let mask = groups.f_zeros_like()?.f_scatter_value(-1, &top, 1.0)?;
            set.insert(name.clone(), mask.f_view(w.size().as_slice())?)?;
        }
        Ok(())
    })?;
    Ok(set)
}

/// True when every group of `m` consecutive entries along the last dimension of `mask` has at
/// most `n` non-zeros.
pub fn is_nm_sparse(mask: &Tensor, n: i64, m: i64) -> Result<bool> {
    let per_group = mask.f_ne(0.0)?.f_reshape([-1, m])?.f_sum_dim_intlist(-1, false, Kind::Int64)?;
    Ok(per_group.f_max()?.f_int64_value(&[])? <= n)
}
