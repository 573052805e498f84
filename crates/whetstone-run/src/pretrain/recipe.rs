//! `whetstone pretrain` recipes.

use serde::{Deserialize, Serialize};
use whetstone_compress::{AttentionLoss, GeneralDistillConfig, LayerMapping};
use whetstone_data::MaskingConfig;
use whetstone_models::TransformerConfig;
use whetstone_optim::{OptimConfig, Schedule};
use crate::recipe::{default_device, default_seed, TokenizerRecipe};
use crate::folder::run_name;
use crate::recipe_parse::{check_common, check_finite, check_size, check_threads, parse_toml, MAX_TOKENS};
use whetstone_train::{TrainConfig, TrainError::Config};

/// A pretraining recipe: masked-LM from scratch, masked-LM continued from a pretrained
/// encoder (`init`, domain-adaptive pretraining), or general distillation from a teacher
/// (`[general]`). Unknown keys are rejected.
///
/// ```
/// let r = whetstone_run::PretrainRecipe::parse("r.toml", r#"
///     name = "mlm"
///     [corpus]
///     sources = ["wiki100"]
///     [model]
///     layers = 2
///     hidden = 128
///     heads = 2
///     ffn = 512
///     max_len = 128
///     [mlm]
///     whole_word = true
/// "#, &["train.epochs=3".into()]).unwrap();
/// assert_eq!(r.mlm.mask_prob, 0.15);
/// assert_eq!(r.train.epochs, 3);
/// assert!(whetstone_run::PretrainRecipe::parse("r.toml", "[mlm]\nmask_prob = 1.5", &[]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainRecipe {
    /// Run name; the run goes to `runs/<name>/` unless told otherwise.
    #[serde(default = "default_name")]
    pub name: String,
    /// Seed for the split, initialisation, data order, masks and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Intra-op threads for libtorch; 0 keeps libtorch's default.
    #[serde(default)]
    pub threads: usize,
    /// Precision of the forward passes: `fp32` (default), `bf16`, or `fp16` (CUDA only, with
    /// dynamic loss scaling). Weights and checkpoints stay float32.
    #[serde(default)]
    pub precision: whetstone_train::Precision,
    /// Domain-adaptive pretraining: continue masked-LM training of this pretrained encoder (a
    /// manifest model such as `minilm-l6`, a Hugging Face BERT folder, or a pretraining run)
    /// instead of a fresh one. Its `tokenizer.json` and `config.json` are used: `[tokenizer]`
    /// and `[model]` are not (a fresh MLM head, tied to its word embeddings, is trained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// General (task-agnostic) distillation from a teacher encoder instead of masked-LM: the
    /// `[model]` student learns the teacher's embeddings, hidden states and attention maps,
    /// with the teacher's tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general: Option<GeneralRecipe>,
    #[serde(default)]
    pub corpus: CorpusRecipe,
    /// The WordPiece vocabulary trained on the corpus (or a `tokenizer.json` to load).
    #[serde(default)]
    pub tokenizer: TokenizerRecipe,
    /// The encoder's shape. Post-LayerNorm (BERT) by default, so that the result exports as a
    /// Hugging Face BERT checkpoint.
    #[serde(default)]
    pub model: TransformerConfig,
    /// Masking.
    #[serde(default)]
    pub mlm: MaskingConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub train: TrainConfig,
}

/// `[general]`: general distillation from a teacher encoder (TinyBERT's first stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneralRecipe {
    /// The teacher: a manifest model (`minilm-l6`), a Hugging Face BERT folder, or a
    /// pretraining run. The student uses its `tokenizer.json`.
    pub teacher: String,
    /// Which teacher layer each student layer learns from: `uniform`, `last`, or explicit
    /// 0-based pairs `"0:1,1:3"`.
    pub mapping: String,
    /// Weight of the embedding-output MSE (through a learned projection when widths differ).
    pub embedding: f64,
    /// Weight of the hidden-state MSE, summed over the mapped layers.
    pub hidden: f64,
    /// Weight of the attention loss, summed over the mapped layers.
    pub attention: f64,
    /// `kl` (KL(teacher ‖ student) per query row) or `mse` of the attention probabilities; with
    /// different head counts the maps are averaged over heads first.
    pub attention_loss: AttentionLoss,
    /// How the student's embeddings start: `svd` (the teacher's projected on their top
    /// singular directions) or `random`.
    pub student_init: String,
}

impl Default for GeneralRecipe {
    fn default() -> Self {
        let d = GeneralDistillConfig::default();
        Self { teacher: "minilm-l6".into(), mapping: "uniform".into(), embedding: d.embedding, hidden: d.hidden, attention: d.attention, attention_loss: d.attention_loss, student_init: "svd".into() }
    }
}

impl GeneralRecipe {
    /// The objective's settings (the mapping parsed).
    pub fn config(&self) -> whetstone_train::Result<GeneralDistillConfig> {
        let mapping: LayerMapping = self.mapping.parse().map_err(|e| Config(format!("general.mapping: {e}")))?;
        let c = GeneralDistillConfig { embedding: self.embedding, hidden: self.hidden, attention: self.attention, attention_loss: self.attention_loss, mapping };
        c.validate().map_err(|e| Config(format!("general: {e}")))?;
        Ok(c)
    }

