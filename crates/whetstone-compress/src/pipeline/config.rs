//! The settings of a compression run: one serde struct read from TOML, with `key=value`
//! overrides, and documented defaults that work on a fine-tuned MiniLM teacher.

use crate::distill::DistillConfig;
use crate::error::{check_sparsity, CompressError, Result};
use crate::prune::{PruneMethod, Scope};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// Every setting of `whetstone distill` and `whetstone prune`. Unknown keys are rejected.
///
/// ```
/// use whetstone_compress::pipeline::CompressConfig;
/// let c = CompressConfig::parse("cli", "", &["prune.sparsity=0.9".into(), "recovery.epochs=2".into()])?;
/// assert_eq!((c.prune.sparsity, c.recovery.epochs), (0.9, 2));
/// let e = CompressConfig::parse("cli", "", &["prune.sparsty=0.9".into()]).unwrap_err().to_string();
/// assert!(e.contains("sparsty"), "{e}");
/// assert!(CompressConfig::parse("cli", "", &["prune.sparsity=1.0".into()]).is_err());
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressConfig {
    /// Name of the output run (default: derived from the input run and the method).
    pub name: Option<String>,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (default: the input run's device).
    pub device: Option<String>,
    /// Seed of initialisation, data order and dropout (default 42).
    pub seed: u64,
    /// Intra-op threads; 0 keeps libtorch's default (default 0).
    pub threads: usize,
    /// Knowledge distillation (`whetstone distill`).
    pub distill: DistillSettings,
    /// Pruning (`whetstone prune`).
    pub prune: PruneSettings,
    /// The fine-tune or distillation phase after pruning.
    pub recovery: RecoverySettings,
    /// Quantise the encoder's Linear layers to int8 at the end ([`crate::QuantizedClassifier`]).
    pub quantize: bool,
    /// Timed batch-1 calls for the latency percentiles (default 200; 0 skips efficiency).
    pub latency_iters: usize,
    /// Train on at most this many examples of the training split (0, the default: all), for
    /// smoke runs.
    pub train_limit: usize,
    /// Timed batch-32 calls for throughput (default 30).
    pub throughput_iters: usize,
}

impl Default for CompressConfig {
    fn default() -> Self {
        Self {
            name: None,
            device: None,
            seed: 42,
            threads: 0,
            distill: DistillSettings::default(),
            prune: PruneSettings::default(),
            recovery: RecoverySettings::default(),
            quantize: false,
            latency_iters: 200,
            train_limit: 0,
            throughput_iters: 30,
        }
    }
}

/// How a fresh student's embeddings start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StudentInit {
    /// BERT's N(0, 0.02) everywhere.
    Random,
    /// Word, position and token-type embeddings projected from the teacher's onto their top
    /// principal directions (truncated SVD), so a narrow student starts with the teacher's
    /// lexical knowledge; the rest as `random`.
    #[default]
    Svd,
}

/// `[distill]`: the student, its training and the losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillSettings {
    /// The student ([`StudentSpec`]): `LxH` (a fresh L-layer, H-wide encoder, heads H/64,
    /// feed-forward 4H), `LxHxA` or `LxHxAxF`, `teacher:0,2,4` (those teacher layers,
    /// DistilBERT-style) or a run folder (default `2x128`).
    pub student: String,
    /// Initialisation of fresh students (default `svd`).
    pub init: StudentInit,
    /// Passes over the training (plus transfer) set (default 3).
    pub epochs: u64,
    /// Peak learning rate of AdamW, warm-up 10% then linear decay (default 5e-4).
    pub lr: f64,
    /// Examples per batch (default 32).
    pub batch_size: usize,
    /// Compute the teacher's logits once per example instead of every epoch (logit-only
    /// distillation; default true). The cost is reported.
    pub cache_teacher: bool,
    /// Unlabelled in-domain sentences labelled by the teacher and added to the training set
    /// (TinyBERT-style augmentation): a dataset name from the manifest (e.g. `imdb`, whose
    /// reviews are cut into sentences) or empty for none (default none).
    pub transfer: String,
    /// At most this many transfer sentences (default 20000).
    pub transfer_max: usize,
    /// Loss weights, temperature and layer mapping (default: T = 2, α = 0.5, logits only).
    pub loss: DistillConfig,
}

