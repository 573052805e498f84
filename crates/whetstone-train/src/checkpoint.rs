//! Resumable checkpoints: model weights, optimiser state and loop progress in one safetensors
//! file, written atomically (temporary file, fsync, rename).

use crate::error::{io, Result, TrainError};
use crate::progress::Progress;
use crate::state::StrategyState;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{Kind, Tensor};
use whetstone_optim::OptimState;

/// File name of the resumable checkpoint inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File name of the best model weights inside a run folder.
pub const BEST_MODEL_FILE: &str = "model.safetensors";

/// Everything needed to continue a run exactly.
#[derive(Debug)]
pub struct Checkpoint {
    /// Where the loop was (step, epoch, position in the epoch's data order, early-stopping state).
    pub progress: Progress,
    /// Model variables by name.
    pub model: Vec<(String, Tensor)>,
    /// Optimiser state.
    pub optim: OptimState,
    /// The objective's state (its own parameters, counters, buffers).
    pub strategy: StrategyState,
    /// What the run was started on (data and plan fingerprints, recipe hash, labels); a
    /// resume must match every entry.
    pub identity: BTreeMap<String, String>,
}

/// The format tag of checkpoints this version writes and reads.
const FORMAT: &str = "whetstone-checkpoint-2";

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// Write `tensors` and `metadata` to `path` atomically.
pub fn write_atomic(path: &Path, tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<()> {
    let buf = whetstone_models::safetensors_bytes(tensors, Some(metadata)).map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), msg: e.to_string() })?;
    whetstone_eval::write_atomic(path, &buf).map_err(io(path))
}

/// Tensors with their names, in file order.
pub type NamedTensors = Vec<(String, Tensor)>;

