//! Model compression for whetstone.
//!
//! Methods work on any tch [`tch::nn::VarStore`] model by parameter name and pattern
//! ([`ParamSelector`]); those that need the architecture see it through the model
//! capabilities of `whetstone-models`: heads and neurons through [`Structured`], hidden
//! states and attentions through [`whetstone_models::LayerOutputs`].
//!
//! The training strategies ([`DistillObjective`], [`RegularizedObjective`], [`ExitObjective`])
//! are [`whetstone_train::Objective`]s: they return errors instead of panicking, keep their
//! resumable state (projections, counters, exit heads) in every trainer checkpoint, and own
//! their validation where the default (the model's classification) would score the wrong thing.
//!
//! * [`distill`]: logit, hidden-state, attention and embedding distillation
//!   ([`DistillObjective`]), layer mappings, schedules, teacher-logit caching and
//!   DistilBERT-style students.
//! * [`prune`]: magnitude and movement pruning with masks kept by an optimiser wrapper
//!   ([`Masked`]), the cubic schedule, N:M masks, and structured pruning that physically
//!   shrinks the model ([`prune_structured`]).
//! * [`Regularizer`] (L1, group lasso over heads and neurons) and [`RegularizedObjective`];
//!   [`SparsityReport`] per tensor and layer.
//! * [`QuantizedClassifier`]: dynamic int8 Linear layers for CPU inference.
//! * [`early_exit`]: internal classifiers and confidence / entropy / patience exits.
//! * [`build_optimizer`]: one optimiser over a student's store and its projections'.
//!
//! The algorithms only: `whetstone distill` / `whetstone prune` as run pipelines (run folder
//! in, run folder out, with their config) are whetstone-run's `compress` module.
//!
//! ```
//! use whetstone_compress::{magnitude_masks, ParamSelector, Scope};
//! use whetstone_models::{TransformerClassifier, TransformerClassifierConfig, TransformerConfig};
//! use tch::{nn::VarStore, Device};
//!
//! let vs = VarStore::new(Device::Cpu);
//! let cfg = TransformerClassifierConfig {
//!     encoder: TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 8, ..Default::default() },
//!     ..Default::default()
//! };
//! let _model = TransformerClassifier::new(&vs.root(), 50, 2, &cfg)?;
//! let weights = ParamSelector::default().select_vs(&vs)?; // the 6 Linear weights of the layer
//! let masks = magnitude_masks(&weights, 0.5, Scope::Global)?;
//! masks.apply(&vs)?;
//! assert_eq!(masks.sparsity()?, 0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod distill;
pub mod early_exit;
mod error;
mod optim;
pub mod prune;
mod quantize;
mod regularize;
mod report;
mod select;

pub use distill::*;
pub use early_exit::{sweep, EarlyExit, ExitHeads, ExitObjective, ExitPolicy, ExitScores, SweepRow};
pub use error::{CompressError, Result};
pub use optim::build_optimizer;
pub use prune::*;
pub use quantize::{QuantizedClassifier, QuantizedLinear};
pub use regularize::{RegularizedObjective, Regularizer};
pub use report::{SparsityReport, SparsityRow};
pub use select::ParamSelector;
