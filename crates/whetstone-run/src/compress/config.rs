//! The settings of a compression run: one serde struct read from TOML, with `key=value`
//! overrides, and documented defaults that work on a fine-tuned MiniLM teacher.

use whetstone_compress::{build_optimizer, CompressError, DistillConfig, PruneMethod, Result, Scope};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;
use tch::nn::VarStore;
use whetstone_optim::{OptimConfig, Optimizer, PlateauMode, Schedule};
use whetstone_train::{TrainConfig, TrainError};

/// Every setting of `whetstone distill` and `whetstone prune`. Unknown keys are rejected.
///
/// Every training phase (the distillation, the gradual pruning phase, the recovery) uses the
/// optimiser of `[optim]` (any algorithm of [`whetstone_optim::OptimConfig`]), the schedule of
/// `[schedule]` and the loop settings of `[train]`; each phase keeps its own peak learning
/// rate and epochs (`distill.lr`, `prune.lr`, `recovery.lr`, and `*.epochs`).
///
/// ```
/// use whetstone_run::compress::CompressConfig;
/// let c = CompressConfig::parse("cli", "", &["prune.sparsity=0.9".into(), "recovery.epochs=2".into()])?;
/// assert_eq!((c.prune.sparsity, c.recovery.epochs), (0.9, 2));
/// let e = CompressConfig::parse("cli", "", &["prune.sparsty=0.9".into()]).unwrap_err().to_string();
/// assert!(e.contains("sparsty"), "{e}");
/// assert!(CompressConfig::parse("cli", "", &["prune.sparsity=1.0".into()]).is_err());
/// // Any optimiser and schedule, and the loop's settings.
/// let c = CompressConfig::parse("cli", "[optim]\nkind = \"lion\"\n[schedule]\nkind = \"cosine\"", &["train.batch_size=16".into()])?;
/// assert_eq!((c.optim.algorithm.clone(), c.train.batch_size), (whetstone_optim::Algorithm::Lion(Default::default()), 16));
/// let e = CompressConfig::parse("cli", "", &["optim.betas=[0.9, 0.99]".into(), "optim.beta=1".into()]).unwrap_err().to_string();
/// assert!(e.contains("optim.beta"), "{e}");
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
    /// Precision of every training phase's forward passes (teacher included), of the test
    /// evaluation and of the efficiency measurement: `fp32` (default), `bf16`, or `fp16`
    /// (CUDA only). Weights stay float32; an int8 model (`quantize`) is measured in fp32.
    pub precision: whetstone_train::Precision,
    /// Knowledge distillation (`whetstone distill`).
    pub distill: DistillSettings,
    /// Pruning (`whetstone prune`).
    pub prune: PruneSettings,
    /// The fine-tune or distillation phase after pruning.
    pub recovery: RecoverySettings,
    /// Quantise the encoder's Linear layers to int8 at the end ([`whetstone_compress::QuantizedClassifier`]).
    pub quantize: bool,
    /// Timed batch-1 calls for the latency percentiles (default 200; 0 skips efficiency).
    pub latency_iters: usize,
    /// Train on at most this many examples of the training split (0, the default: all), for
    /// smoke runs.
    pub train_limit: usize,
    /// Timed batch-32 calls for throughput (default 30).
    pub throughput_iters: usize,
    /// `[optim]`: the optimiser of every training phase: any algorithm (`kind`) and its
    /// settings, weight decay and its exclusions, parameter groups, lookahead, … as in a
    /// recipe. Default: AdamW (β = 0.9, 0.999), weight decay 0.01 except biases and
    /// LayerNorms, per-tensor layout. Keys not given take [`OptimConfig`]'s defaults, except
    /// `kind` (`adamw`) and `flat` (`false`). `optim.lr` is not read: each phase has its own
    /// peak learning rate (`distill.lr`, `prune.lr`, `recovery.lr`), and it is left out when
    /// the config is written.
    #[serde(serialize_with = "optim_without_lr")]
    pub optim: OptimConfig,
    /// `[schedule]`: the learning-rate schedule of every phase, over that phase's steps
    /// (default `warmup-linear`, 10% warm-up then linear decay to 0). A reduce-on-plateau
    /// schedule watches `train.metric` and needs `mode = "max"`.
    pub schedule: Schedule,
    /// `[train]`: batch size, accumulation, clipping, evaluation and logging of every phase.
    pub train: TrainSettings,
}

