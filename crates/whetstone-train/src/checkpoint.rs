//! Resumable checkpoints: model weights, optimiser state and loop progress in one safetensors
//! file, written atomically (temporary file, fsync, rename).

use crate::error::{io, Result, TrainError};
use crate::progress::Progress;
use crate::state::StrategyState;
use safetensors::tensor::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::Tensor;
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
    // The robust reader first: it checks the header length before anything is allocated and
    // every tensor's shape against its bytes.
    let mut out = whetstone_models::read_safetensors_bytes(&buf, path).map_err(|e| match e {
        // The error already names the file; keep only what is wrong with it.
        whetstone_models::ModelError::Corrupt { details, .. } => err(format!("not a valid safetensors file (truncated or damaged?): {details}")),
        other => err(other.to_string()),
    })?;
    let (_, meta) = SafeTensors::read_metadata(&buf).map_err(|e| err(format!("not a valid safetensors file ({e:?})")))?;
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
        // Resuming from weights or optimiser state that hold NaN or infinity would train on
        // garbage (or diverge at once): refuse, naming the tensor and the file.
        if let Some(name) = whetstone_models::first_non_finite(tensors.iter().map(|(n, t)| (n.as_str(), t))).map_err(|e| err(&e.to_string()))? {
            return Err(err(&format!("tensor `{name}` holds NaN or infinite values; this checkpoint cannot be resumed (start the run again, or restore an earlier checkpoint.safetensors)")));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(model: Tensor, optim: Tensor) -> Checkpoint {
        Checkpoint {
            progress: Progress::default(),
            model: vec![("encoder.w".to_string(), model)],
            optim: OptimState { step: 3, tensors: vec![("exp_avg.0".to_string(), optim)] },
            strategy: StrategyState::default(),
            identity: BTreeMap::new(),
        }
    }

    /// `--resume` loads through `Checkpoint::load`: NaN or infinity in the weights or the
    /// optimiser state is refused, naming the tensor and the file.
    #[test]
    fn a_checkpoint_with_non_finite_tensors_cannot_be_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        let ok = || Tensor::from_slice(&[1.0f32, 2.0]);
        checkpoint(ok(), ok()).save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap().optim.step, 3);
        for (model, optim, bad) in [
            (Tensor::from_slice(&[1.0f32, f32::NAN]), ok(), "model/encoder.w"),
            (ok(), Tensor::from_slice(&[f32::INFINITY, 0.0]), "optim/exp_avg.0"),
        ] {
            checkpoint(model, optim).save(&path).unwrap();
            let msg = Checkpoint::load(&path).unwrap_err().to_string();
            assert!(msg.contains(&format!("`{bad}`")) && msg.contains("NaN or infinite") && msg.contains(&path.display().to_string()), "{msg}");
        }
    }

    #[test]
    fn a_corrupt_header_length_is_a_clean_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        checkpoint(Tensor::from_slice(&[1.0f32]), Tensor::from_slice(&[1.0f32])).save(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let msg = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(msg.contains("header length"), "{msg}");
        assert!(Checkpoint::read_identity(&path).is_err());
    }
}
