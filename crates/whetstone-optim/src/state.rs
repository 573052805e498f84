//! Optimiser state as plain data, so it can be checkpointed and restored.

use crate::error::{OptimError, Result};
use tch::Tensor;

/// Everything an optimiser needs to continue exactly where it stopped.
#[derive(Debug)]
pub struct OptimState {
    /// Number of updates taken.
    pub step: u64,
    /// Per-parameter buffers named `"{param}.{buffer}"`, e.g. `"classifier.weight.exp_avg"`.
    pub tensors: Vec<(String, Tensor)>,
}

impl OptimState {
    /// The saved tensor `name`, with a clear error when it is absent.
    pub fn find(&self, name: &str) -> Result<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| OptimError::State(format!("buffer `{name}` is missing")))
    }

    /// Find the buffer `name` shaped like `like`, converted to its kind and device.
    pub fn take(&self, name: &str, like: &Tensor) -> Result<Tensor> {
        let t = self
            .tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| OptimError::State(format!("buffer `{name}` is missing")))?;
        if t.size() != like.size() {
            return Err(OptimError::State(format!("buffer `{name}` has shape {:?}, parameter has {:?}", t.size(), like.size())));
        }
        Ok(t.f_to_device(like.device())?.f_to_kind(like.kind())?.f_contiguous()?)
    }
}
