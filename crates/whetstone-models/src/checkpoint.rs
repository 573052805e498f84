//! Model weights in safetensors: atomic saves, and loads that say exactly what does not fit.

use crate::error::{ModelError, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn::VarStore, Tensor};

/// Number of scalar parameters in `vs`.
pub fn count_parameters(vs: &VarStore) -> u64 {
    vs.trainable_variables().iter().map(|t| t.numel() as u64).sum()
}

/// Write `tensors` to `path` atomically: a temporary file in the same folder, then a rename, so a
/// crash never leaves a half-written file under the final name.
pub fn write_safetensors_atomic(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    let cpu: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&cpu, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
}

/// Save every variable of `vs` (sorted by name) to `path` atomically.
pub fn save_varstore(vs: &VarStore, path: &Path) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors_atomic(&named, path)
}

/// Load `path` into `vs`. Every variable must be present with the same shape; names in the file
/// that the model lacks are also an error. The message lists each difference.
pub fn load_varstore(vs: &mut VarStore, path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(ModelError::Io { path: path.display().to_string(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file") });
    }
    let file: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| ModelError::Mismatch { path: path.display().to_string(), details: format!("not a readable safetensors file: {e}") })?
        .into_iter()
        .collect();
    let vars = vs.variables();
    let mut problems = Vec::new();
    for (name, var) in &vars {
        match file.get(name) {
            None => problems.push(format!("  missing: {name} {:?}", var.size())),
            Some(t) if t.size() != var.size() => problems.push(format!("  shape: {name} model {:?} vs file {:?}", var.size(), t.size())),
            Some(_) => {}
        }
    }
    for name in file.keys().filter(|n| !vars.contains_key(*n)) {
        problems.push(format!("  unexpected: {name}"));
    }
    if !problems.is_empty() {
        return Err(ModelError::Mismatch { path: path.display().to_string(), details: problems.join("\n") });
    }
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vars {
            var.f_copy_(&file[&name])?;
        }
        Ok(())
    })
}
