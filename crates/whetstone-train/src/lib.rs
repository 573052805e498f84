//! The whetstone training loop and its strategy API.
//!
//! One loop, [`Trainer`], drives any [`whetstone_models::TextClassifier`] with any optimiser,
//! schedule and training strategy, on batches from any [`whetstone_data::BatchSource`]. It is
//! seeded and bit-reproducible on CPU, clips and accumulates gradients, validates every epoch
//! or every N steps, stops early with the best weights kept, writes a JSONL metrics log and
//! atomic checkpoints, and resumes exactly. What a run *is* (recipes, run folders, the
//! `train`/`pretrain` pipelines, the progress bar, plots) lives in whetstone-run; this crate
//! is the loop, so depending on it pulls in no plotting, progress-bar, tokenizer-training or
//! download code.
//!
//! # The strategy API
//!
//! * [`Trainer::new`] takes the model, its `VarStore`, an optimiser, the peak learning rate
//!   and the run folder; builder methods set the rest ([`Trainer::objective`],
//!   [`Trainer::schedule`], [`Trainer::config`] ([`TrainConfig`]), [`Trainer::seed`],
//!   [`Trainer::device`], [`Trainer::observer`], [`Trainer::stop_after`],
//!   [`Trainer::identity`], [`Trainer::precision`] for bf16/fp16 mixed precision and
//!   [`Trainer::loss_scaling`]). [`Trainer::fit`] runs the loop; [`Trainer::train_step`] is one
//!   optimiser step of it, public for benchmarks and custom drivers.
//! * An [`Objective`] is the strategy. Only [`Objective::loss`] is required; the loop calls
//!   [`Objective::backward`] for every micro-batch (several passes for FGM or R-Drop),
//!   [`Objective::before_update`] before clipping and the optimiser step,
//!   [`Objective::after_update`] after it, and [`Objective::validate`] to score checkpoints
//!   (classification by default). [`CrossEntropy`] is the default; [`MlmObjective`] is
//!   BERT's masked-LM objective. The [`Objective`] page has a complete strategy written
//!   outside the crate (gradient noise).
//! * A [`StepContext`] is what a strategy sees in a step: the model, its variables, the step
//!   and epoch, the device, and a random stream fixed by `(seed, step)`;
//!   [`EvalContext`] is its counterpart for validation.
//! * A [`StrategyState`] holds the strategy's own tensors and values. It goes into every
//!   [`Checkpoint`] and comes back through [`Objective::load_state`], so a strategy resumes
//!   bit-identically.
//! * Batches come from a [`whetstone_data::BatchSource`]: an epoch plan that is a pure
//!   function of `(seed, epoch)` and a batch per plan entry (length-bucketed
//!   [`whetstone_data::BucketedSource`], or multi-task, augmenting and other sources).
//! * An [`Observer`] sees progress ([`Lines`] by default, [`Silent`]; whetstone-run's
//!   `Reporter` draws a progress bar).
//!
//! Strategies built on the API:
//!
//! * [`adversarial`]: FGM, PGD and FreeLB on the input embeddings, as decorators around
//!   any objective ([`adversarial::AdversarialConfig`] is a recipe's `[adversarial]`
//!   section), and [`adversarial::evaluate_under_pgd`] for robust accuracy.
//! * [`consistency`]: R-Drop, mixup and cutoff, classification objectives that replace
//!   cross-entropy ([`consistency::RegularizeConfig`] is a recipe's `[regularize]` section).
//!
//! Around the loop: [`FinetuneConfig`] (freezing, gradual unfreezing, a head-only warm-up,
//! re-initialised top layers), [`predict`] and [`classify`].
//!
//! ```
//! use tch::{nn::VarStore, Device, Tensor};
//! use whetstone_data::{Batch, BucketedSource, Encoded};
//! use whetstone_models::{ModelConfig, TextCnnConfig};
//! use whetstone_optim::OptimConfig;
//! use whetstone_train::{CrossEntropy, Objective, Result, Silent, StepContext, StrategyState, TrainConfig, Trainer};
//!
//! /// Cross-entropy that counts its optimiser steps; the count is checkpointed.
//! struct Counting { inner: CrossEntropy, updates: u64 }
//!
//! impl Objective for Counting {
//!     fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> Result<Tensor> {
//!         self.inner.loss(cx, batch)
//!     }
//!     fn after_update(&mut self, _cx: &mut StepContext) -> Result<()> {
//!         self.updates += 1;
//!         Ok(())
//!     }
//!     fn state(&self) -> Result<StrategyState> {
//!         Ok(StrategyState::default().with_value("updates", self.updates))
//!     }
//!     fn load_state(&mut self, state: &StrategyState) -> Result<()> {
//!         self.updates = state.value("updates")?;
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
//! // Eight tokenised sentences ([CLS] … [SEP]); the label is the parity of the first word.
//! let ids: Vec<Vec<i64>> = (0..8).map(|i| vec![2, 5 + i, 6, 7, 8, 3]).collect();
//! let train = Encoded { ids, labels: (0..8).map(|i| i % 2).collect(), pad_id: 0 };
//! let vs = VarStore::new(Device::Cpu);
//! let model = ModelConfig::Textcnn(TextCnnConfig { embed_dim: 8, channels: 2, ..Default::default() }).build(&vs.root(), 16, 2)?;
//! let config = TrainConfig { epochs: 2, batch_size: 4, bucket_factor: 1, ..Default::default() };
//! let source = BucketedSource::new(&train, config.batch_size, config.bucket_factor);
//! let dir = std::env::temp_dir().join(format!("whetstone-train-doc-{}", std::process::id()));
//! let mut trainer = Trainer::new(model.as_ref(), &vs, OptimConfig::default().build(&vs)?, 1e-3, &dir)
//!     .objective(Counting { inner: CrossEntropy::default(), updates: 0 })
//!     .config(config)
//!     .seed(7)
//!     .observer(Silent);
//! let summary = trainer.fit(&source, &train, false)?;
//! assert_eq!(summary.progress.step, 4);
//! assert_eq!(trainer.get_objective().state()?.value::<u64>("updates")?, 4);
//! # drop(trainer);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```

