//! A finished (or interrupted) run folder, loaded back for evaluation and prediction.

use crate::io;
use whetstone_train::{Result, TrainError, BEST_MODEL_FILE};
use crate::recipe::Recipe;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device};
use whetstone_data::{LabelSet, Manifest, Splits, TextTokenizer};
use whetstone_models::{load_varstore, parse_device, TextClassifier};

/// The resolved recipe of a run.
pub const RECIPE_FILE: &str = "recipe.toml";
/// The run's tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The run's class names, in class-id order.
pub const LABELS_FILE: &str = "labels.json";

/// Display names for classes: the manifest's `label_names` for a named dataset, else the raw labels.
pub fn display_names(recipe: &Recipe, splits: &Splits) -> Vec<String> {
    if recipe.data.path.is_none() {
        if let Ok(m) = Manifest::builtin() {
            if let Ok(e) = m.get(&recipe.data.dataset) {
                return splits.labels.display_names(e.label_names.as_ref());
            }
        }
    }
    splits.labels.names.clone()
}

/// Everything in a run folder needed to use its model.
pub struct LoadedRun {
    pub dir: PathBuf,
    pub recipe: Recipe,
    pub tokenizer: TextTokenizer,
    pub labels: LabelSet,
    /// Display names of the classes (e.g. `negative` for raw label `0`).
    pub label_names: Vec<String>,
    pub vs: VarStore,
    pub model: Box<dyn TextClassifier>,
    pub device: Device,
    /// Precision of inference (the recipe's, unless [`LoadedRun::with_precision`] changed it).
    pub precision: whetstone_train::Precision,
    /// Longest input, from the resolved model (a pretrained checkpoint may shorten it).
    max_len: usize,
}

fn need(dir: &Path, file: &str) -> Result<PathBuf> {
    let p = dir.join(file);
    if !p.exists() {
        return Err(TrainError::Run { run: dir.to_path_buf(), msg: format!("{file} is missing; is this a whetstone run folder that finished training?") });
    }
    Ok(p)
}

/// Read a run's recipe, with every check [`Recipe::parse`] makes (an edited `recipe.toml` with
/// an unknown key or a bad value is an error naming the key).
pub fn read_recipe(dir: &Path) -> Result<Recipe> {
    let run = |msg: String| TrainError::Run { run: dir.to_path_buf(), msg };
    if !dir.is_dir() {
        return Err(run("no such run folder".into()));
    }
    if !dir.join(RECIPE_FILE).exists() && !dir.join(whetstone_train::CHECKPOINT_FILE).exists() {
        // A run killed between making its folder and writing its recipe.
        return Err(run(format!("no {RECIPE_FILE} and no checkpoint yet: the run stopped before its first checkpoint, so there is nothing to continue or load; start it again without --resume (another --name, or delete this folder)")));
    }
    let p = need(dir, RECIPE_FILE)?;
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
    Recipe::parse(RECIPE_FILE, &text, &[]).map_err(|msg| TrainError::Run { run: dir.to_path_buf(), msg })
}

/// Refuse a precision `device` cannot run (fp16 off CUDA) and print, once, the warning for bf16
/// on a CPU without native bf16: what every run pipeline does before it writes anything.
pub(crate) fn check_precision(precision: whetstone_train::Precision, device: Device) -> Result<()> {
    precision.check_device(device)?;
    if let Some(w) = precision.slow_cpu_warning(device) {
        eprintln!("{w}");
    }
    Ok(())
}

