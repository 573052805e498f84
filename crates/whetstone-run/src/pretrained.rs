//! Where a recipe's `[model] pretrained` checkpoint comes from: a folder on disk, or a model
//! entry of the data manifest (`pretrained = "minilm-l6"`), fetched into the data cache on
//! first use exactly as `whetstone data minilm-l6` would (when whetstone-data is built with
//! its `fetch` feature, as whetstone-run and the CLI build it; otherwise it must be cached).

use whetstone_train::{Result, TrainError};
use std::path::{Path, PathBuf};
use whetstone_data::{cache_dir, obtain, Manifest};
use whetstone_models::pretrained::BertCheckpoint;
use whetstone_models::ModelConfig;

/// The folder inside a `whetstone pretrain` run with its best encoder in Hugging Face BERT
/// layout; a recipe that names the run as `pretrained` gets this folder.
pub const ENCODER_DIR: &str = "encoder";

/// The checkpoint folder `spec` names: `spec` itself when it is an existing folder (a
/// `whetstone pretrain` run folder stands for its `encoder/`), else the manifest model of that
/// name, fetched (or found) in the cache.
///
/// ```no_run
/// let dir = whetstone_run::resolve_pretrained(std::path::Path::new("minilm-l6"))?;
/// assert!(dir.join("config.json").is_file());
/// # Ok::<(), whetstone_run::TrainError>(())
/// ```
pub fn resolve_pretrained(spec: &Path) -> Result<PathBuf> {
    if spec.is_dir() {
        let encoder = spec.join(ENCODER_DIR);
        if !spec.join("config.json").is_file() && encoder.join("config.json").is_file() {
            return Ok(encoder);
        }
        return Ok(spec.to_path_buf());
    }
    let manifest = Manifest::builtin()?;
    let models: Vec<&str> = manifest.datasets.iter().filter(|d| d.is_model()).map(|d| d.name.as_str()).collect();
    let shown = spec.display();
    if spec.exists() {
        return Err(TrainError::Config(format!("model.pretrained `{shown}` is a file; give the checkpoint's folder (with config.json, model.safetensors, tokenizer.json)")));
    }
    match spec.to_str().and_then(|n| manifest.datasets.iter().find(|d| d.name == n)) {
        Some(entry) if entry.is_model() => Ok(obtain(entry, &cache_dir())?),
        Some(_) => Err(TrainError::Config(format!("model.pretrained `{shown}` is a dataset in the manifest, not a model (models: {})", models.join(", ")))),
        None => Err(TrainError::Config(format!(
            "model.pretrained `{shown}` is neither an existing checkpoint folder nor a model in the manifest (models: {})",
            models.join(", ")
        ))),
    }
}

/// `model` with its `pretrained` name (if any) replaced by the checkpoint folder it resolves
/// to ([`resolve_pretrained`]). A `max_len` left at its default (512) becomes the checkpoint's
/// when that is shorter, so that a recipe need not repeat the checkpoint's position count.
pub fn resolve_model(model: &ModelConfig) -> Result<ModelConfig> {
    let mut model = model.clone();
    if let ModelConfig::Transformer(c) = &mut model {
        if let Some(spec) = &c.pretrained {
            let dir = resolve_pretrained(spec)?;
            if c.encoder.max_len == whetstone_models::TransformerConfig::default().max_len {
                c.encoder.max_len = c.encoder.max_len.min(BertCheckpoint::open(&dir)?.encoder_config().max_len);
            }
            c.pretrained = Some(dir);
        }
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_and_datasets_are_clear_errors() {
        let e = resolve_pretrained(Path::new("no-such-model")).unwrap_err().to_string();
        assert!(e.contains("no-such-model") && e.contains("minilm-l6"), "{e}");
        let e = resolve_pretrained(Path::new("rotten-tomatoes")).unwrap_err().to_string();
        assert!(e.contains("is a dataset"), "{e}");
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("model.safetensors");
        std::fs::write(&file, b"").unwrap();
        assert!(resolve_pretrained(&file).unwrap_err().to_string().contains("is a file"));
        assert_eq!(resolve_pretrained(tmp.path()).unwrap(), tmp.path());
    }
}
