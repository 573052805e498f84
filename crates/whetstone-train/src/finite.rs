//! Finiteness checks before anything is saved.

use crate::error::Result;
use tch::Tensor;

/// The name of the first tensor holding a NaN or an infinity (integer tensors are skipped).
pub fn first_non_finite<'t>(named: impl IntoIterator<Item = (String, &'t Tensor)>) -> Result<Option<String>> {
    for (name, t) in named {
        if !t.defined() || !t.is_floating_point() || t.numel() == 0 {
            continue;
        }
        if t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
            return Ok(Some(name));
        }
    }
    Ok(None)
}