impl LoadedRun {
    /// Load the best model of the run in `dir` onto `device` (`None`: the recipe's device).
    pub fn open(dir: &Path, device: Option<&str>) -> Result<Self> {
        if !dir.is_dir() {
            return Err(TrainError::Run { run: dir.to_path_buf(), msg: "no such run folder".into() });
        }
        let recipe = read_recipe(dir)?;
        let tokenizer = TextTokenizer::from_file(&need(dir, TOKENIZER_FILE)?)?;
        let lp = need(dir, LABELS_FILE)?;
        let labels_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&lp).map_err(io(&lp))?).map_err(|e| TrainError::Run { run: dir.into(), msg: format!("{}: {e}", lp.display()) })?;
        let strings = |key: &str| -> Vec<String> {
            labels_json.get(key).and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        let labels = LabelSet { names: strings("labels") };
        let mut label_names = strings("display");
        if label_names.len() != labels.len() {
            label_names = labels.names.clone();
        }
        if labels.is_empty() {
            return Err(TrainError::Run { run: dir.into(), msg: format!("{} lists no labels", lp.display()) });
        }
        let device = parse_device(device.unwrap_or(&recipe.device))?;
        let mut vs = VarStore::new(device);
        let model_config = crate::pretrained::resolve_model(&recipe.model)?;
        let model = model_config.build(&vs.root(), tokenizer.vocab_size() as i64, labels.len() as i64)?;
        // Refuses NaN/Inf weights, naming the file and the tensor.
        load_varstore(&mut vs, &need(dir, BEST_MODEL_FILE)?)?;
        let max_len = model_config.max_len().map_or(recipe.data.max_len, |m| m.min(recipe.data.max_len));
        let precision = recipe.precision;
        precision.check_device(device)?;
        Ok(Self { dir: dir.to_path_buf(), recipe, tokenizer, labels, label_names, vs, model, device, precision, max_len })
    }

    /// Run inference in `precision` instead of the recipe's (weights stay float32). An error
    /// when the device cannot run it (fp16 off CUDA).
    pub fn with_precision(mut self, precision: whetstone_train::Precision) -> Result<Self> {
        precision.check_device(self.device)?;
        self.precision = precision;
        Ok(self)
    }

    /// Longest input the run's model was trained with.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl LoadedRun {
    /// Predictions and a classification report on a labelled split (labels are class ids of this run).
    pub fn evaluate_split(&self, split: &whetstone_data::Split) -> Result<(whetstone_train::Predictions, whetstone_eval::ClassificationReport)> {
        let enc = whetstone_data::encode(&self.tokenizer, split, self.max_len())?;
        let p = whetstone_train::predict_in(self.precision, self.model.as_ref(), &enc, self.recipe.train.eval_batch_size, self.device)?;
        let report = whetstone_eval::classification_report(&enc.labels, &p.preds, &self.label_names)?;
        Ok((p, report))
    }

    /// The run's own test split, rebuilt from its recipe (splits are deterministic in the seed).
    pub fn test_split(&self) -> Result<whetstone_data::Split> {
        let d = &self.recipe.data;
        let splits = whetstone_data::load_splits_with(&d.source(), &d.load_options(self.recipe.seed))?;
        if splits.labels != self.labels {
            return Err(TrainError::Run { run: self.dir.clone(), msg: format!("the data's labels {:?} differ from the run's {:?}", splits.labels.names, self.labels.names) });
        }
        Ok(splits.test)
    }

    /// Read a labelled table and map its labels onto this run's classes. A label the run never
    /// saw is an error naming the file and line.
    pub fn read_labelled(&self, spec: &whetstone_data::TableSpec) -> Result<whetstone_data::Split> {
        let rows = whetstone_data::read_table(spec)?;
        let mut split = whetstone_data::Split { texts: Vec::with_capacity(rows.len()), labels: Vec::with_capacity(rows.len()) };
        for r in rows {
            // The raw label as trained on, or its display name as `predict` prints it.
            let id = self.labels.id(&r.label).or_else(|| self.label_names.iter().position(|n| *n == r.label).map(|i| i as i64)).ok_or_else(|| TrainError::Run {
                run: self.dir.clone(),
                msg: format!("{}:{}: label `{}` is not one the model was trained on ({})", spec.path.display(), r.line, r.label, self.label_names.join(", ")),
            })?;
            split.texts.push(r.text);
            split.labels.push(id);
        }
        Ok(split)
    }

    /// The most likely class (display name) and its probability for each text.
    pub fn predict_texts(&self, texts: &[String]) -> Result<Vec<(String, f32)>> {
        Ok(self
            .predict_probs(texts)?
            .into_iter()
            .map(|pr| {
                let c = argmax(&pr);
                (self.label_names[c].clone(), pr[c])
            })
            .collect())
    }

    /// The probability of every class (in [`label_names`](Self::label_names) order) for each
    /// text. Each text is encoded as training encoded it: cut to `max_len × 32` characters,
    /// then to `max_len` ids (see `whetstone_data::truncate`). Probabilities that are not
    /// finite (NaN or infinite: broken weights, or activations that overflow in low precision)
    /// are an error naming the text's index, never a silent `NaN`.
    pub fn predict_probs(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let split = whetstone_data::Split { texts: texts.to_vec(), labels: vec![0; texts.len()] };
        let enc = whetstone_data::encode(&self.tokenizer, &split, self.max_len())?;
        let p = whetstone_train::predict_in(self.precision, self.model.as_ref(), &enc, self.recipe.train.eval_batch_size, self.device)?;
        check_finite_probs(&p.probs, &self.dir)?;
        Ok(p.probs)
    }
}

/// The index of the largest probability (the first on ties).
fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().fold(0, |best, (i, &v)| if v > p[best] { i } else { best })
}

/// An error naming the first text (0-based index) whose class probabilities are not all finite.
pub(crate) fn check_finite_probs(probs: &[Vec<f32>], run: &Path) -> Result<()> {
    match probs.iter().position(|p| p.iter().any(|v| !v.is_finite())) {
        None => Ok(()),
        Some(i) => Err(TrainError::Run {
            run: run.to_path_buf(),
            msg: format!("the model's class probabilities for text {} are not finite (NaN or infinite); its weights or activations overflow, so no prediction is given", i + 1),
        }),
    }
}
