//! Checkpoint tensors: reading Hugging Face names, matching them to a model with an error
//! that lists every difference, and writing safetensors that `transformers` accepts.

use crate::error::{ModelError, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// The prefix `BertModel` weights carry inside `BertFor*` checkpoints.
const BERT_PREFIX: &str = "bert.";

/// Tensors a BERT checkpoint may hold that whetstone's encoder never uses: the
/// `position_ids` buffer (a constant `arange`) and the NSP pooler, which no whetstone
/// model has.
pub(crate) fn always_ignored(name: &str) -> bool {
    name == "embeddings.position_ids" || name.starts_with("pooler.")
}

/// Reads `path` into a map from BERT names (without the `bert.` prefix) to CPU tensors.
///
/// A name present both with and without the prefix is an error, as is an unreadable file.
pub(crate) fn read_bert_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(ModelError::Io { path: shown, source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file") });
    }
    // The checked reader (header length bounded before allocating, shapes against bytes).
    let raw = crate::checkpoint::read_safetensors_file(path)?;
    let mut out = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (name, tensor) in raw {
        let bare = name.strip_prefix(BERT_PREFIX).unwrap_or(&name).to_string();
        if out.insert(bare.clone(), tensor).is_some() {
            duplicates.push(format!("  duplicate: {bare} (present with and without `{BERT_PREFIX}`)"));
        }
    }
    if !duplicates.is_empty() {
        return Err(ModelError::Mismatch { path: shown, details: duplicates.join("\n") });
    }
    Ok(out)
}

/// Copies `file` tensors into the model's `params` (BERT names → tensors sharing storage
/// with the model), converting dtype and device as needed.
///
/// Every parameter must be in the file with the same shape, and every file tensor must be
/// a parameter unless `ignored` says otherwise. Nothing is copied unless all of that holds;
/// the error lists each missing, unexpected and shape-mismatched tensor.
pub(crate) fn copy_into_params(
    params: &[(String, Tensor)],
    file: &BTreeMap<String, Tensor>,
    path: &Path,
    ignored: impl Fn(&str) -> bool,
) -> Result<()> {
    let mut problems = Vec::new();
    for (name, var) in params {
        match file.get(name) {
            None => problems.push(format!("  missing: {name} {:?}", var.size())),
            Some(t) if t.size() != var.size() => {
                problems.push(format!("  shape: {name} model {:?} vs file {:?}", var.size(), t.size()))
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    for (name, t) in file {
        if !known.contains(name.as_str()) && !ignored(name) {
            problems.push(format!("  unexpected: {name} {:?}", t.size()));
        }
    }
    if !problems.is_empty() {
        return Err(ModelError::Mismatch { path: path.display().to_string(), details: problems.join("\n") });
    }
    // Pretrained weights holding NaN or infinity are refused like any checkpoint's.
    if let Some(bad) = crate::checkpoint::first_non_finite(params.iter().map(|(n, _)| (n.as_str(), &file[n])))? {
        return Err(crate::checkpoint::non_finite_error(path, &bad));
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var) in params {
            let mut var = var.shallow_clone();
            var.f_copy_(&file[name])?;
        }
        Ok(())
    })
}

/// Writes `tensors` as float32 safetensors with `{"format": "pt"}` metadata, which
/// `transformers` requires, atomically (temporary file, then rename).
///
/// `tch`'s own writer cannot add metadata, and the format is small: an 8-byte
/// little-endian header length, a JSON header of dtype/shape/byte ranges, the raw data.
pub(crate) fn write_hf_safetensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in tensors {
        let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
        let values = Vec::<f32>::try_from(t.flatten(0, -1))?;
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": t.size(), "data_offsets": [start, data.len()] }),
        );
    }
    let mut head = serde_json::Value::Object(header).to_string().into_bytes();
    // Pad the header with spaces so the data starts 8-byte aligned, as safetensors writers do.
    head.resize(head.len().div_ceil(8) * 8, b' ');
    let mut bytes = Vec::with_capacity(8 + head.len() + data.len());
    bytes.extend((head.len() as u64).to_le_bytes());
    bytes.extend(head);
    bytes.extend(data);
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically ([`whetstone_eval::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    whetstone_eval::write_atomic(path, bytes).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
}