/// Read all tensors and the metadata of a safetensors file.
pub fn read(path: &Path) -> Result<(NamedTensors, HashMap<String, String>)> {
    let err = |msg: String| TrainError::Checkpoint { path: path.to_path_buf(), msg };
    let buf = std::fs::read(path).map_err(io(path))?;
    let (_, meta) = SafeTensors::read_metadata(&buf).map_err(|e| err(format!("not a valid safetensors file ({e:?})")))?;
    let st = SafeTensors::deserialize(&buf).map_err(|e| err(format!("not a valid safetensors file ({e:?})")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| err(format!("tensor {name} has unsupported dtype {:?}", view.dtype())))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        out.push((name, Tensor::f_from_data_size(view.data(), &shape, kind)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

fn to_json(path: &Path, v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| TrainError::Checkpoint { path: path.into(), msg: e.to_string() })
}

impl Checkpoint {
    /// Save to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = Vec::with_capacity(self.model.len() + self.optim.tensors.len());
        tensors.extend(self.model.iter().map(|(n, t)| (format!("model/{n}"), t.shallow_clone())));
        tensors.extend(self.optim.tensors.iter().map(|(n, t)| (format!("optim/{n}"), t.shallow_clone())));
        tensors.extend(self.strategy.tensors.iter().map(|(n, t)| (format!("strategy/{n}"), t.shallow_clone())));
        let mut meta = HashMap::new();
        meta.insert("progress".to_string(), to_json(path, &self.progress)?);
        meta.insert("strategy".to_string(), to_json(path, &self.strategy.values)?);
        meta.insert("identity".to_string(), to_json(path, &self.identity)?);
        meta.insert("optim_step".to_string(), self.optim.step.to_string());
        meta.insert("format".to_string(), FORMAT.to_string());
        write_atomic(path, &tensors, meta)
    }

    /// The identity a checkpoint at `path` records (see [`crate::Trainer::identity`]), read
    /// from the file's header alone: cheap even for a large checkpoint, so a caller can refuse
    /// a resume (and say what changed) before loading data or building a model.
    ///
    /// ```
    /// # use whetstone_train::Checkpoint;
    /// let dir = std::env::temp_dir().join(format!("whetstone-identity-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("c.safetensors");
    /// let w = tch::Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu));
    /// let ckpt = Checkpoint { progress: Default::default(), model: vec![("w".to_string(), w)], optim: whetstone_optim::OptimState { step: 0, tensors: vec![] }, strategy: Default::default(), identity: [("labels".to_string(), "[\"neg\",\"pos\"]".to_string())].into() };
    /// ckpt.save(&path)?;
    /// assert_eq!(Checkpoint::read_identity(&path)?["labels"], "[\"neg\",\"pos\"]");
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), whetstone_train::TrainError>(())
    /// ```
    pub fn read_identity(path: &Path) -> Result<BTreeMap<String, String>> {
        use std::io::Read;
        let err = |msg: &str| TrainError::Checkpoint { path: path.to_path_buf(), msg: msg.to_string() };
        let mut f = std::fs::File::open(path).map_err(io(path))?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).map_err(|_| err("not a valid safetensors file (shorter than its header)"))?;
        let len = u64::from_le_bytes(len);
        if len > 100 << 20 {
            return Err(err("not a valid safetensors file (header length out of range)"));
        }
        let mut header = vec![0u8; len as usize];
        f.read_exact(&mut header).map_err(|_| err("not a valid safetensors file (truncated header)"))?;
        let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| err("not a valid safetensors file (unreadable header)"))?;
        let meta = header.get("__metadata__").ok_or_else(|| err("not a whetstone checkpoint (no metadata)"))?;
        match meta.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some("whetstone-checkpoint-1") => return Err(err("written by an older whetstone (format 1, without strategy state or run identity); it cannot be resumed by this version")),
            _ => return Err(err("not a whetstone checkpoint (metadata `format` is missing or unknown)")),
        }
        let identity = meta.get("identity").and_then(|i| i.as_str()).ok_or_else(|| err("metadata `identity` is missing"))?;
        serde_json::from_str(identity).map_err(|e| err(&format!("metadata `identity` is invalid: {e}")))
    }

    /// Load from `path`, checking it is a whetstone checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let err = |msg: &str| TrainError::Checkpoint { path: path.to_path_buf(), msg: msg.to_string() };
        let (tensors, meta) = read(path)?;
        match meta.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            Some("whetstone-checkpoint-1") => return Err(err("written by an older whetstone (format 1, without strategy state or run identity); it cannot be resumed by this version")),
            _ => return Err(err("not a whetstone checkpoint (metadata `format` is missing or unknown)")),
        }
        let progress: Progress = serde_json::from_str(meta.get("progress").ok_or_else(|| err("metadata `progress` is missing"))?)
            .map_err(|e| err(&format!("metadata `progress` is invalid: {e}")))?;
        let step = meta.get("optim_step").and_then(|s| s.parse().ok()).ok_or_else(|| err("metadata `optim_step` is missing or invalid"))?;
        let values: serde_json::Map<String, serde_json::Value> = serde_json::from_str(meta.get("strategy").ok_or_else(|| err("metadata `strategy` is missing"))?)
            .map_err(|e| err(&format!("metadata `strategy` is invalid: {e}")))?;
        let identity: BTreeMap<String, String> = serde_json::from_str(meta.get("identity").ok_or_else(|| err("metadata `identity` is missing"))?)
            .map_err(|e| err(&format!("metadata `identity` is invalid: {e}")))?;
        let (mut model, mut optim, mut strategy) = (Vec::new(), Vec::new(), Vec::new());
        for (name, t) in tensors {
            if let Some(n) = name.strip_prefix("model/") {
                model.push((n.to_string(), t));
            } else if let Some(n) = name.strip_prefix("optim/") {
                optim.push((n.to_string(), t));
            } else if let Some(n) = name.strip_prefix("strategy/") {
                strategy.push((n.to_string(), t));
            } else {
                return Err(err(&format!("unexpected tensor `{name}`")));
            }
        }
        Ok(Self { progress, model, optim: OptimState { step, tensors: optim }, strategy: StrategyState { tensors: strategy, values }, identity })
    }
}
