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

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
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

/// The named tensors of a safetensors file held in `bytes` (`path` names it in errors), on the
/// CPU, in file order. A truncated file, a header whose 8-byte length is out of range (checked
/// before anything is allocated), a header that is not valid JSON, offsets that do not fit the
/// data, shapes whose element count overflows or a dtype libtorch has no kind for are each an
/// error naming the file; nothing here panics on hostile input.
pub fn read_safetensors_bytes(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bad = |details: String| ModelError::Corrupt { path: path.display().to_string(), details };
    let Some(len) = bytes.get(..8) else {
        return Err(bad(format!("{} bytes, shorter than the 8-byte header length", bytes.len())));
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(len);
    let header_len = u64::from_le_bytes(le);
    if header_len > (bytes.len() - 8) as u64 {
        return Err(bad(format!("the header length {header_len} exceeds the {} bytes that follow it (truncated or corrupt file)", bytes.len() - 8)));
    }
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("{e:?}")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| bad(format!("tensor `{name}` has dtype {:?}, which libtorch cannot hold", view.dtype())))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| i64::try_from(d)).collect::<std::result::Result<_, _>>().map_err(|_| bad(format!("tensor `{name}` has a dimension over 2^63")))?;
        let numel = view.shape().iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel.and_then(|n| n.checked_mul(kind.elt_size_in_bytes())) != Some(view.data().len()) {
            return Err(bad(format!("tensor `{name}`: shape {:?} does not fit its {} bytes", view.shape(), view.data().len())));
        }
        out.push((name, Tensor::f_from_data_size(view.data(), &shape, kind)?));
    }
    Ok(out)
}

/// [`read_safetensors_bytes`] of the file at `path`.
pub fn read_safetensors_file(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })?;
    read_safetensors_bytes(&bytes, path)
}

/// The name of the first floating-point tensor of `named` that holds a NaN or an infinity
/// (one `isfinite().all()` per tensor; integer tensors cannot).
pub fn first_non_finite<'t, N: AsRef<str>>(named: impl IntoIterator<Item = (N, &'t Tensor)>) -> Result<Option<String>> {
    for (name, t) in named {
        if !t.defined() || !t.is_floating_point() || t.numel() == 0 {
            continue;
        }
        if t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
            return Ok(Some(name.as_ref().to_string()));
        }
    }
    Ok(None)
}

/// The error for weights holding NaN or infinity: it names the file and the tensor.
pub fn non_finite_error(path: &Path, tensor: &str) -> ModelError {
    ModelError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("tensor `{tensor}` holds NaN or infinite values; these weights cannot be used (retrain, or resume from an earlier checkpoint)")),
    }
}

/// Load `path` into `vs`. Every variable must be present with the same shape; names in the file
/// that the model lacks are also an error. The message lists each difference. Weights holding
/// NaN or infinity are refused, naming the file and the first such tensor, and `vs` is left
/// unchanged: every path that loads a model (eval, predict, a distillation teacher, a student
/// run, a pruned phase) goes through here.
pub fn load_varstore(vs: &mut VarStore, path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(ModelError::Io { path: path.display().to_string(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file") });
    }
    let file: BTreeMap<String, Tensor> = read_safetensors_file(path)?.into_iter().collect();
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
    if let Some(name) = first_non_finite(file.iter().map(|(n, t)| (n.as_str(), t)))? {
        return Err(non_finite_error(path, &name));
    }
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vars {
            var.f_copy_(&file[&name])?;
        }
        Ok(())
    })
}