impl Default for DistillSettings {
    fn default() -> Self {
        Self {
            student: "2x128".into(),
            init: StudentInit::Svd,
            epochs: 3,
            lr: 5e-4,
            batch_size: 32,
            cache_teacher: true,
            transfer: String::new(),
            transfer_max: 20000,
            loss: DistillConfig::default(),
        }
    }
}

/// One-shot or gradual unstructured pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PruneSchedule {
    /// The target sparsity at once, then recovery.
    OneShot,
    /// The cubic schedule (Zhu & Gupta 2017) over `prune.epochs`, then recovery.
    #[default]
    Gradual,
}

/// `[prune]`: which method, how much, and over what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PruneSettings {
    /// `magnitude`, `movement` (`movement-hard`), `movement-soft`, `N:M` (e.g. `2:4`),
    /// `structured` (`structured-magnitude`), `structured-taylor`, or `int8` (quantise only)
    /// (default `magnitude`).
    pub method: String,
    /// Fraction of the selected weights removed (unstructured), or of heads and neurons
    /// (structured) unless `heads` / `ffn` say otherwise; in `[0, 1)` (default 0.5).
    pub sparsity: f64,
    /// Structured: fraction of attention heads removed (default: `sparsity`).
    pub heads: Option<f64>,
    /// Structured: fraction of feed-forward neurons removed (default: `sparsity`).
    pub ffn: Option<f64>,
    /// Rank globally or per layer (default global).
    pub scope: Scope,
    /// Unstructured magnitude / movement: one-shot or gradual (default gradual).
    pub schedule: PruneSchedule,
    /// Epochs of the gradual pruning phase (default 2).
    pub epochs: u64,
    /// Learning rate of the pruning phase (default 3e-5).
    pub lr: f64,
    /// Steps between mask updates of the gradual schedule (default 10).
    pub every: u64,
    /// Structured Taylor importance: batches of training data it is accumulated over (default 32).
    pub importance_batches: usize,
    /// Soft movement pruning's score threshold τ (default 0).
    pub soft_threshold: f64,
}

impl Default for PruneSettings {
    fn default() -> Self {
        Self {
            method: "magnitude".into(),
            sparsity: 0.5,
            heads: None,
            ffn: None,
            scope: Scope::Global,
            schedule: PruneSchedule::Gradual,
            epochs: 2,
            lr: 3e-5,
            every: 10,
            importance_batches: 32,
            soft_threshold: 0.0,
        }
    }
}

/// What follows pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryMode {
    /// No further training.
    None,
    /// Cross-entropy fine-tuning with the masks kept.
    #[default]
    Finetune,
    /// Distillation from the unpruned model (logits), with the masks kept.
    Distill,
}

/// `[recovery]`: the phase after pruning that wins back accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoverySettings {
    /// `none`, `finetune` or `distill` (default finetune).
    pub mode: RecoveryMode,
    /// Epochs (default 1).
    pub epochs: u64,
    /// Peak learning rate (default 3e-5).
    pub lr: f64,
    /// Temperature of distillation recovery (default 2).
    pub temperature: f64,
    /// Hard-label weight α of distillation recovery (default 0.5).
    pub alpha: f64,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        Self { mode: RecoveryMode::Finetune, epochs: 1, lr: 3e-5, temperature: 2.0, alpha: 0.5 }
    }
}

/// A student as `[distill] student` names it.
///
/// ```
/// use whetstone_compress::pipeline::StudentSpec;
/// assert_eq!("4x256".parse::<StudentSpec>()?, StudentSpec::Fresh { layers: 4, hidden: 256, heads: 4, ffn: 1024 });
/// assert_eq!("2x128x2x256".parse::<StudentSpec>()?, StudentSpec::Fresh { layers: 2, hidden: 128, heads: 2, ffn: 256 });
/// assert_eq!("teacher:0,2,4".parse::<StudentSpec>()?, StudentSpec::FromTeacher(vec![0, 2, 4]));
/// assert!("4x250x3".parse::<StudentSpec>().is_err()); // heads must divide the width
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudentSpec {
    /// A fresh encoder of this shape.
    Fresh {
        /// Layers.
        layers: usize,
        /// Width.
        hidden: usize,
        /// Attention heads.
        heads: usize,
        /// Feed-forward width.
        ffn: usize,
    },
    /// The teacher's embeddings, these of its layers, and its head (DistilBERT).
    FromTeacher(Vec<usize>),
    /// The model of an existing run folder (it must use the teacher's tokenizer).
    Run(PathBuf),
}