/// `[train]`: the training loop's settings, shared by every phase ([`TrainConfig`] without
/// `epochs`, which each phase sets: `distill.epochs`, `prune.epochs`, `recovery.epochs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// Examples per micro-batch (default 32; `distill.batch_size` overrides it for distillation).
    pub batch_size: usize,
    /// Micro-batches per optimiser step (default 1).
    pub grad_accum: usize,
    /// Clip the global gradient norm to this; 0 disables (default 1.0).
    pub clip_norm: f64,
    /// Validate every N steps; 0 at the end of every epoch (default 0).
    pub eval_every: u64,
    /// Stop after this many validations without improvement; 0 disables (default 0).
    pub patience: u64,
    /// What picks the best weights of a phase: `accuracy`, `macro_f1` or `mcc` (default accuracy).
    pub metric: String,
    /// Checkpoint every N steps besides every validation; 0 only at validations (default 0).
    pub checkpoint_every: u64,
    /// Length bucketing: a bucket holds `batch_size × bucket_factor` examples (default 50).
    pub bucket_factor: usize,
    /// Examples per validation batch (default 128).
    pub eval_batch_size: usize,
    /// Log the training loss every N steps (default 50).
    pub log_every: u64,
    /// Label smoothing of the cross-entropy of fine-tuning recovery and the gradual pruning
    /// phase (default 0).
    pub label_smoothing: f64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        let t = TrainConfig::default();
        Self {
            batch_size: 32,
            grad_accum: t.grad_accum,
            clip_norm: t.clip_norm,
            eval_every: t.eval_every,
            patience: t.patience,
            metric: t.metric,
            checkpoint_every: t.checkpoint_every,
            bucket_factor: t.bucket_factor,
            eval_batch_size: t.eval_batch_size,
            log_every: 50,
            label_smoothing: t.label_smoothing,
        }
    }
}

impl TrainSettings {
    /// The loop's settings for a phase of `epochs` epochs with `batch_size` (default
    /// `self.batch_size`) examples per micro-batch.
    pub fn for_phase(&self, epochs: u64, batch_size: Option<usize>) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: batch_size.unwrap_or(self.batch_size),
            grad_accum: self.grad_accum,
            clip_norm: self.clip_norm,
            eval_every: self.eval_every,
            patience: self.patience,
            metric: self.metric.clone(),
            checkpoint_every: self.checkpoint_every,
            bucket_factor: self.bucket_factor,
            eval_batch_size: self.eval_batch_size,
            log_every: self.log_every,
            label_smoothing: self.label_smoothing,
            ..TrainConfig::default()
        }
    }
}

/// `[optim]` as written: without `lr`, which the phases set.
fn optim_without_lr<S: serde::Serializer>(optim: &OptimConfig, s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut table = toml::Value::try_from(optim).map_err(serde::ser::Error::custom)?;
    if let Some(t) = table.as_table_mut() {
        t.remove("lr");
    }
    table.serialize(s)
}

/// The optimiser of compression runs unless `[optim]` says otherwise: AdamW with weight decay
/// 0.01 (not on biases and LayerNorms) over per-tensor buffers.
pub fn default_optim() -> OptimConfig {
    OptimConfig { flat: false, ..Default::default() }
}

/// The schedule of compression runs unless `[schedule]` says otherwise: 10% linear warm-up,
/// then linear decay to 0.
pub fn default_schedule() -> Schedule {
    Schedule::WarmupLinear { warmup_steps: None, warmup_ratio: 0.1 }
}

