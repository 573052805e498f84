//! Finiteness checks before anything is saved.

use crate::error::Result;
use tch::Tensor;

/// The name of the first tensor holding a NaN or an infinity (integer tensors are skipped).
///
/// ```
/// let (ok, bad) = (tch::Tensor::from_slice(&[1.0f32, 2.0]), tch::Tensor::from_slice(&[1.0f32, f32::NAN]));
/// let found = whetstone_train::first_non_finite([("a".to_string(), &ok), ("b".to_string(), &bad)])?;
/// assert_eq!(found.as_deref(), Some("b"));
/// # Ok::<(), whetstone_train::TrainError>(())
/// ```
pub fn first_non_finite<'t>(named: impl IntoIterator<Item = (String, &'t Tensor)>) -> Result<Option<String>> {
    // The one check the checkpoint loaders use too.
    Ok(whetstone_models::first_non_finite(named)?)
}