    fn validate(&self, student_layers: usize) -> whetstone_train::Result<()> {
        if self.teacher.trim().is_empty() {
            return Err(Config("general.teacher is empty: name the teacher encoder (e.g. \"minilm-l6\")".into()));
        }
        if !matches!(self.student_init.as_str(), "svd" | "random") {
            return Err(Config(format!("general.student_init must be \"svd\" or \"random\", got {:?}", self.student_init)));
        }
        if let LayerMapping::Explicit(pairs) = &self.config()?.mapping {
            if let Some((s, t)) = pairs.iter().find(|(s, _)| *s >= student_layers) {
                return Err(Config(format!("general.mapping: pair {s}:{t} names student layer {s}, but model.layers = {student_layers} (layers 0..{student_layers})")));
            }
        }
        Ok(())
    }
}

fn default_name() -> String {
    "pretrain".into()
}

/// Where the unlabelled text comes from and how it is cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorpusRecipe {
    /// Corpora, each a manifest name (`imdb`: its texts; `wiki100`: its articles) or a `.txt`
    /// file / folder of `.txt` files (one document per line).
    pub sources: Vec<String>,
    /// Tokens per window, `[CLS]` and `[SEP]` included.
    pub max_len: usize,
    /// Drop windows (document tails) with fewer text tokens than this.
    pub min_tokens: usize,
    /// Share of the documents held out to measure validation loss and perplexity.
    pub valid_fraction: f64,
    /// Use at most this many documents (a seeded sample); 0 = all.
    pub max_documents: usize,
}

impl Default for CorpusRecipe {
    fn default() -> Self {
        Self { sources: vec!["imdb".into()], max_len: 128, min_tokens: 8, valid_fraction: 0.02, max_documents: 0 }
    }
}

impl PretrainRecipe {
    /// Parse recipe TOML `text` (from `origin`, used in messages) with `key=value` overrides.
    pub fn parse(origin: &str, text: &str, overrides: &[String]) -> Result<Self, String> {
        let recipe: Self = parse_toml(origin, text, overrides)?;
        recipe.validate().map_err(|e| format!("{origin}: {e}"))?;
        Ok(recipe)
    }

    /// Every check before anything is written, with the key in each message: finite floats,
    /// ranges, integers that fit their types, the optimiser's and the encoder's settings, and
    /// an encoder (with its MLM head and the WordPiece vocabulary) small enough to allocate.
    pub fn validate(&self) -> whetstone_train::Result<()> {
        check_finite(self)?;
        run_name(&self.name).map_err(|e| Config(format!("name: {e}")))?;
        check_threads(self.threads)?;
        self.train.validate()?;
        self.schedule.validate()?;
        let as_model = whetstone_models::ModelConfig::Transformer(whetstone_models::TransformerClassifierConfig { encoder: self.model.clone(), ..Default::default() });
        as_model.validate()?;
        self.mlm.validate()?;
        if let Some(init) = &self.init {
            if init.trim().is_empty() {
                return Err(Config("init is empty: name the encoder to continue from (e.g. \"minilm-l6\") or leave it out".into()));
            }
            if self.general.is_some() {
                return Err(Config("init and [general] cannot be combined: init continues masked-LM training of a checkpoint, [general] distils a teacher into a fresh [model]".into()));
            }
        }
        if let Some(g) = &self.general {
            g.validate(self.model.layers)?;
        }
        if self.tokenizer.path.is_some() && (self.init.is_some() || self.general.is_some()) {
            let who = if self.init.is_some() { "init's checkpoint" } else { "the teacher" };
            return Err(Config(format!("tokenizer.path cannot be set with {}: the tokenizer is {who}'s tokenizer.json", if self.init.is_some() { "init" } else { "[general]" })));
        }
        if self.tokenizer.path.is_none() && self.init.is_none() && self.general.is_none() {
            check_pretrain_size(&self.model, self.tokenizer.vocab_size)?;
        }
        let c = &self.corpus;
        if c.sources.is_empty() {
            return Err(Config("corpus.sources is empty: name at least one corpus (e.g. \"imdb\" or \"wiki100\")".into()));
        }
        if !(0.0..1.0).contains(&c.valid_fraction) {
            return Err(Config(format!("corpus.valid_fraction must be in [0, 1), got {}", c.valid_fraction)));
        }
        if !(3..=MAX_TOKENS).contains(&c.max_len) {
            return Err(Config(format!("corpus.max_len must be in [3, {MAX_TOKENS}], got {}", c.max_len)));
        }
        if c.max_len > self.model.max_len && self.init.is_none() {
            return Err(Config(format!("corpus.max_len ({}) exceeds model.max_len ({}), the positions the encoder has", c.max_len, self.model.max_len)));
        }
        if self.model.pre_norm && self.init.is_none() {
            return Err(Config("model.pre_norm = true cannot be exported as a BERT checkpoint; pretraining uses post-LayerNorm".into()));
        }
        check_common(&self.tokenizer, &self.optim, &self.device)
    }
}

/// An encoder of shape `model` with `vocab` ids and its MLM head (a dense layer, a LayerNorm
/// and a bias per id; the decoder is tied to the embeddings) fits in memory.
pub(crate) fn check_pretrain_size(model: &TransformerConfig, vocab: usize) -> whetstone_train::Result<()> {
    let h = model.hidden as u128;
    let params = whetstone_models::transformer_encoder_parameters(model, vocab).saturating_add(h.saturating_mul(h)).saturating_add(3 * h).saturating_add(vocab as u128);
    let keys = format!("model.layers = {}, model.hidden = {}, model.ffn = {}, model.max_len = {}", model.layers, model.hidden, model.ffn, model.max_len);
    check_size(params, &keys, vocab, "tokenizer.vocab_size")
}
