//! Model weights in safetensors: atomic saves, and loads that say exactly what does not fit.

use crate::error::{ModelError, Result};
use safetensors::tensor::{Dtype, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Number of scalar parameters in `vs`.
pub fn count_parameters(vs: &VarStore) -> u64 {
    vs.trainable_variables().iter().map(|t| t.numel() as u64).sum()
}

/// A tensor's bytes in safetensors form.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn to_bytes(name: &str, t: &Tensor) -> Result<Bytes> {
    let dtype = dtype_of(t.kind()).ok_or_else(|| ModelError::Config(format!("tensor `{name}` has kind {:?}, which safetensors cannot store", t.kind())))?;
    let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
    let numel = t.numel();
    let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut data, numel)?;
    Ok(Bytes { dtype, shape: t.size().iter().map(|&d| d as usize).collect(), data })
}

/// `tensors` (any device) and `metadata` as the bytes of a safetensors file, in memory.
pub fn safetensors_bytes(tensors: &[(String, Tensor)], metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Bytes)> = tensors.iter().map(|(n, t)| Ok((n.clone(), to_bytes(n, t)?))).collect::<Result<_>>()?;
    let views: Vec<(&str, &Bytes)> = bytes.iter().map(|(n, b)| (n.as_str(), b)).collect();
    safetensors::tensor::serialize(views, &metadata).map_err(|e| ModelError::Config(format!("cannot serialise safetensors: {e}")))
}

/// Write `tensors` to `path` atomically ([`whetstone_eval::write_atomic`]: a temporary file in
/// the same folder, fsync, rename, fsync of the folder), so a crash never leaves a
/// half-written file under the final name.
pub fn write_safetensors_atomic(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let bytes = safetensors_bytes(tensors, None)?;
    whetstone_eval::write_atomic(path, &bytes).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
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