pub mod adversarial;
mod checkpoint;
mod config;
pub mod consistency;
mod context;
mod error;
mod evaluate;
mod finetune;
mod finite;
mod interrupt;
mod mlm;
pub mod multitask;
mod objective;
mod observer;
mod progress;
pub mod replicas;
mod scaler;
mod state;
mod trainer;

pub use checkpoint::{Checkpoint, BEST_MODEL_FILE, CHECKPOINT_FILE};
pub use config::TrainConfig;
pub use context::{EvalContext, StepContext};
pub use error::{Result, TrainError};
pub use evaluate::{classify, predict, predict_in, Predictions};
pub use finite::first_non_finite;
pub use interrupt::{clear_stop, request_stop, stop_requested};
pub use finetune::{block_depth, freeze, reinit_top_layers, FinetuneConfig, FreezeSchedule, Freezing};
pub use mlm::{MlmObjective, MlmScore};
pub use objective::{backward_weighted, CrossEntropy, Objective, StepLoss, Validation};
pub use observer::{eprint_line, Lines, Observer, Silent, StepStatus};
pub use progress::Progress;
pub use replicas::{Reduced, Replicas};
pub use scaler::{LossScaleConfig, LossScaleState, LossScaler};
pub use state::StrategyState;
pub use trainer::{steps_per_epoch, FitSummary, Outcome, StepReport, Trainer, METRICS_LOG_FILE};
/// The precision of forward passes (`fp32`, `bf16`, `fp16`), from whetstone-torch-ext.
pub use whetstone_torch_ext::Precision;
