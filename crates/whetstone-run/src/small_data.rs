//! Defaults chosen for the size of the user's own data, and the check that a finished model
//! beat the majority-class baseline.
//!
//! `whetstone train --data FILE` without `--recipe` starts from the default recipe (a TextCNN
//! trained from scratch), which needs thousands of examples. Below [`SMALL_DATA_THRESHOLD`]
//! labelled examples, [`choose_for_size`] changes the recipe so that a few hundred examples
//! are enough, and says what it changed (one [`AutoChoice`] per setting):
//!
//! * the model: a pretrained encoder ([`DEFAULT_ENCODER`], mean pooling, gradient clipping at
//!   1) with learning rate [`SMALL_LR`];
//! * the batch: [`SMALL_BATCH`] examples, so that an epoch has more optimiser steps;
//! * the held-out splits: large enough to measure something ([`held_out_fraction`]);
//! * augmentation: EDA on the fly ([`small_data_augment`]), the method that measured best at
//!   500 examples in `reports/augment.md`;
//! * early stopping off, and the epochs raised until training takes at least [`MIN_STEPS`]
//!   optimiser steps, at most [`MAX_EPOCHS`] epochs ([`epochs_for_min_steps`]).
//!
//! A setting the user gave (`--set`, `--lr`, `--epochs`, …) is never changed: its key is in the
//! explicit keys, and the choice is left out. Setting anything under `model.` or `tokenizer.`
//! keeps the recipe's model (and its learning rate).

use serde::{Deserialize, Serialize};
use whetstone_data::{load_splits_with, LoadOptions};
use whetstone_eval::ClassificationReport;
use whetstone_models::ModelConfig;
use whetstone_train::{Result, TrainError};

use crate::{AugmentRecipe, Recipe};

/// Below this many labelled examples (all of the user's file, before the splits) a run on the
/// user's own data gets the small-data defaults.
pub const SMALL_DATA_THRESHOLD: usize = 2000;
/// The least number of optimiser steps a small-data run takes (through more epochs).
pub const MIN_STEPS: u64 = 250;
/// The most epochs the minimum-step rule asks for.
pub const MAX_EPOCHS: u64 = 40;
/// The batch size of small-data runs.
pub const SMALL_BATCH: usize = 16;
/// The learning rate of the pretrained encoder on small data.
pub const SMALL_LR: f64 = 1e-4;
/// The pretrained encoder small-data runs fine-tune (a manifest model).
pub const DEFAULT_ENCODER: &str = "minilm-l6";
/// Environment variable naming another encoder for the small-data defaults (a manifest model
/// or a checkpoint folder).
pub const ENCODER_ENV: &str = "WHETSTONE_SMALL_DATA_ENCODER";
/// Environment variable that turns the small-data defaults off when set to `off` (or `0`,
/// `false`, `no`): a run on the user's file then uses the default recipe as it is, exactly as
/// with `--recipe default`. The CLI tests of other features set it, so that their small files
/// keep the default recipe they were written for.
pub const SWITCH_ENV: &str = "WHETSTONE_SMALL_DATA";

/// Whether [`SWITCH_ENV`] is unset or anything but off.
pub fn enabled() -> bool {
    !std::env::var(SWITCH_ENV).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "0" | "false" | "no"))
}

/// A held-out split (validation or test) should have at least this many examples per class…
pub const MIN_HELD_OUT_PER_CLASS: usize = 20;
/// …and at least this many in all…
pub const MIN_HELD_OUT: usize = 50;
/// …but takes at most this share of the data.
pub const MAX_HELD_OUT_FRACTION: f64 = 0.2;

/// The settings the rules may choose, in the order they are applied.
pub const RULE_KEYS: [&str; 9] = ["model", "optim.lr", "train.clip_norm", "train.batch_size", "data.valid_fraction", "data.test_fraction", "augment", "train.patience", "train.epochs"];

/// One setting chosen for the data's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoChoice {
    /// The recipe key (`optim.lr`, `model`, `augment`, …).
    pub setting: String,
    /// The value chosen, as shown.
    pub value: String,
    /// Why.
    pub why: String,
}

