//! The whetstone training loop and the run pipeline around it.
//!
//! * [`Trainer`]: one loop for any [`whetstone_models::TextClassifier`], optimiser, schedule and
//!   [`Objective`]. Seeded and bit-reproducible on CPU, gradient clipping and accumulation,
//!   evaluation every epoch or N steps, early stopping with the best checkpoint kept, a progress
//!   bar, a JSONL metrics log, atomic checkpoints and exact resume.
//! * [`Recipe`] and [`train_recipe`]: a TOML recipe to a finished run folder
//!   (`recipe.toml`, `tokenizer.json`, `labels.json`, `model.safetensors`,
//!   `checkpoint.safetensors`, `metrics.jsonl`, `metrics.json`, `report.md`, `curves.png/svg`).
//! * [`LoadedRun`]: a run folder loaded back for evaluation and prediction.
//! * [`FinetuneConfig`] (`[finetune]`): freezing, gradual unfreezing, a head-only warm-up and
//!   re-initialised top layers for fine-tuning a pretrained encoder, which a recipe names with
//!   `[model] pretrained = "minilm-l6"` (a manifest model) or a checkpoint folder.
//!
//! ```
//! use whetstone_train::{Recipe, TrainConfig};
//! let recipe: Recipe = toml::from_str(r#"
//!     name = "demo"
//!     [model]
//!     kind = "textcnn"
//!     embed_dim = 64
//!     [train]
//!     epochs = 3
//! "#).unwrap();
//! assert_eq!(recipe.train.epochs, 3);
//! assert_eq!(recipe.data.dataset, "rotten-tomatoes");
//! assert!(toml::from_str::<Recipe>("[train]\nepoch = 3").is_err()); // unknown keys are rejected
//! ```

mod checkpoint;
mod config;
mod context;
mod efficiency;
mod error;
mod evaluate;
mod experiment;
mod finetune;
mod finite;
mod objective;
mod observer;
mod pretrain;
mod pretrained;
mod progress;
mod recipe;
mod recipe_parse;
mod reporter;
mod run;
mod state;
mod trainer;

pub use checkpoint::{Checkpoint, BEST_MODEL_FILE, CHECKPOINT_FILE};
pub use config::TrainConfig;
pub use efficiency::measure_efficiency;
pub use error::{Result, TrainError};
pub use evaluate::{predict, Predictions};
pub use experiment::{display_names, train_recipe, write_plot, RunOptions, RunResult};
pub use finetune::{block_depth, freeze, reinit_top_layers, FinetuneConfig, FreezeSchedule, Freezing};
pub use context::{EvalContext, StepContext};
pub use evaluate::classify;
pub use objective::{backward_weighted, CrossEntropy, Objective, StepLoss, Validation};
pub use observer::{Lines, Observer, Silent, StepStatus};
pub use reporter::Reporter;
pub use state::StrategyState;
pub use pretrain::{pretrain_recipe, CorpusRecipe, MlmObjective, MlmScore, PretrainRecipe, PretrainResult, ENCODER_DIR, PRETRAIN_RECIPE_FILE};
pub use pretrained::resolve_pretrained;
pub use progress::Progress;
pub use recipe_parse::apply_override;
pub use recipe::{DataRecipe, EvalRecipe, Recipe, TokenizerRecipe};
pub use run::{read_recipe, LoadedRun, LABELS_FILE, RECIPE_FILE, TOKENIZER_FILE};
pub use trainer::{steps_per_epoch, FitSummary, Outcome, StepReport, Trainer, METRICS_LOG_FILE};