impl Default for CompressConfig {
    fn default() -> Self {
        Self {
            name: None,
            device: None,
            seed: 42,
            threads: 0,
            precision: whetstone_train::Precision::Fp32,
            distill: DistillSettings::default(),
            prune: PruneSettings::default(),
            recovery: RecoverySettings::default(),
            quantize: false,
            latency_iters: 200,
            train_limit: 0,
            throughput_iters: 30,
            optim: default_optim(),
            schedule: default_schedule(),
            train: TrainSettings::default(),
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
    /// Peak learning rate of the distillation phase (default 5e-4).
    pub lr: f64,
    /// Examples per batch of the distillation phase (default: `train.batch_size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Compute the teacher's logits once per example instead of every epoch (logit-only
    /// distillation; default true). The cost is reported.
    pub cache_teacher: bool,
    /// Unlabelled in-domain sentences labelled by the teacher and added to the training set
    /// (TinyBERT-style augmentation): a dataset name from the manifest (e.g. `imdb`, whose
    /// reviews are cut into sentences), `neighbour`, or empty for none (default none).
    ///
    /// `neighbour` is TinyBERT's augmented transfer set (Jiao et al. 2020): the teacher run's
    /// own training texts (after `train_limit`), each rewritten `transfer_copies` times by
    /// [`whetstone_augment::NeighbourReplace`] (p = 0.4, K = 15) over the word embeddings of
    /// the teacher's `[model] pretrained` checkpoint (a teacher without one is an error),
    /// seeded by `seed`. It can be large: 20 copies of rotten-tomatoes' 6,822 training reviews
    /// are 136,440 sentences, so raise `transfer_max` to keep them all.
    pub transfer: String,
    /// Augmented copies of each training text for `transfer = "neighbour"` (default 20,
    /// TinyBERT's N_aug; at least 1).
    pub transfer_copies: usize,
    /// At most this many transfer sentences, a seeded random subset when there are more
    /// (default 20000).
    pub transfer_max: usize,
    /// Loss weights, temperature and layer mapping (default: T = 2, α = 0.5, logits only).
    pub loss: DistillConfig,
    /// `[distill.adversarial]`: adversarial training on the student's input embeddings around
    /// the distillation loss (FGM, PGD, FreeLB; the teacher sees the clean input). Logit
    /// distillation only. Off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<whetstone_train::adversarial::AdversarialConfig>,
}

impl Default for DistillSettings {
    fn default() -> Self {
        Self {
            student: "2x128".into(),
            init: StudentInit::Svd,
            epochs: 3,
            lr: 5e-4,
            batch_size: None,
            cache_teacher: true,
            transfer: String::new(),
            transfer_copies: 20,
            transfer_max: 20000,
            loss: DistillConfig::default(),
            adversarial: None,
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
    /// `magnitude`, `movement` (`movement-hard`), `movement-soft`, `fisher` (oBERT-style
    /// second-order saliency w²·F/2 with a diagonal empirical Fisher), `N:M` (e.g. `2:4`),
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
    /// Fraction of the gradual pruning phase over which the sparsity rises to the target on
    /// the cubic schedule; the rest trains at the target with the masks fixed, in (0, 1]
    /// (default 0.7).
    pub ramp: f64,
    /// Train the gradual pruning phase with distillation from the unpruned run (its logits
    /// computed once, [`whetstone_compress::TeacherCache`]) instead of on hard labels alone
    /// (default true).
    pub distill: bool,
    /// Temperature of the pruning phase's distillation (default 2).
    pub temperature: f64,
    /// Hard-label weight α of the pruning phase's distillation (default 0.5; 0 follows the
    /// teacher alone).
    pub alpha: f64,
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
            ramp: 0.7,
            distill: true,
            temperature: 2.0,
            alpha: 0.5,
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
/// use whetstone_run::compress::StudentSpec;
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
                let ffn = rest.get(1).copied().unwrap_or(h.saturating_mul(4));
                if [*l, *h, heads, ffn].iter().any(|&d| d > whetstone_models::MAX_DIM) {
                    return Err(CompressError::Config(format!("student `{s}`: layers, width, heads and ffn must be at most {}", whetstone_models::MAX_DIM)));
                }
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
            crate::apply_override(&mut value, o).map_err(bad)?;
        }
        if value.get("optim").and_then(|o| o.get("lr")).is_some() {
            return Err(bad("optim.lr is not used: each phase has its own peak learning rate (distill.lr, prune.lr, recovery.lr)".into()));
        }
        if value.get("train").and_then(|t| t.get("epochs")).is_some() {
            return Err(bad("train.epochs is not used: each phase has its own (distill.epochs, prune.epochs, recovery.epochs)".into()));
        }
        // A partial `[optim]` keeps the compression defaults of the keys it leaves out.
        if let Some(optim) = value.get_mut("optim").and_then(|o| o.as_table_mut()) {
            optim.entry("kind").or_insert_with(|| toml::Value::String("adamw".into()));
            optim.entry("flat").or_insert(toml::Value::Boolean(false));
        }
        let config: CompressConfig = value.clone().try_into().map_err(|e: toml::de::Error| bad(locate(&value, e.message())))?;
        // `[optim]` flattens its algorithm, which serde cannot check for unknown keys: compare
        // what was given with what was understood.
        let known = toml::Value::try_from(&config).map_err(|e| bad(e.to_string()))?;
        let mut unknown = Vec::new();
        unknown_keys(&value, &known, "", &mut unknown);
        if !unknown.is_empty() {
            return Err(bad(format!("unknown key(s) {}", unknown.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))));
        }
        config.validate().map_err(|e| match e {
            CompressError::Config(m) => bad(m),
            e => bad(e.to_string()),
        })?;
        Ok(config)
    }

    /// Every check before anything is read or written, with the key in each message: finite
    /// floats everywhere, ranges, integers that fit the types they become, the optimiser's
    /// settings, a plain output name, and a fresh student small enough to allocate (its
    /// vocabulary, the teacher's, is added when the teacher is read).
    pub fn validate(&self) -> Result<()> {
        let train_err = |e: TrainError| match e {
            TrainError::Config(m) => CompressError::Config(m),
            e => CompressError::Train(e),
        };
        crate::recipe_parse::check_finite(self).map_err(train_err)?;
        if let Some(name) = &self.name {
            crate::run_name(name).map_err(|e| CompressError::Config(format!("name: {e}")))?;
        }
        crate::recipe_parse::check_threads(self.threads).map_err(train_err)?;
        if let Some(d) = &self.device {
            whetstone_models::parse_device(d).map_err(|e| CompressError::Config(format!("device: {e}")))?;
        }
        for (key, v) in [("latency_iters", self.latency_iters), ("throughput_iters", self.throughput_iters)] {
            if v > crate::recipe_parse::MAX_ITERS {
                return Err(CompressError::Config(format!("{key} = {v} is too large (at most {})", crate::recipe_parse::MAX_ITERS)));
            }
        }
        if let Ok(StudentSpec::Fresh { .. }) = self.distill.student.parse::<StudentSpec>() {
            self.check_student_size(0)?;
        }
        if let Some(a) = &self.distill.adversarial {
            a.validate().map_err(train_err)?;
            if self.distill.loss.needs_internals() {
                return Err(CompressError::Config(format!(
                    "distill.adversarial ({}) works with logit distillation only: the hidden-state, attention and embedding terms read the student's layers, which its perturbed view does not expose",
                    a.name()
                )));
            }
        }
        let p = &self.prune;
        check_sparsity(p.sparsity).ok_or_else(|| CompressError::Config(format!("prune.sparsity must be in [0, 1), got {}", p.sparsity)))?;
        for (k, v) in [("prune.heads", p.heads), ("prune.ffn", p.ffn)] {
            if let Some(v) = v {
                check_sparsity(v).ok_or_else(|| CompressError::Config(format!("{k} must be in [0, 1), got {v}")))?;
            }
        }
        p.step()?;
        for (k, v) in [("distill.lr", self.distill.lr), ("prune.lr", p.lr), ("recovery.lr", self.recovery.lr)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(CompressError::Config(format!("{k} must be a positive number, got {v}")));
            }
        }
        for (k, v) in [("distill.epochs", self.distill.epochs), ("distill.batch_size", self.distill.batch_size.unwrap_or(1) as u64), ("distill.transfer_copies", self.distill.transfer_copies as u64), ("prune.every", p.every)] {
            if v == 0 {
                return Err(CompressError::Config(format!("{k} must be >= 1")));
            }
        }
        if self.recovery.mode != RecoveryMode::None && self.recovery.epochs == 0 {
            return Err(CompressError::Config("recovery.epochs must be >= 1 (or recovery.mode = \"none\")".into()));
        }
        if !(0.0..=1.0).contains(&p.alpha) || p.temperature.is_nan() || p.temperature <= 0.0 {
            return Err(CompressError::Config(format!("prune.alpha must be in [0, 1] and prune.temperature > 0, got {} and {}", p.alpha, p.temperature)));
        }
        if !(p.ramp > 0.0 && p.ramp <= 1.0) {
            return Err(CompressError::Config(format!("prune.ramp must be in (0, 1], got {}", p.ramp)));
        }
        if !(0.0..=1.0).contains(&self.recovery.alpha) || self.recovery.temperature.is_nan() || self.recovery.temperature <= 0.0 {
            return Err(CompressError::Config(format!("recovery.alpha must be in [0, 1] and recovery.temperature > 0, got {} and {}", self.recovery.alpha, self.recovery.temperature)));
        }
        self.distill.student.parse::<StudentSpec>()?;
        let transfer = &self.distill.transfer;
        if !transfer.is_empty() && transfer != super::transfer::NEIGHBOUR {
            whetstone_data::Manifest::builtin()?
                .get(transfer)
                .map_err(|e| CompressError::Config(format!("distill.transfer `{transfer}` is neither `{}` nor a dataset of the manifest ({e})", super::transfer::NEIGHBOUR)))?;
        }
        // The loop's own checks name the `train.*` key.
        self.train.for_phase(1, self.distill.batch_size).validate().map_err(|e| match e {
            TrainError::Config(m) => CompressError::Config(m),
            e => CompressError::Train(e),
        })?;
        self.schedule.validate().map_err(|e| CompressError::Config(format!("schedule: {e}")))?;
        if let Some(p) = self.schedule.plateau() {
            if p.mode != PlateauMode::Max {
                return Err(CompressError::Config(format!("schedule: reduce-on-plateau watches train.metric (`{}`), where higher is better: set schedule mode = \"max\"", self.train.metric)));
            }
        }
        if !(self.optim.weight_decay >= 0.0 && self.optim.weight_decay.is_finite()) {
            return Err(CompressError::Config(format!("optim.weight_decay must be >= 0, got {}", self.optim.weight_decay)));
        }
        // `[optim]` at a phase's rate (optim.lr itself is not used).
        self.optim_at(self.distill.lr).validate().map_err(|e| match e {
            whetstone_optim::OptimError::Config(m) => CompressError::Config(m),
            e => CompressError::Optim(e),
        })?;
        Ok(())
    }

