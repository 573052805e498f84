//! A training recipe: everything a run needs, as one serde struct read from TOML.

use whetstone_models::TextClassifier;
use whetstone_train::adversarial::AdversarialConfig;
use whetstone_train::consistency::RegularizeConfig;
use whetstone_train::{CrossEntropy, FinetuneConfig, Objective, Precision, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use whetstone_data::{DataSource, Format, TableSpec};
use whetstone_models::ModelConfig;
use whetstone_optim::{OptimConfig, Schedule};

/// A complete, resolved training recipe. Unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Run name; the run goes to `runs/<name>/` unless told otherwise.
    #[serde(default = "default_name")]
    pub name: String,
    /// Seed for splits, initialisation, data order and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Intra-op threads for libtorch; 0 keeps libtorch's default (all cores).
    #[serde(default)]
    pub threads: usize,
    /// Precision of the forward passes: `fp32` (default), `bf16` (mixed precision with
    /// float32 master weights, CPU or CUDA) or `fp16` (CUDA only, with dynamic loss scaling).
    /// Covers training, validation, the test evaluation and the efficiency measurement.
    #[serde(default)]
    pub precision: Precision,
    #[serde(default)]
    pub data: DataRecipe,
    #[serde(default)]
    pub tokenizer: TokenizerRecipe,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub train: TrainConfig,
    /// Fine-tuning a pretrained encoder: freezing, head-only warm-up, gradual unfreezing,
    /// re-initialised top layers (all off by default).
    #[serde(default)]
    pub finetune: FinetuneConfig,
    /// `[regularize]`: the classification objective in place of plain cross-entropy (R-Drop,
    /// mixup, cutoff; see [`RegularizeConfig`]); absent: cross-entropy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regularize: Option<RegularizeConfig>,
    /// `[adversarial]`: adversarial training on the input embeddings around the objective
    /// (FGM, PGD, FreeLB; see [`AdversarialConfig`]); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<AdversarialConfig>,
    #[serde(default)]
    pub eval: EvalRecipe,
    /// On-the-fly augmentation of the training split (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<crate::AugmentRecipe>,
    /// `[[tasks]]`: multi-task learning, one shared encoder with a head per task (the first
    /// is the main one); `[data]` then only gives the split fractions and `max_len`. Empty: a
    /// single-task run on `[data]`. See [`crate::multitask`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<crate::TaskRecipe>,
    /// `[multitask]`: task sampling, loss weighting and checkpoint selection for `[[tasks]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multitask: Option<crate::MultiTaskRecipe>,
}

impl Recipe {
    /// The training objective for `model`: cross-entropy (with `train.label_smoothing`) or
    /// the `[regularize]` method, wrapped by the `[adversarial]` method when there is one.
    /// An error when a setting is out of range or the model lacks what a method needs.
    pub fn objective(&self, model: &dyn TextClassifier) -> whetstone_train::Result<Box<dyn Objective>> {
        let ce = CrossEntropy { label_smoothing: self.train.label_smoothing };
        let base: Box<dyn Objective> = match &self.regularize {
            Some(r) => r.build(ce, model)?,
            None => Box::new(ce),
        };
        match &self.adversarial {
            Some(a) => a.wrap(base, model),
            None => Ok(base),
        }
    }
}

fn default_name() -> String {
    "run".into()
}
/// A recipe's default `seed`.
pub fn default_seed() -> u64 {
    42
}
/// A recipe's default `device`: `auto`.
pub fn default_device() -> String {
    "auto".into()
}

/// Where the labelled text comes from and how it is split and truncated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataRecipe {
    /// A dataset from the manifest (`rotten-tomatoes`, `imdb`, `sms-spam`); ignored when `path` is set.
    pub dataset: String,
    /// The user's own CSV / TSV / JSONL file (the training split, or all data to be split).
    pub path: Option<PathBuf>,
    /// Optional fixed validation file.
    pub valid_path: Option<PathBuf>,
    /// Optional fixed test file.
    pub test_path: Option<PathBuf>,
    /// File format; inferred from the extension when absent.
    pub format: Option<Format>,
    /// Column (or JSON field) with the text.
    pub text_col: String,
    /// Column (or JSON field) with the label.
    pub label_col: String,
    /// Share of the data held out for validation when no file gives it.
    pub valid_fraction: f64,
    /// Share held out for testing when no file gives it.
    pub test_fraction: f64,
    /// Tokens per example after tokenisation (longer texts are truncated).
    pub max_len: usize,
    /// Drop rows whose label is missing, empty, null or NaN-like instead of refusing the file
    /// (default false); the count dropped is reported. Saved with the run, so `eval` and
    /// `--resume` read the data the same way. `--drop-bad-labels` sets it.
    pub drop_bad_labels: bool,
}

impl Default for DataRecipe {
    fn default() -> Self {
        Self {
            dataset: "rotten-tomatoes".into(),
            path: None,
            valid_path: None,
            test_path: None,
            format: None,
            text_col: "text".into(),
            label_col: "label".into(),
            valid_fraction: 0.1,
            test_fraction: 0.1,
            max_len: 64,
            drop_bad_labels: false,
        }
    }
}

impl DataRecipe {
    /// How the splits are loaded: the fractions, the seed and the label policy of this section.
    pub fn load_options(&self, seed: u64) -> whetstone_data::LoadOptions {
        whetstone_data::LoadOptions { drop_bad_labels: self.drop_bad_labels, ..whetstone_data::LoadOptions::new(self.valid_fraction, self.test_fraction, seed) }
    }

    /// The data source this section describes.
    pub fn source(&self) -> DataSource {
        let spec = |p: &PathBuf| TableSpec { format: self.format, ..TableSpec::new(p, &self.text_col, &self.label_col) };
        match &self.path {
            None => DataSource::Named { name: self.dataset.clone() },
            Some(train) => DataSource::Files { train: spec(train), valid: self.valid_path.as_ref().map(spec), test: self.test_path.as_ref().map(spec) },
        }
    }

    /// A short human description of the source.
    pub fn describe(&self) -> String {
        match &self.path {
            None => self.dataset.clone(),
            Some(p) => p.display().to_string(),
        }
    }
}

/// The tokenizer: a WordPiece vocabulary trained on the training split, or a `tokenizer.json`.
/// With a `pretrained` model and no `path`, the checkpoint's own `tokenizer.json` is used (its
/// embeddings were trained with it) and the WordPiece settings are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerRecipe {
    /// Load this `tokenizer.json` instead of training one.
    pub path: Option<PathBuf>,
    /// Vocabulary size for a trained WordPiece.
    pub vocab_size: usize,
    /// Minimum count of a merge to enter the vocabulary.
    pub min_frequency: u64,
    /// Lower-case (and strip accents) before tokenising.
    pub lowercase: bool,
}

impl Default for TokenizerRecipe {
    fn default() -> Self {
        Self { path: None, vocab_size: 16000, min_frequency: 2, lowercase: true }
    }
}

/// How the finished model is measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalRecipe {
    /// Timed single-sentence forward passes for the batch-1 latency percentiles (0 skips efficiency).
    pub latency_iters: usize,
    /// Timed batches of 32 for throughput.
    pub throughput_iters: usize,
}

impl Default for EvalRecipe {
    fn default() -> Self {
        Self { latency_iters: 200, throughput_iters: 30 }
    }
}
