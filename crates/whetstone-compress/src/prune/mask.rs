//! Named masks: which weights are kept (1) and which are pruned (0).

use crate::error::{CompressError, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Prefix of mask tensors inside optimiser state and combined checkpoints (`mask.{param}`).
pub const MASK_PREFIX: &str = "mask.";

/// Float 0/1 masks by parameter name, each shaped like its parameter.
///
/// Masks are applied **in place** (`param *= mask` under `no_grad`), never by rebinding the
/// variable, so parameters that an optimiser keeps as views of a flat buffer
/// ([`whetstone_optim::flat`]) stay bound to it.
///
/// ```
/// use whetstone_compress::MaskSet;
/// use tch::{nn::VarStore, Device, Tensor};
/// let vs = VarStore::new(Device::Cpu);
/// let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0, 3.0, -4.0]));
/// let mut masks = MaskSet::default();
/// masks.insert("w", Tensor::from_slice(&[0.0f32, 1.0, 0.0, 1.0]))?;
/// masks.apply(&vs)?;
/// assert_eq!(Vec::<f32>::try_from(&w)?, vec![0.0, -2.0, 0.0, -4.0]);
/// assert_eq!(masks.sparsity()?, 0.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct MaskSet {
    masks: BTreeMap<String, Tensor>,
}

impl Clone for MaskSet {
    fn clone(&self) -> Self {
        Self { masks: self.masks.iter().map(|(n, m)| (n.clone(), m.copy())).collect() }
    }
}

impl MaskSet {
    /// Add or replace the mask of `name` (converted to float 0/1).
    pub fn insert(&mut self, name: impl Into<String>, mask: Tensor) -> Result<()> {
        let mask = mask.f_ne(0.0)?.f_to_kind(Kind::Float)?;
        self.masks.insert(name.into(), mask);
        Ok(())
    }

    /// The mask of `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.masks.get(name)
    }

    /// Masks in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.masks.iter()
    }

    /// Number of masked parameters.
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    /// True when no parameter is masked.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// Fraction of masked-out entries over all masks (0 when empty).
    pub fn sparsity(&self) -> Result<f64> {
        let (mut zeros, mut total) = (0i64, 0i64);
        for m in self.masks.values() {
            zeros += m.f_eq(0.0)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
            total += m.numel() as i64;
        }
        Ok(if total == 0 { 0.0 } else { zeros as f64 / total as f64 })
    }

    /// The (parameter, mask) pairs for `named`, masks moved to each parameter's device and
    /// kind; every mask must name a parameter of the same shape.
    pub fn bind(&self, named: &[(String, Tensor)]) -> Result<Vec<(String, Tensor, Tensor)>> {
        let mut out = Vec::with_capacity(self.masks.len());
        for (name, mask) in &self.masks {
            let param = named
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| CompressError::Masks(format!("mask `{name}` names no parameter of the model")))?;
            if param.size() != mask.size() {
                return Err(CompressError::Masks(format!("mask `{name}` has shape {:?}, the parameter {:?}", mask.size(), param.size())));
            }
            out.push((name.clone(), param.shallow_clone(), mask.f_to_device(param.device())?.f_to_kind(param.kind())?));
        }
        Ok(out)
    }

    /// Zero the pruned entries of the variables of `vs`, in place.
    pub fn apply(&self, vs: &VarStore) -> Result<()> {
        let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        self.apply_to(&named)
    }

    /// Zero the pruned entries of `named` (e.g. a model's `named_parameters()`), in place.
    pub fn apply_to(&self, named: &[(String, Tensor)]) -> Result<()> {
        apply_bound(&self.bind(named)?)
    }

    /// The masks as `{prefix}{name}` tensors (CPU copies), for checkpoints and optimiser state.
    pub fn to_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.masks.iter().map(|(n, m)| (format!("{prefix}{n}"), m.to_device(Device::Cpu).copy())).collect()
    }

    /// The masks among `tensors` whose names start with `prefix` (the prefix removed).
    pub fn from_tensors(tensors: &[(String, Tensor)], prefix: &str) -> Result<Self> {
        let mut set = Self::default();
        for (n, t) in tensors {
            if let Some(name) = n.strip_prefix(prefix) {
                set.insert(name, t.shallow_clone())?;
            }
        }
        Ok(set)
    }

    /// Write the masks to a safetensors file (names `mask.{param}`), e.g. next to a checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        whetstone_models::write_safetensors_atomic(&self.to_tensors(MASK_PREFIX), path)?;
        Ok(())
    }

    /// Read masks written by [`MaskSet::save`] (or any file with `mask.*` tensors).
    pub fn load(path: &Path) -> Result<Self> {
        let tensors = Tensor::read_safetensors(path).map_err(|e| CompressError::Masks(format!("{}: {e}", path.display())))?;
        let set = Self::from_tensors(&tensors, MASK_PREFIX)?;
        if set.is_empty() {
            return Err(CompressError::Masks(format!("{} holds no `{MASK_PREFIX}*` tensors", path.display())));
        }
        Ok(set)
    }
}

/// `param *= mask` for bound pairs, without recording a graph.
pub(crate) fn apply_bound(bound: &[(String, Tensor, Tensor)]) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        for (_, param, mask) in bound {
            let _ = param.shallow_clone().f_mul_(mask)?;
        }
        Ok(())
    })
}