    /// A fresh `distill.student` (`LxH…`) with a vocabulary of `vocab` ids (0: not yet known)
    /// fits in memory.
    pub fn check_student_size(&self, vocab: usize) -> Result<()> {
        let Ok(StudentSpec::Fresh { layers, hidden, heads, ffn }) = self.distill.student.parse::<StudentSpec>() else {
            return Ok(());
        };
        let encoder = whetstone_models::TransformerConfig { layers, hidden, heads, ffn, ..Default::default() };
        let params = whetstone_models::transformer_encoder_parameters(&encoder, vocab);
        let vocab_key = if vocab == 0 { "" } else { "the teacher's vocabulary" };
        crate::recipe_parse::check_size(params, &format!("distill.student = {:?}", self.distill.student), vocab, vocab_key).map_err(|e| match e {
            TrainError::Config(m) => CompressError::Config(m),
            e => CompressError::Train(e),
        })
    }

    /// The optimiser settings of a phase with peak learning rate `lr`.
    pub fn optim_at(&self, lr: f64) -> OptimConfig {
        OptimConfig { lr, ..self.optim.clone() }
    }

    /// `[optim]`'s optimiser at peak learning rate `lr` over the trainable variables of
    /// `stores` (see [`build_optimizer`]).
    pub fn optimizer(&self, lr: f64, stores: &[&VarStore]) -> Result<Box<dyn Optimizer>> {
        build_optimizer(&self.optim_at(lr), stores)
    }
}

