//! Text augmentation in runs and on the command line: a recipe's `[augment]` section, and
//! augmenters built by name with their resources (WordNet, a model's embeddings) resolved
//! through the data manifest. The augmenters themselves are whetstone-augment's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use whetstone_augment::{AugmentSpec, AugmentedSource, Augmenter, MlmReplace, Neighbours, WordNet};
use whetstone_data::{cache_dir, obtain, Manifest, Split, TextTokenizer};
use whetstone_train::{Result, TrainConfig, TrainError};

use crate::resolve_pretrained;

/// The manifest entry that holds WordNet.
pub const WORDNET: &str = "wordnet";

/// On-the-fly augmentation of the training split: every epoch, each training example is
/// replaced with probability `probability` by a fresh augmentation (see
/// [`AugmentedSource`]). Validation and test data are never augmented.
///
/// ```toml
/// [augment]
/// method = "eda"        # eda, synonym, insert, swap, delete, cutoff, span-cutoff, mask, neighbour, mlm
/// alpha = 0.1           # the method's strength (default per method, see AugmentSpec)
/// probability = 0.5     # share of training examples augmented each epoch
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentRecipe {
    /// One of [`whetstone_augment::METHODS`].
    pub method: String,
    /// The method's strength; absent: the method's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// The probability that an example is augmented in an epoch (default 0.5).
    #[serde(default = "default_probability")]
    pub probability: f64,
    /// Neighbours per word for `neighbour` (default 15).
    #[serde(default = "default_k")]
    pub k: usize,
    /// The token `mask` writes (default `[MASK]`).
    #[serde(default = "default_mask_token")]
    pub mask_token: String,
    /// Whose input embeddings `neighbour` uses: a manifest model, a checkpoint folder or a
    /// `whetstone pretrain` run (default `minilm-l6`); for `mlm`, a `whetstone pretrain` run.
    #[serde(default = "default_model")]
    pub model: PathBuf,
    /// Added to the key of every batch's augmentations: other augmentations, same data order.
    #[serde(default)]
    pub seed_offset: u64,
}

fn default_probability() -> f64 {
    0.5
}
fn default_k() -> usize {
    AugmentSpec::new("").k
}
fn default_mask_token() -> String {
    AugmentSpec::new("").mask_token
}
fn default_model() -> PathBuf {
    PathBuf::from("minilm-l6")
}

fn config(e: whetstone_augment::AugmentError) -> TrainError {
    TrainError::Config(e.to_string())
}

impl AugmentRecipe {
    /// The method and its settings.
    pub fn spec(&self) -> AugmentSpec {
        AugmentSpec { method: self.method.clone(), alpha: self.alpha, k: self.k, mask_token: self.mask_token.clone() }
    }

    /// Checks the values without loading anything; errors name the `augment.` key.
    pub fn validate(&self) -> Result<()> {
        self.spec().validate().map_err(|e| TrainError::Config(format!("augment.{e}")))?;
        whetstone_augment::eda::check_unit("probability", self.probability).map_err(|e| TrainError::Config(format!("augment.{e}")))
    }

    /// The training source: `split` augmented on the fly, batched as `train` says.
    pub fn source(&self, split: &Split, tokenizer: TextTokenizer, max_len: usize, train: &TrainConfig) -> Result<AugmentedSource> {
        let augmenter = build_augmenter(&self.spec(), &self.model)?;
        let source = AugmentedSource::new(split, tokenizer, max_len, augmenter, self.probability, train.batch_size, train.bucket_factor).map_err(config)?;
        Ok(source.seed_offset(self.seed_offset))
    }
}

/// WordNet from the manifest's `wordnet` entry, fetched on first use.
pub fn load_wordnet() -> Result<WordNet> {
    let manifest = Manifest::builtin()?;
    let dir = obtain(manifest.get(WORDNET)?, &cache_dir())?;
    WordNet::load(&dir).map_err(config)
}

/// The whole-word neighbours of a model's input embeddings: `model` is a manifest model, a
/// checkpoint folder or a `whetstone pretrain` run ([`resolve_pretrained`]); its vocabulary is
/// `vocab.txt`, else the one in `tokenizer.json`.
pub fn load_neighbours(model: &Path, k: usize) -> Result<Neighbours> {
    let dir = resolve_pretrained(model)?;
    let weights = dir.join("model.safetensors");
    let vocab = dir.join("vocab.txt");
    if vocab.is_file() {
        return Neighbours::from_safetensors(&weights, &vocab, None, k).map_err(config);
    }
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
    let tokens: Vec<String> = (0..tok.vocab_size() as i64).map(|id| tok.id_to_token(id).unwrap_or_default()).collect();
    Neighbours::from_safetensors_tokens(&weights, &tokens, None, k).map_err(config)
}

/// The augmenter `spec` names, with WordNet or `model`'s embeddings loaded when it needs them;
/// `mlm` loads the encoder and masked-LM head of the `whetstone pretrain` run `model`.
pub fn build_augmenter(spec: &AugmentSpec, model: &Path) -> Result<Box<dyn Augmenter>> {
    spec.validate().map_err(config)?;
    if spec.method == "mlm" {
        if !model.join(whetstone_train::BEST_MODEL_FILE).is_file() || !model.join(crate::ENCODER_DIR).is_dir() {
            return Err(TrainError::Config(format!("method `mlm` needs a finished `whetstone pretrain` run folder (with model.safetensors and encoder/), got `{}`", model.display())));
        }
        return Ok(Box::new(MlmReplace::from_pretrain_run(model, spec.strength(), spec.k).map_err(config)?));
    }
    let wordnet = spec.needs_wordnet().then(load_wordnet).transpose()?.map(Arc::new);
    let neighbours = spec.needs_embeddings().then(|| load_neighbours(model, spec.k)).transpose()?.map(Arc::new);
    spec.build(wordnet, neighbours).map_err(config)
}
