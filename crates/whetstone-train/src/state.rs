//! A strategy's resumable state: named tensors and JSON values, saved in every checkpoint.

use crate::error::{Result, TrainError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::Tensor;

/// What an [`crate::Objective`] saves in a checkpoint: tensors (its own parameters, buffers)
/// and values (counters, flags). Tensors are saved bit-exactly; values as JSON.
///
/// Decorators nest their inner objective's state under a prefix ([`StrategyState::nest`],
/// [`StrategyState::nested`]), so names never collide.
#[derive(Debug, Default)]
pub struct StrategyState {
    /// Tensors by name (they are copied at save time; shallow handles are fine).
    pub tensors: Vec<(String, Tensor)>,
    /// Values by name.
    pub values: serde_json::Map<String, serde_json::Value>,
}

impl StrategyState {
    /// Whether there is nothing to save.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty() && self.values.is_empty()
    }

    /// Add a tensor.
    pub fn with_tensor(mut self, name: impl Into<String>, t: &Tensor) -> Self {
        self.tensors.push((name.into(), t.shallow_clone()));
        self
    }

    /// Add every `(name, tensor)` under `prefix.`.
    pub fn with_tensors<'a>(mut self, prefix: &str, ts: impl IntoIterator<Item = (&'a String, &'a Tensor)>) -> Self {
        self.tensors.extend(ts.into_iter().map(|(n, t)| (format!("{prefix}.{n}"), t.shallow_clone())));
        self
    }

    /// Add a value (anything serialisable).
    pub fn with_value(mut self, name: impl Into<String>, v: impl Serialize) -> Self {
        self.values.insert(name.into(), serde_json::to_value(v).unwrap_or(serde_json::Value::Null));
        self
    }

    /// The tensor `name`, or an error naming it.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| missing(name))
    }

    /// The value `name`, or an error naming it.
    pub fn value<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let v = self.values.get(name).ok_or_else(|| missing(name))?;
        serde_json::from_value(v.clone()).map_err(|e| TrainError::State(format!("`{name}` is invalid: {e}")))
    }

    /// `inner`'s entries under `prefix/`, added to this state.
    pub fn nest(mut self, prefix: &str, inner: StrategyState) -> Self {
        self.tensors.extend(inner.tensors.into_iter().map(|(n, t)| (format!("{prefix}/{n}"), t)));
        self.values.extend(inner.values.into_iter().map(|(n, v)| (format!("{prefix}/{n}"), v)));
        self
    }

    /// The entries under `prefix/`, with the prefix removed (the inverse of [`StrategyState::nest`]).
    pub fn nested(&self, prefix: &str) -> StrategyState {
        let p = format!("{prefix}/");
        StrategyState {
            tensors: self.tensors.iter().filter_map(|(n, t)| n.strip_prefix(&p).map(|s| (s.to_string(), t.shallow_clone()))).collect(),
            values: self.values.iter().filter_map(|(n, v)| n.strip_prefix(&p).map(|s| (s.to_string(), v.clone()))).collect(),
        }
    }

    /// Copy the saved tensor `name` into `dst` (same shape), without recording a gradient.
    pub fn copy_into(&self, name: &str, dst: &Tensor) -> Result<()> {
        let src = self.tensor(name)?;
        if src.size() != dst.size() {
            return Err(TrainError::State(format!("`{name}` has shape {:?}, the strategy expects {:?}", src.size(), dst.size())));
        }
        tch::no_grad(|| dst.shallow_clone().f_copy_(src))?;
        Ok(())
    }

    /// An error unless the state is empty (for strategies that keep no state).
    pub fn expect_empty(&self, who: &str) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.tensors.iter().map(|(n, _)| n.as_str()).chain(self.values.keys().map(String::as_str)).take(5).collect();
        Err(TrainError::State(format!("the checkpoint holds strategy state ({}) that {who} does not keep: it was written by a different strategy", names.join(", "))))
    }
}

fn missing(name: &str) -> TrainError {
    TrainError::State(format!("no `{name}` in the checkpoint: it was written by a different strategy or version"))
}