impl AutoChoice {
    fn new(setting: &str, value: impl Into<String>, why: impl Into<String>) -> Self {
        Self { setting: setting.into(), value: value.into(), why: why.into() }
    }

    /// The line printed for it.
    pub fn line(&self) -> String {
        format!("auto: {} = {} ({})", self.setting, self.value, self.why)
    }
}

/// What [`choose_for_size`] decided: the data's size, and each setting it chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizePlan {
    /// Labelled examples in the user's data (all splits).
    pub examples: usize,
    pub classes: usize,
    /// [`SMALL_DATA_THRESHOLD`].
    pub threshold: usize,
    /// Below the threshold.
    pub small: bool,
    /// The settings chosen, in the order applied.
    pub choices: Vec<AutoChoice>,
    /// Settings the user gave that the rules would otherwise have chosen.
    pub kept: Vec<String>,
    /// A caveat (held-out splits too small to measure much), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SizePlan {
    /// The headline line.
    pub fn summary(&self) -> String {
        if self.small {
            format!(
                "data size: {} labelled examples, {} classes — below the small-data threshold of {}, so whetstone picks defaults for small data (explicit --recipe/--set/flags win)",
                self.examples, self.classes, self.threshold
            )
        } else {
            format!("data size: {} labelled examples, {} classes — at or above the small-data threshold of {}: the default recipe as it is", self.examples, self.classes, self.threshold)
        }
    }

    /// Every line to print: the headline, one per choice, the settings kept and the caveat.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![self.summary()];
        out.extend(self.choices.iter().map(AutoChoice::line));
        if !self.kept.is_empty() {
            out.push(format!("auto: kept your {} (given explicitly)", self.kept.join(", ")));
        }
        out.extend(self.note.iter().map(|n| format!("auto: note: {n}")));
        out
    }

    /// The report.md section.
    pub fn markdown(&self) -> String {
        let mut md = format!("{}.\n\n", self.summary());
        if !self.choices.is_empty() {
            md.push_str("| setting | chosen | why |\n|---|---|---|\n");
            for c in &self.choices {
                md.push_str(&format!("| `{}` | {} | {} |\n", c.setting, c.value.replace('|', "\\|"), c.why.replace('|', "\\|")));
            }
        }
        if !self.kept.is_empty() {
            md.push_str(&format!("\nKept as given: {}.\n", self.kept.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")));
        }
        if let Some(n) = &self.note {
            md.push_str(&format!("\nNote: {n}\n"));
        }
        md
    }
}

/// Whether `key` (a recipe path) or anything under it was given explicitly.
fn given(explicit: &[String], key: &str) -> bool {
    explicit.iter().any(|k| k == key || k.starts_with(&format!("{key}.")))
}

/// The recipe keys of `overrides` (`KEY=VALUE`, the part before `=`, trimmed).
pub fn override_keys(overrides: &[String]) -> Vec<String> {
    overrides.iter().filter_map(|o| o.split_once('=').map(|(k, _)| k.trim().to_string())).collect()
}

/// The share of `examples` held out for one split: the recipe's `current`, raised so that the
/// split has at least [`MIN_HELD_OUT_PER_CLASS`] examples per class and [`MIN_HELD_OUT`] in
/// all, but never above [`MAX_HELD_OUT_FRACTION`].
pub fn held_out_fraction(examples: usize, classes: usize, current: f64) -> f64 {
    if examples == 0 {
        return current;
    }
    let want = (MIN_HELD_OUT_PER_CLASS * classes).max(MIN_HELD_OUT) as f64 / examples as f64;
    // Rounded up to 3 decimals, so the value shown is the value used.
    let want = (want * 1000.0).ceil() / 1000.0;
    current.max(want.min(MAX_HELD_OUT_FRACTION))
}

/// Optimiser steps in one epoch of `train_examples` at `batch_size × grad_accum` per step.
pub fn steps_per_epoch(train_examples: usize, batch_size: usize, grad_accum: usize) -> u64 {
    let per_step = (batch_size * grad_accum.max(1)).max(1);
    train_examples.div_ceil(per_step).max(1) as u64
}

/// The epochs that give at least `min_steps` optimiser steps at `steps_per_epoch`, never fewer
/// than the recipe's `epochs`, and at most `max_epochs` (unless the recipe asked for more).
pub fn epochs_for_min_steps(epochs: u64, steps_per_epoch: u64, min_steps: u64, max_epochs: u64) -> u64 {
    let need = min_steps.div_ceil(steps_per_epoch.max(1));
    epochs.max(need.min(max_epochs))
}

/// The augmentation of small-data runs: EDA (Wei & Zou 2019) on half the training examples of
/// every epoch, with the method's default strength.
pub fn small_data_augment() -> AugmentRecipe {
    let mut t = toml::Table::new();
    t.insert("method".into(), toml::Value::String("eda".into()));
    // A fixed literal that always deserialises.
    toml::Value::Table(t).try_into().expect("method = \"eda\" is a valid [augment] section")
}

/// The pretrained-encoder model section for `encoder` (a manifest model or a checkpoint folder).
pub fn pretrained_model(encoder: &str) -> Result<ModelConfig> {
    let mut t = toml::Table::new();
    t.insert("kind".into(), toml::Value::String("transformer".into()));
    t.insert("pretrained".into(), toml::Value::String(encoder.into()));
    t.insert("pooling".into(), toml::Value::String("mean".into()));
    toml::Value::Table(t).try_into().map_err(|e| TrainError::Config(format!("the small-data encoder `{encoder}`: {e}")))
}

/// Count the labelled examples and classes of `recipe`'s data, read as the run will read it
/// (`drop_bad_labels` included).
pub fn data_size(recipe: &Recipe, drop_bad_labels: bool) -> Result<(usize, usize)> {
    let d = &recipe.data;
    let load = LoadOptions { drop_bad_labels: drop_bad_labels || d.drop_bad_labels, ..d.load_options(recipe.seed) };
    let s = load_splits_with(&d.source(), &load)?;
    Ok((s.train.len() + s.valid.len() + s.test.len(), s.labels.len()))
}

/// Change `recipe` for data of `examples` labelled examples in `classes` classes, leaving every
/// key in `explicit` (and everything under it) as it is; `encoder` is the pretrained encoder to
/// fine-tune. At or above [`SMALL_DATA_THRESHOLD`] nothing changes.
pub fn choose_for_size(recipe: &mut Recipe, examples: usize, classes: usize, explicit: &[String], encoder: &str) -> Result<SizePlan> {
    let small = examples < SMALL_DATA_THRESHOLD;
    let mut plan = SizePlan { examples, classes, threshold: SMALL_DATA_THRESHOLD, small, choices: Vec::new(), kept: Vec::new(), note: None };
    if !small {
        return Ok(plan);
    }
    let model_free = !given(explicit, "model") && !given(explicit, "tokenizer");
    plan.kept = RULE_KEYS.iter().filter(|k| if **k == "model" { !model_free } else { given(explicit, k) }).map(|k| k.to_string()).collect();
    let keep = |key: &str| !given(explicit, key);
    if model_free {
        recipe.model = pretrained_model(encoder)?;
        plan.choices.push(AutoChoice::new("model", format!("transformer, pretrained `{encoder}`, mean pooling"), "a pretrained encoder learns from a few hundred examples; a model trained from scratch does not"));
        if keep("optim.lr") {
            recipe.optim.lr = SMALL_LR;
            plan.choices.push(AutoChoice::new("optim.lr", format!("{SMALL_LR:e}"), "fine-tuning rate for the pretrained encoder on small data (reports/small-data.md)"));
        }
        if keep("train.clip_norm") {
            recipe.train.clip_norm = 1.0;
            plan.choices.push(AutoChoice::new("train.clip_norm", "1", "gradient clipping as in BERT fine-tuning"));
        }
    }
    if recipe.train.batch_size > SMALL_BATCH && keep("train.batch_size") {
        recipe.train.batch_size = SMALL_BATCH;
        plan.choices.push(AutoChoice::new("train.batch_size", SMALL_BATCH.to_string(), "smaller batches give more optimiser steps per epoch"));
    }
    // Held-out splits carved from the file (none when the user gave that split's file).
    let mut held = [(recipe.data.valid_path.is_none(), "data.valid_fraction", recipe.data.valid_fraction, "validation"), (recipe.data.test_path.is_none(), "data.test_fraction", recipe.data.test_fraction, "test")];
    for (carved, key, current, what) in held.iter_mut() {
        if !*carved || !keep(key) {
            continue;
        }
        let f = held_out_fraction(examples, classes, *current);
        if f != *current {
            *current = f;
            let n = (f * examples as f64).round() as usize;
            plan.choices.push(AutoChoice::new(key, format!("{f}"), format!("≈{n} {what} examples, stratified: at least {MIN_HELD_OUT_PER_CLASS} per class or {MIN_HELD_OUT} in all, at most {:.0}% of the data", 100.0 * MAX_HELD_OUT_FRACTION)));
        }
    }
    recipe.data.valid_fraction = held[0].2;
    recipe.data.test_fraction = held[1].2;
    let smallest = [(held[0].0, held[0].2), (held[1].0, held[1].2)].iter().filter(|(c, _)| *c).map(|(_, f)| (f * examples as f64) as usize / classes.max(1)).min();
    if let Some(per_class) = smallest.filter(|&n| n < MIN_HELD_OUT_PER_CLASS) {
        plan.note = Some(format!(
            "the data is too small for reliable held-out splits: about {per_class} examples per class in the smaller of validation and test, so their scores move by several points from one example; label more data if you can"
        ));
    }
    if recipe.augment.is_none() && keep("augment") {
        let a = small_data_augment();
        plan.choices.push(AutoChoice::new("augment", format!("{}, probability {}", a.method, a.probability), "EDA measured best on ~500 examples (reports/augment.md: +3.1 points TextCNN, +1.9 Transformer)"));
        recipe.augment = Some(a);
    }
    if recipe.train.patience > 0 && keep("train.patience") {
        recipe.train.patience = 0;
        plan.choices.push(AutoChoice::new("train.patience", "0 (off)", "a small validation split is noisy; the run takes its minimum steps and keeps the best checkpoint"));
    }
    if keep("train.epochs") {
        let held_out = if recipe.data.valid_path.is_none() { recipe.data.valid_fraction } else { 0.0 } + if recipe.data.test_path.is_none() { recipe.data.test_fraction } else { 0.0 };
        let train = ((1.0 - held_out) * examples as f64).round() as usize;
        let per_epoch = steps_per_epoch(train, recipe.train.batch_size, recipe.train.grad_accum);
        let epochs = epochs_for_min_steps(recipe.train.epochs, per_epoch, MIN_STEPS, MAX_EPOCHS);
        if epochs != recipe.train.epochs {
            plan.choices.push(AutoChoice::new(
                "train.epochs",
                epochs.to_string(),
                format!("≈{per_epoch} steps per epoch on ≈{train} training examples; at least {MIN_STEPS} optimiser steps, at most {MAX_EPOCHS} epochs"),
            ));
            recipe.train.epochs = epochs;
        }
    }
    Ok(plan)
}

/// How a test accuracy compares with always answering the most frequent class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineCheck {
    pub accuracy: f64,
    /// Accuracy of always answering [`class`](Self::class).
    pub baseline: f64,
    pub class: String,
    /// The noise margin: two binomial standard errors of the baseline at this test size, at
    /// least one point.
    pub margin: f64,
    /// Accuracy at or within `margin` of the baseline.
    pub near_baseline: bool,
    /// The class predicted most often, and its share of the predictions.
    pub top_prediction: String,
    pub top_prediction_share: f64,
    /// The warning to show when near the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Compare `test`'s accuracy with its majority-class baseline; `None` for an empty test split.
pub fn baseline_check(test: &ClassificationReport) -> Option<BaselineCheck> {
    let (baseline, class) = test.majority_baseline()?;
    let n = test.n as f64;
    let margin = (2.0 * (baseline * (1.0 - baseline) / n).sqrt()).max(0.01);
    let predicted: Vec<u64> = (0..test.per_class.len()).map(|j| test.confusion.iter().map(|row| row.get(j).copied().unwrap_or(0)).sum()).collect();
    let (pj, &pn) = predicted.iter().enumerate().rev().max_by_key(|&(_, c)| *c)?;
    let top_prediction = test.per_class.get(pj).map_or_else(|| pj.to_string(), |m| m.label.clone());
    let share = pn as f64 / n;
    let near = test.accuracy <= baseline + margin;
    let warning = near.then(|| {
        let one_class = if share >= 0.9 { format!(" It answers `{top_prediction}` for {:.0}% of the test examples.", 100.0 * share) } else { String::new() };
        format!(
            "the model did not beat the majority-class baseline: test accuracy {:.4} against {:.4} for always answering `{}` (noise margin ±{:.3} at {} test examples).{one_class} \
             What to try: more labelled data, or more optimiser steps (--epochs N); a pretrained encoder (leave out --recipe for the small-data defaults, or --set model.pretrained=\"minilm-l6\" on a transformer); \
             check that the labels match the texts (label column, shuffled rows); for imbalanced classes select and compare on macro-F1 (--set train.metric=\"macro_f1\").",
            test.accuracy, baseline, class, margin, test.n
        )
    });
    Some(BaselineCheck { accuracy: test.accuracy, baseline, class: class.to_string(), margin, near_baseline: near, top_prediction, top_prediction_share: share, warning })
}

/// The one line comparing test accuracy with the baseline.
pub fn baseline_line(c: &BaselineCheck) -> String {
    format!("test accuracy {:.4} vs majority-class baseline {:.4} (always `{}`): {:+.1} points", c.accuracy, c.baseline, c.class, 100.0 * (c.accuracy - c.baseline))
}

/// The report.md lines on the majority-class baseline: the comparison, and the warning when
/// the model did not beat it.
pub fn baseline_markdown(c: &BaselineCheck) -> String {
    let mut md = format!("**{}.**\n", baseline_line(c));
    if let Some(w) = &c.warning {
        md.push_str(&format!("\n> **Warning:** {w}\n"));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe::parse("t", "[train]\nepochs = 8\nbatch_size = 50\npatience = 3\n[data]\npath = \"x.csv\"\n", &[]).unwrap()
    }

    #[test]
    fn held_out_grows_to_the_minimum_and_stops_at_the_cap() {
        // 480 examples, 3 classes: 60 wanted → 0.125.
        assert_eq!(held_out_fraction(480, 3, 0.1), 0.125);
        // Big enough already.
        assert_eq!(held_out_fraction(1900, 2, 0.1), 0.1);
        // Tiny data: capped.
        assert_eq!(held_out_fraction(100, 5, 0.1), MAX_HELD_OUT_FRACTION);
        // A larger fraction the recipe asked for stays.
        assert_eq!(held_out_fraction(480, 3, 0.3), 0.3);
    }

    #[test]
    fn epochs_give_the_minimum_steps_within_the_cap() {
        assert_eq!(steps_per_epoch(336, 16, 1), 21);
        assert_eq!(steps_per_epoch(337, 16, 1), 22);
        assert_eq!(steps_per_epoch(10, 4, 2), 2);
        // 250 steps at 21 per epoch: 12 epochs.
        assert_eq!(epochs_for_min_steps(8, 21, 250, 40), 12);
        // The recipe's epochs when they already give enough.
        assert_eq!(epochs_for_min_steps(8, 100, 250, 40), 8);
        // Capped.
        assert_eq!(epochs_for_min_steps(8, 2, 250, 40), 40);
        // A recipe asking for more than the cap keeps its epochs.
        assert_eq!(epochs_for_min_steps(50, 2, 250, 40), 50);
    }

    #[test]
    fn small_data_gets_every_choice() {
        let mut r = recipe();
        let plan = choose_for_size(&mut r, 480, 3, &[], "minilm-l6").unwrap();
        assert!(plan.small);
        let keys: Vec<&str> = plan.choices.iter().map(|c| c.setting.as_str()).collect();
        assert_eq!(keys, RULE_KEYS);
        assert_eq!(r.model.kind(), "transformer");
        assert_eq!(r.optim.lr, SMALL_LR);
        assert_eq!(r.train.batch_size, SMALL_BATCH);
        assert_eq!(r.data.valid_fraction, 0.125);
        assert_eq!(r.augment.as_ref().unwrap().method, "eda");
        assert_eq!(r.train.patience, 0);
        // 480 × 0.75 = 360 training examples, 23 steps per epoch: 11 epochs for 250 steps.
        assert_eq!(r.train.epochs, 11);
        assert!(plan.note.is_none());
        r.validate().unwrap();
        let lines = plan.lines();
        assert_eq!(lines.len(), 1 + plan.choices.len());
        assert!(lines[0].contains("480") && lines[0].contains("2000"), "{}", lines[0]);
    }

    #[test]
    fn large_data_is_left_alone() {
        let mut r = recipe();
        let before = r.clone();
        let plan = choose_for_size(&mut r, SMALL_DATA_THRESHOLD, 2, &[], "minilm-l6").unwrap();
        assert!(!plan.small && plan.choices.is_empty());
        assert_eq!(r, before);
        assert!(plan.summary().contains("as it is"));
    }

    #[test]
    fn explicit_settings_win() {
        let mut r = recipe();
        let explicit = override_keys(&["model.kind=\"bilstm\"".into(), "optim.lr=3e-3".into(), "train.epochs = 2".into(), "augment.method=\"swap\"".into()]);
        let plan = choose_for_size(&mut r, 480, 3, &explicit, "minilm-l6").unwrap();
        let keys: Vec<&str> = plan.choices.iter().map(|c| c.setting.as_str()).collect();
        assert!(!keys.iter().any(|k| ["model", "optim.lr", "train.clip_norm", "augment", "train.epochs"].contains(k)), "{keys:?}");
        assert_eq!(r.model.kind(), "textcnn");
        assert_eq!(r.train.epochs, 8);
        assert!(r.augment.is_none());
        assert_eq!(plan.kept, ["model", "optim.lr", "augment", "train.epochs"]);
    }

    #[test]
    fn tiny_data_says_its_splits_are_noisy() {
        let mut r = recipe();
        let plan = choose_for_size(&mut r, 60, 3, &[], "minilm-l6").unwrap();
        assert!(plan.note.as_deref().is_some_and(|n| n.contains("too small")), "{:?}", plan.note);
        assert_eq!(r.train.epochs, MAX_EPOCHS);
    }

    #[test]
    fn a_fixed_validation_file_is_not_resized() {
        let mut r = recipe();
        r.data.valid_path = Some("v.csv".into());
        let plan = choose_for_size(&mut r, 480, 3, &[], "minilm-l6").unwrap();
        assert!(plan.choices.iter().all(|c| c.setting != "data.valid_fraction"));
        assert_eq!(r.data.valid_fraction, 0.1);
    }

    fn report(labels: &[i64], preds: &[i64]) -> ClassificationReport {
        whetstone_eval::classification_report(labels, preds, &["a".to_string(), "b".to_string(), "c".to_string()]).unwrap()
    }

    #[test]
    fn a_model_at_the_baseline_is_flagged() {
        // 60% `a`; always answering `a` is the baseline.
        let labels: Vec<i64> = (0..100).map(|i| if i < 60 { 0 } else if i < 80 { 1 } else { 2 }).collect();
        let c = baseline_check(&report(&labels, &vec![0; 100])).unwrap();
        assert!((c.baseline - 0.6).abs() < 1e-12 && c.class == "a");
        assert!(c.near_baseline);
        assert!((c.top_prediction_share - 1.0).abs() < 1e-12);
        let w = c.warning.unwrap();
        assert!(w.contains("did not beat") && w.contains("100%") && w.contains("macro-F1"), "{w}");
        // Perfect predictions: clearly above.
        let c = baseline_check(&report(&labels, &labels)).unwrap();
        assert!(!c.near_baseline && c.warning.is_none());
        assert!(baseline_line(&c).contains("+40.0 points"), "{}", baseline_line(&c));
        // Within two standard errors (±0.098 at n = 100): still flagged.
        let mut p = vec![0; 100];
        for x in p.iter_mut().skip(60).take(5) {
            *x = 1;
        }
        let c = baseline_check(&report(&labels, &p)).unwrap();
        assert!((c.accuracy - 0.65).abs() < 1e-12 && c.near_baseline);
    }
}
