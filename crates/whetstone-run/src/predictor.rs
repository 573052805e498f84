//! The model that answers `whetstone predict` and `whetstone serve`: any run folder (fp32,
//! bf16, int8, pruned or distilled) or one task of a multi-task run, with its answers as JSON.

use crate::multitask::TaskPrediction;
use crate::{LoadedRun, MultiTaskRun};
use serde_json::{json, Map, Value};
use std::path::Path;
use whetstone_train::{Precision, Result, TrainError};

/// A loaded run that predicts: a single run, or one task of a multi-task run.
pub enum Predictor {
    /// A single-task run (int8 when `prune --quantize` wrote it; see [`crate::compress::open_run`]).
    Single(LoadedRun),
    /// One task of a multi-task run; `token` when it tags words rather than classifying texts.
    Task { run: MultiTaskRun, task: String, token: bool, max_len: usize },
}

impl Predictor {
    /// Load the run in `dir` on `device` (default: the run's) in `precision` (default: the
    /// recipe's); `task` picks a multi-task run's head (which predicts in float32).
    pub fn open(dir: &Path, device: Option<&str>, precision: Option<Precision>, task: Option<&str>) -> Result<Self> {
        match task {
            Some(task) => {
                if precision.is_some() {
                    return Err(TrainError::Run { run: dir.to_path_buf(), msg: "--precision applies to single runs; a multi-task run (--task) predicts in float32".into() });
                }
                let max_len = crate::read_recipe(dir)?.data.max_len;
                let run = MultiTaskRun::open(dir, device)?;
                let token = run.is_token_task(task)?;
                Ok(Predictor::Task { run, task: task.to_string(), token, max_len })
            }
            None => {
                let run = crate::compress::open_run(dir, device)?;
                Ok(Predictor::Single(match precision {
                    Some(p) => run.with_precision(p)?,
                    None => run,
                }))
            }
        }
    }

    /// The prediction for each text, in order (texts should be non-empty: an empty text has
    /// nothing to classify).
    pub fn predict(&self, texts: &[String]) -> Result<Vec<TaskPrediction>> {
        match self {
            Predictor::Single(run) => Ok(run.predict_probs(texts)?.into_iter().map(|probs| TaskPrediction::Sequence { labels: run.label_names.clone(), probs }).collect()),
            Predictor::Task { run, task, .. } => run.predict_rows(task, texts),
        }
    }

    /// Whether answers are tags per word (a token task) rather than class probabilities.
    pub fn is_token(&self) -> bool {
        matches!(self, Predictor::Task { token: true, .. })
    }

    /// Longest input in tokens; texts are first cut to `max_len × 32` characters.
    pub fn max_len(&self) -> usize {
        match self {
            Predictor::Single(run) => run.max_len(),
            Predictor::Task { max_len, .. } => *max_len,
        }
    }

    /// The class (or tag) names, in class-id order.
    pub fn labels(&self) -> Vec<String> {
        match self {
            Predictor::Single(run) => run.label_names.clone(),
            Predictor::Task { run, task, .. } => run.task_labels(task).map(<[String]>::to_vec).unwrap_or_default(),
        }
    }

    /// Precision of inference.
    pub fn precision(&self) -> Precision {
        match self {
            Predictor::Single(run) => run.precision,
            Predictor::Task { .. } => Precision::Fp32,
        }
    }

    /// The answer for a text with nothing to classify (empty or only whitespace): null label
    /// and probabilities, or no words.
    pub fn empty_json(&self) -> Value {
        if self.is_token() {
            json!({ "words": [], "tags": [] })
        } else {
            json!({ "label": null, "prob": null, "probs": null })
        }
    }
}

impl TaskPrediction {
    /// The answer as JSON: `{"label": L, "prob": P, "probs": {label: p, …}}` for a sequence
    /// task, `{"words": […], "tags": […]}` for a token task.
    pub fn to_json(&self) -> Value {
        match self {
            TaskPrediction::Sequence { labels, probs } => {
                let (label, prob) = self.best().map_or((Value::Null, Value::Null), |(l, p)| (json!(l), json!(p)));
                let all: Map<String, Value> = labels.iter().zip(probs).map(|(l, &p)| (l.clone(), json!(p))).collect();
                json!({ "label": label, "prob": prob, "probs": all })
            }
            TaskPrediction::Token { words, tags } => json!({ "words": words, "tags": tags }),
        }
    }
}
