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
                // One ranking on the first score's device (the model's): no copy to the host.
                let device = scores.first().map_or(tch::Device::Cpu, |(_, s)| s.device());
                let flats = scores.iter().map(|(_, s)| s.f_detach()?.f_to_kind(Kind::Float)?.f_to_device(device)?.f_reshape([-1])).collect::<std::result::Result<Vec<_>, _>>()?;
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

/// A 0/1 vector zeroing the `round(sparsity · n)` lowest entries of `flat`: the first `k` of a
/// stable ascending sort, so equal scores are pruned in order of position.
///
/// Found by selection rather than by sorting: `t`, the k-th smallest score, is the one order
/// statistic needed; every score below `t` is pruned, and of the scores equal to `t` the first
/// `k − #{< t}` by position. That is exactly the stable sort's first `k`, in O(n) and on the
/// scores' device; the one read back to the host is the NaN check's flag (a full sort of
/// MiniLM's 10.6M encoder weights took 1.6 s on one CPU thread, at every mask update; the
/// selection 0.34 s). Scores with a NaN keep the sort, which orders NaN last.
fn keep_top(flat: &Tensor, sparsity: f64) -> Result<Tensor> {
    let n = flat.numel() as i64;
    let k = (sparsity * n as f64).round() as i64;
    if k == 0 {
        return Ok(flat.f_ones_like()?);
    }
    if flat.f_isnan()?.f_any()?.f_int64_value(&[])? != 0 {
        return keep_top_by_sort(flat, k);
    }
    let (t, _) = flat.f_kthvalue(k, 0, false)?;
    let below = flat.f_lt_tensor(&t)?;
    let at = flat.f_eq_tensor(&t)?;
    // Scores equal to t still to prune, and each equal score's rank among them (1, 2, …).
    let wanted = below.f_sum(Kind::Int64)?.f_neg()?.f_add_scalar(k)?;
    let rank = at.f_cumsum(0, Kind::Int64)?;
    let pruned = below.f_logical_or(&at.f_logical_and(&rank.f_le_tensor(&wanted)?)?)?;
    Ok(pruned.f_logical_not()?.f_to_kind(flat.kind())?)
}

/// [`keep_top`] by a stable sort: the reference, and the path for scores with a NaN.
fn keep_top_by_sort(flat: &Tensor, k: i64) -> Result<Tensor> {
    let mut mask = flat.f_ones_like()?;
    let (_, order) = flat.f_sort_stable(true, 0, false)?;
    let _ = mask.f_index_fill_(0, &order.f_narrow(0, 0, k)?, 0.0)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Selection and the stable sort prune exactly the same entries, with heavy ties, at every
    /// count from none to all but one, and with a NaN (which takes the sort path).
    #[test]
    fn selection_prunes_what_the_stable_sort_prunes() {
        tch::manual_seed(3);
        for (n, levels) in [(1i64, 1i64), (7, 2), (64, 3), (1000, 10), (4099, 1_000_000)] {
            // Few distinct values, so most k fall inside a run of ties.
            let flat = Tensor::randint(levels, [n], (Kind::Float, tch::Device::Cpu)).f_div_scalar(levels as f64).unwrap();
            for k in (1..n).step_by(((n / 37) as usize).max(1)).chain([n - 1]) {
                let sparsity = k as f64 / n as f64;
                let fast = keep_top(&flat, sparsity).unwrap();
                let slow = keep_top_by_sort(&flat, (sparsity * n as f64).round() as i64).unwrap();
                assert!(fast.equal(&slow), "n {n}, levels {levels}, k {k}");
                assert_eq!(fast.sum(Kind::Int64).int64_value(&[]), n - (sparsity * n as f64).round() as i64);
            }
        }
        let with_nan = Tensor::from_slice(&[0.5f32, f32::NAN, 0.1, 0.5, 0.2]);
        let m = keep_top(&with_nan, 0.6).unwrap();
        assert_eq!(Vec::<f32>::try_from(&m).unwrap(), vec![0.0, 1.0, 0.0, 1.0, 0.0]);
    }
}
