//! What `/metadata` says about the served run: its identity, model, precision, labels and
//! input bound, with the server's batching and limits.

use crate::options::ServeOptions;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use whetstone_run::compress::COMPRESSION_FILE;
use whetstone_run::{Predictor, Recipe, RECIPE_FILE};

/// The served run, described once when it is loaded.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Longest input in tokens (texts are cut to `max_len × 32` characters first).
    pub max_len: usize,
    /// The answer to an empty text (null label, or no words).
    pub empty: Value,
    /// The `/metadata` document (without the live counters).
    pub metadata: Value,
}

impl RunInfo {
    pub fn describe(o: &ServeOptions, recipe: &Recipe, predictor: &Predictor) -> Result<Self> {
        let recipe_path = o.run.join(RECIPE_FILE);
        let recipe_bytes = std::fs::read(&recipe_path).with_context(|| format!("reading {}", recipe_path.display()))?;
        let recipe_sha256: String = Sha256::digest(&recipe_bytes).iter().map(|b| format!("{b:02x}")).collect();
        let compression_path = o.run.join(COMPRESSION_FILE);
        let compression: Value = match std::fs::read_to_string(&compression_path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("reading {}", compression_path.display()))?,
            Err(_) => Value::Null,
        };
        let int8 = compression.get("quantize").and_then(Value::as_bool) == Some(true);
        let model = serde_json::to_value(&recipe.model).ok().and_then(|m| m.get("kind").cloned()).unwrap_or(Value::Null);
        let max_len = predictor.max_len();
        let metadata = json!({
            "run": recipe.name,
            "dir": o.run.display().to_string(),
            "recipe_sha256": recipe_sha256,
            "model": model,
            "task": o.task,
            "output": if predictor.is_token() { "tags" } else { "classes" },
            "precision": if int8 { "int8".to_string() } else { predictor.precision().to_string() },
            "device": o.device.clone().unwrap_or_else(|| recipe.device.clone()),
            "compression": compression,
            "labels": predictor.labels(),
            "max_len": max_len,
            "max_text_chars_read": whetstone_data::truncate::char_bound(max_len),
            "batching": {
                "window_ms": o.batching.window.as_secs_f64() * 1e3,
                "max_batch": o.batching.max_batch,
                "max_queue": o.batching.max_queue,
            },
            "limits": {
                "max_body_bytes": o.limits.max_body_bytes,
                "max_texts": o.limits.max_texts,
                "max_chars": o.limits.max_chars,
            },
        });
        Ok(RunInfo { max_len, empty: predictor.empty_json(), metadata })
    }
}
