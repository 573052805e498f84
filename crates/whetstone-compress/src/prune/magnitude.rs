//! Masks that keep the largest scores: magnitude pruning (Han et al. 2015; Zhu & Gupta 2017)
//! and, with other scores, movement pruning.

use super::mask::MaskSet;
use crate::error::{check_sparsity, CompressError, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Over what the sparsity target is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One ranking over all selected tensors: layers that matter less lose more weights.
    #[default]
    Global,
    /// Each selected tensor (layer) is pruned to the target on its own.
    PerLayer,
}

impl std::str::FromStr for Scope {
    type Err = CompressError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "global" => Ok(Scope::Global),
            "per-layer" | "layer" => Ok(Scope::PerLayer),
            _ => Err(CompressError::Unknown { what: "pruning scope", name: s.into(), expected: "global, per-layer".into() }),
        }
    }
}

/// Masks keeping, for each named score tensor, the entries with the highest scores so that
/// exactly `round(sparsity · n)` entries are pruned (over all tensors with [`Scope::Global`],
/// per tensor with [`Scope::PerLayer`]). Ties are broken by position, so the count is exact.
pub fn top_score_masks(scores: &[(String, Tensor)], sparsity: f64, scope: Scope) -> Result<MaskSet> {
    check_sparsity(sparsity)?;
    let mut set = MaskSet::default();
    tch::no_grad(|| -> Result<()> {
        match scope {
            Scope::PerLayer => {
                for (name, s) in scores {
                    let flat = s.f_detach()?.f_to_kind(Kind::Float)?.f_reshape([-1])?;
                    set.insert(name.clone(), keep_top(&flat, sparsity)?.f_view(s.size().as_slice())?)?;
                }
            }
            Scope::Global => {
                let flats = scores.iter().map(|(_, s)| s.f_detach()?.f_to_kind(Kind::Float)?.f_to_device(tch::Device::Cpu)?.f_reshape([-1])).collect::<std::result::Result<Vec<_>, _>>()?;
                let all = keep_top(&Tensor::f_cat(&flats, 0)?, sparsity)?;
                let mut off = 0;
                for (name, s) in scores {
                    let n = s.numel() as i64;
                    set.insert(name.clone(), all.f_narrow(0, off, n)?.f_view(s.size().as_slice())?.f_to_device(s.device())?)?;
                    off += n;
                }
            }
        }
        Ok(())
    })?;
    Ok(set)
}

/// A 0/1 vector zeroing the `round(sparsity · n)` lowest entries of `flat`.
fn keep_top(flat: &Tensor, sparsity: f64) -> Result<Tensor> {
    let n = flat.numel() as i64;
    let k = (sparsity * n as f64).round() as i64;
    let mut mask = flat.f_ones_like()?;
    if k > 0 {
        let (_, order) = flat.f_sort_stable(true, 0, false)?;
        let _ = mask.f_index_fill_(0, &order.f_narrow(0, 0, k)?, 0.0)?;
    }
    Ok(mask)
}

/// Magnitude pruning: masks keeping the largest |w| of each parameter in `params`.
///
/// ```
/// use whetstone_compress::{magnitude_masks, Scope};
/// use tch::Tensor;
/// let w = Tensor::from_slice(&[0.1f32, -3.0, 0.2, 4.0]).view([2, 2]);
/// let masks = magnitude_masks(&[("w".into(), w)], 0.5, Scope::PerLayer)?;
/// assert_eq!(Vec::<f32>::try_from(masks.get("w").unwrap().view([-1]))?, vec![0.0, 1.0, 0.0, 1.0]);
/// assert!(magnitude_masks(&[], 1.0, Scope::Global).is_err()); // sparsity must be in [0, 1)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn magnitude_masks(params: &[(String, Tensor)], sparsity: f64, scope: Scope) -> Result<MaskSet> {
    check_sparsity(sparsity)?;
    let scores = params.iter().map(|(n, p)| Ok((n.clone(), p.f_detach()?.f_abs()?))).collect::<Result<Vec<_>>>()?;
    top_score_masks(&scores, sparsity, scope)
}