/// A deserialisation error `message` with its key: from a `toml::Value` it carries no
/// position, so the first top-level table that does not deserialise on its own is named, and
/// an unknown field by its dotted path in that table.
fn locate(value: &toml::Value, message: &str) -> String {
    fn fails<T: serde::de::DeserializeOwned>(v: &toml::Value) -> bool {
        v.clone().try_into::<T>().is_err()
    }
    fn path_of(v: &toml::Value, field: &str, prefix: &str) -> Option<String> {
        let t = v.as_table()?;
        if t.contains_key(field) {
            return Some(format!("{prefix}.{field}"));
        }
        t.iter().find_map(|(k, sub)| path_of(sub, field, &format!("{prefix}.{k}")))
    }
    type Check = fn(&toml::Value) -> bool;
    let checks: [(&str, Check); 6] = [
        ("optim", fails::<OptimConfig>),
        ("schedule", fails::<Schedule>),
        ("train", fails::<TrainSettings>),
        ("distill", fails::<DistillSettings>),
        ("prune", fails::<PruneSettings>),
        ("recovery", fails::<RecoverySettings>),
    ];
    let Some((table, sub)) = checks.iter().find_map(|(key, check)| value.get(*key).filter(|v| check(v)).map(|v| (*key, v))) else {
        return message.to_string();
    };
    let field = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next());
    match field.and_then(|f| path_of(sub, f, table)) {
        Some(path) => format!("unknown key `{path}` ({message})"),
        None => format!("{table}: {message}"),
    }
}

/// Keys present in `given` but absent from `known` (the config as understood), as dotted paths.
fn unknown_keys(given: &toml::Value, known: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let (toml::Value::Table(g), toml::Value::Table(k)) = (given, known) {
        for (key, gv) in g {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match k.get(key) {
                None => out.push(path),
                Some(kv) => unknown_keys(gv, kv, &path, out),
            }
        }
    }
}

/// `Some(())` when `s` is a sparsity target in `[0, 1)`.
fn check_sparsity(s: f64) -> Option<()> {
    (0.0..1.0).contains(&s).then_some(())
}