impl FromStr for StudentSpec {
    type Err = CompressError;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(list) = s.strip_prefix("teacher:") {
            let layers = list
                .split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| CompressError::Config(format!("student `{s}`: expected teacher layer indices like teacher:0,2,4")))?;
            return Ok(StudentSpec::FromTeacher(layers));
        }
        let dims: Option<Vec<usize>> = s.split('x').map(|x| x.parse::<usize>().ok()).collect();
        match dims.as_deref() {
            Some([l, h, rest @ ..]) if rest.len() <= 2 => {
                let heads = rest.first().copied().unwrap_or((h / 64).max(1));
                let ffn = rest.get(1).copied().unwrap_or(4 * h);
                if *l == 0 || *h == 0 || heads == 0 || ffn == 0 || h % heads != 0 {
                    return Err(CompressError::Config(format!("student `{s}`: layers, width, heads and ffn must be > 0 and heads must divide the width")));
                }
                Ok(StudentSpec::Fresh { layers: *l, hidden: *h, heads, ffn })
            }
            _ => Ok(StudentSpec::Run(PathBuf::from(s))),
        }
    }
}

/// Which pruning a `[prune] method` names: a [`PruneMethod`] or int8 quantisation alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneStep {
    /// A pruning method.
    Prune(PruneMethod),
    /// No pruning, int8 quantisation only.
    Int8,
}

impl PruneSettings {
    /// The method, parsed (unknown names list the known ones).
    pub fn step(&self) -> Result<PruneStep> {
        match self.method.as_str() {
            "int8" | "quantize" => Ok(PruneStep::Int8),
            "nm" | "n:m" => Ok(PruneStep::Prune(PruneMethod::NM { n: 2, m: 4 })),
            m => m.parse().map(PruneStep::Prune).map_err(|e| match e {
                CompressError::Unknown { what, name, expected } => CompressError::Unknown { what, name, expected: format!("{expected}, int8") },
                e => e,
            }),
        }
    }

    /// Fractions of heads and neurons removed by structured pruning.
    pub fn structured_fractions(&self) -> (f64, f64) {
        (self.heads.unwrap_or(self.sparsity), self.ffn.unwrap_or(self.sparsity))
    }
}

impl CompressConfig {
    /// Parse TOML `text` (from `origin`, used in messages) with `key.path=value` `overrides`,
    /// then check ranges. Unknown keys and bad values are named by their full key.
    pub fn parse(origin: &str, text: &str, overrides: &[String]) -> Result<Self> {
        let bad = |m: String| CompressError::Config(format!("{origin}: {m}"));
        let mut value = toml::from_str::<toml::Table>(text).map(toml::Value::Table).map_err(|e| bad(e.to_string()))?;
        for o in overrides {
            whetstone_train::apply_override(&mut value, o).map_err(bad)?;
        }
        let config: CompressConfig = value.try_into().map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
        config.validate().map_err(|e| bad(e.to_string()))?;
        Ok(config)
    }

    /// Range checks serde cannot express.
    pub fn validate(&self) -> Result<()> {
        let p = &self.prune;
        check_sparsity(p.sparsity).map_err(|_| CompressError::Config(format!("prune.sparsity must be in [0, 1), got {}", p.sparsity)))?;
        for (k, v) in [("prune.heads", p.heads), ("prune.ffn", p.ffn)] {
            if let Some(v) = v {
                check_sparsity(v).map_err(|_| CompressError::Config(format!("{k} must be in [0, 1), got {v}")))?;
            }
        }
        p.step()?;
        for (k, v) in [("distill.lr", self.distill.lr), ("prune.lr", p.lr), ("recovery.lr", self.recovery.lr)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(CompressError::Config(format!("{k} must be a positive number, got {v}")));
            }
        }
        if self.distill.epochs == 0 || self.distill.batch_size == 0 || p.every == 0 {
            return Err(CompressError::Config("distill.epochs, distill.batch_size and prune.every must be >= 1".into()));
        }
        if !(0.0..=1.0).contains(&self.recovery.alpha) || self.recovery.temperature.is_nan() || self.recovery.temperature <= 0.0 {
            return Err(CompressError::Config(format!("recovery.alpha must be in [0, 1] and recovery.temperature > 0, got {} and {}", self.recovery.alpha, self.recovery.temperature)));
        }
        self.distill.student.parse::<StudentSpec>()?;
        Ok(())
    }
}
