//! Recipes, run folders and run pipelines over whetstone's crates.
//!
//! whetstone-train is the loop; this crate is what a *run* is around it:
//!
//! * [`Recipe`] (`[data]`, `[tokenizer]`, `[model]`, `[optim]`, `[schedule]`, `[train]`,
//!   `[finetune]`, `[eval]`) and [`PretrainRecipe`]: TOML with `key.path=value` overrides
//!   ([`apply_override`]), unknown keys and bad values rejected by their full name.
//! * [`train_recipe`]: a recipe to a finished run folder (`recipe.toml`, `tokenizer.json`,
//!   `labels.json`, `model.safetensors`, `checkpoint.safetensors`, `metrics.jsonl`,
//!   `metrics.json`, `report.md`, `curves.png/svg`), and [`pretrain_recipe`]: masked-LM
//!   pretraining to a run folder with the encoder under [`ENCODER_DIR`].
//! * Run folders: a [`RunDir`] owns a run's files (a fresh folder under the runs folder only,
//!   atomically created, never an earlier run's; a lock so that two processes never share a
//!   folder; one atomic write for every file), [`RunFolder`] says where a run goes,
//!   [`resume_dir`], the file names, [`LoadedRun`] (a run folder loaded back for evaluation
//!   and prediction, refusing non-finite weights), [`read_recipe`], [`Predictor`] (what
//!   `predict` and `serve` answer with: any run, or one task of a multi-task run).
//! * Everything is checked before anything is written ([`Recipe::validate`]: finite floats,
//!   ranges, integer bounds, the optimiser's and the model's settings, a model that fits in
//!   memory), and a resumed run must match the [`identity`] its checkpoint records (the
//!   recipe without [`RESUMABLE_SETTINGS`], the data, the labels).
//! * [`Reporter`]: the progress bar (an [`whetstone_train::Observer`]).
//! * [`resolve_pretrained`]: a `[model] pretrained` name (a manifest model, fetched on first
//!   use, or a checkpoint folder) to its folder; [`measure_efficiency`] for run reports.
//! * [`compress`]: `whetstone distill` and `whetstone prune` as library calls (a run folder
//!   in, a run folder out), over whetstone-compress's algorithms.
//!
//! This crate turns on the default features of whetstone-data (fetching named data,
//! WordPiece training) and whetstone-eval (plots).
//!
//! ```
//! use whetstone_run::Recipe;
//! let recipe = Recipe::parse("demo.toml", r#"
//!     name = "demo"
//!     [model]
//!     kind = "textcnn"
//!     embed_dim = 64
//!     [train]
//!     epochs = 3
//! "#, &["train.batch_size=16".into()]).unwrap();
//! assert_eq!(recipe.train.epochs, 3);
//! assert_eq!(recipe.train.batch_size, 16);
//! assert_eq!(recipe.data.dataset, "rotten-tomatoes");
//! let e = Recipe::parse("demo.toml", "[train]\nepoch = 3", &[]).unwrap_err();
//! assert!(e.contains("unknown key `train.epoch`"), "{e}");
//! ```
//!
//! A whole run (it downloads rotten-tomatoes on first use, hence not run here):
//!
//! ```no_run
//! use whetstone_run::{train_recipe, Recipe, RunOptions};
//! let recipe = Recipe::parse("demo", "name = \"demo\"\n[train]\nepochs = 1\n", &[]).unwrap();
//! // runs/demo, or runs/demo-2, … when taken.
//! let result = train_recipe(&recipe, &RunOptions::named("runs", &recipe.name))?;
//! println!("test accuracy {:.3} in {}", result.test.unwrap().accuracy, result.dir.display());
//! # Ok::<(), whetstone_run::TrainError>(())
//! ```

pub mod augment;
pub mod compress;
mod efficiency;
mod experiment;
mod folder;
pub mod identity;
pub mod multitask;
mod pretrain;
mod predictor;
mod pretrained;
mod prologue;
mod recipe;
mod recipe_parse;
mod reporter;
pub mod robustness;
mod run;
pub mod small_data;

pub use augment::{build_augmenter, load_neighbours, load_wordnet, AugmentRecipe};
pub use experiment::{train_recipe, write_plot, RunOptions, RunResult};
pub use folder::{resume_dir, run_name, RunDir, RunFolder, LOCK_FILE};
pub use identity::{recipe_changes, PRETRAIN_RESUMABLE_SETTINGS, RESUMABLE_SETTINGS};
pub use pretrain::{pretrain_recipe, CorpusRecipe, GeneralRecipe, PretrainRecipe, PretrainResult, PRETRAIN_RECIPE_FILE};
pub use multitask::{train_multitask, MultiTaskRecipe, MultiTaskRun, TaskRecipe};
pub use predictor::Predictor;
pub use reporter::Reporter;

pub use efficiency::{efficiency_line, measure_efficiency};
pub use pretrained::{resolve_model, resolve_pretrained, ENCODER_DIR};
pub use recipe::{DataRecipe, EvalRecipe, Recipe, TokenizerRecipe};
pub use recipe_parse::{apply_override, MAX_MODEL_BYTES};
pub use small_data::{baseline_check, choose_for_size, BaselineCheck, SizePlan, SMALL_DATA_THRESHOLD};
pub use run::{display_names, read_recipe, LoadedRun, LABELS_FILE, RECIPE_FILE, TOKENIZER_FILE};
pub use whetstone_train::{FitSummary, Outcome, Precision, Result, TrainError, BEST_MODEL_FILE, CHECKPOINT_FILE, METRICS_LOG_FILE};

use std::path::PathBuf;

/// Attach a path to an I/O error.
fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
