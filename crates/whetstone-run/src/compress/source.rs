//! The run a compression step starts from: its Transformer model, tokenizer, labels and data.

use whetstone_compress::{CompressError, Result};
use std::path::Path;
use tch::{nn::VarStore, Device};
use whetstone_data::{encode, load_splits, Encoded};
use whetstone_models::{TextClassifier, TransformerClassifierConfig};
use crate::{display_names, LoadedRun, Recipe};

/// A loaded input run with its encoded splits (the splits of its own recipe and seed, so the
/// test set is the one it was evaluated on).
pub struct Source {
    /// The run folder, its recipe, tokenizer, labels and model.
    pub run: LoadedRun,
    /// Training split.
    pub train: Encoded,
    /// Validation split.
    pub valid: Encoded,
    /// Test split.
    pub test: Encoded,
    /// Class display names.
    pub label_names: Vec<String>,
}

impl Source {
    /// Open the run in `dir` on `device` (`None`: the run's own) and encode its splits.
    /// The run's model must be a Transformer.
    pub fn open(dir: &Path, device: Option<&str>) -> Result<Self> {
        let run = LoadedRun::open(dir, device)?;
        if run.model.as_transformer().is_none() {
            return Err(CompressError::Run { run: dir.to_path_buf(), msg: format!("its model is a {}; distillation and pruning here need a Transformer", run.recipe.model.kind()) });
        }
        let d = &run.recipe.data;
        let splits = load_splits(&d.source(), d.valid_fraction, d.test_fraction, run.recipe.seed)?;
        if splits.labels != run.labels {
            return Err(CompressError::Run { run: dir.to_path_buf(), msg: format!("the data's labels {:?} differ from the run's {:?}", splits.labels.names, run.labels.names) });
        }
        let label_names = display_names(&run.recipe, &splits);
        let max_len = run.max_len();
        let train = encode(&run.tokenizer, &splits.train, max_len)?;
        let valid = encode(&run.tokenizer, &splits.valid, max_len)?;
        let test = encode(&run.tokenizer, &splits.test, max_len)?;
        Ok(Self { run, train, valid, test, label_names })
    }

    /// Keep only the first `n` training examples (0 keeps all).
    pub fn limit_train(&mut self, n: usize) {
        if n > 0 && n < self.train.len() {
            self.train.ids.truncate(n);
            self.train.labels.truncate(n);
        }
    }

    /// The run's model as a Transformer (checked in [`Source::open`]).
    pub fn transformer(&self) -> Result<&whetstone_models::TransformerClassifier> {
        self.run.model.as_transformer().ok_or_else(|| CompressError::Run { run: self.run.dir.clone(), msg: "its model is not a Transformer".into() })
    }

    /// The device the model lives on.
    pub fn device(&self) -> Device {
        self.run.device
    }

    /// The resolved shape of the run's model (a pretrained checkpoint's own shape, no longer
    /// pointing at the checkpoint), pooling included.
    pub fn model_config(&self) -> Result<TransformerClassifierConfig> {
        let t = self.transformer()?;
        Ok(TransformerClassifierConfig { encoder: t.encoder().config().clone(), pooling: t.pooling(), pretrained: None })
    }

    /// The run's recipe with `name` and the model replaced, for a derived run folder.
    pub fn derived_recipe(&self, name: &str, model: TransformerClassifierConfig) -> Recipe {
        let mut r = self.run.recipe.clone();
        r.name = name.to_string();
        r.model = whetstone_models::ModelConfig::Transformer(model);
        r
    }

    /// Take the model and its store out (e.g. to serve as the teacher).
    pub fn into_model(self) -> (Box<dyn TextClassifier>, VarStore) {
        (self.run.model, self.run.vs)
    }
}
