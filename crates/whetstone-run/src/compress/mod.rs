//! Compression runs end to end, behind `whetstone distill` and `whetstone prune`: a run folder
//! in, a run folder out that `whetstone eval` and `whetstone predict` load like any other.
//! The algorithms (distillation objective, pruning, int8) are whetstone-compress's; this is
//! the run around them.
//!
//! * [`CompressConfig`]: every setting, as TOML with `key=value` overrides and documented
//!   defaults; `[optim]`, `[schedule]` and `[train]` set the optimiser (any algorithm), the
//!   schedule and the loop of every training [`Phase`].
//! * [`distill`]: a fresh, layer-selected or existing student trained from a teacher run,
//!   optionally on a teacher-labelled transfer set ([`transfer_sentences`], or TinyBERT's
//!   neighbour-replaced copies of the training texts, [`neighbour_transfer`]).
//! * [`prune`]: magnitude (one-shot or gradual, global or per layer), movement, N:M or
//!   structured pruning, or int8 alone, each with an optional recovery phase.
//! * [`open_run`]: a run folder loaded for inference, int8 when it was quantised.
//!
//! Output folders are [`crate::RunDir`]s: created under the runs folder only once the config,
//! the input run and the student have been checked, locked while the run lives, every file
//! written atomically; a run that fails before it wrote a model leaves no folder behind.
//!
//! ```no_run
//! use whetstone_run::compress::{prune, CompressConfig};
//! use whetstone_run::RunFolder;
//! let config = CompressConfig::parse("cli", "", &["prune.method=\"structured-taylor\"".into(), "prune.sparsity=0.5".into()])?;
//! // runs/minilm-rt-heads50, or -2, … when taken; created once everything is checked.
//! let done = prune("runs/minilm-rt".as_ref(), &config, &RunFolder::named("runs", "minilm-rt-heads50"), false)?;
//! println!("test accuracy {:.4} in {}", done.test.accuracy, done.dir.display());
//! # Ok::<(), whetstone_compress::CompressError>(())
//! ```

mod config;
mod distill_run;
mod output;
mod phase;
mod prune_run;
mod source;
mod student;
mod transfer;

pub use config::{default_optim, default_schedule, CompressConfig, DistillSettings, PruneSchedule, PruneSettings, PruneStep, RecoveryMode, RecoverySettings, StudentInit, StudentSpec, TrainSettings};
pub use distill_run::distill;
pub use output::{finish_run, open_run, Finished, Provenance, COMPRESSION_FILE, INT8_FILE, MASKS_FILE};
pub use phase::Phase;
pub use prune_run::prune;
pub use source::Source;
pub use student::build_student;
pub use transfer::{neighbour_transfer, transfer_sentences, NEIGHBOUR};
pub use whetstone_compress::build_optimizer;

/// Attach a path to an I/O error.
fn io(path: impl Into<std::path::PathBuf>) -> impl FnOnce(std::io::Error) -> whetstone_compress::CompressError {
    let path = path.into();
    move |source| whetstone_compress::CompressError::Io { path, source }
}

/// Refuse a precision the device cannot run (fp16 off CUDA) before anything is written, and
/// warn once when bf16 runs on a CPU without native bf16.
fn check_precision(config: &CompressConfig, device: tch::Device) -> whetstone_compress::Result<()> {
    crate::run::check_precision(config.precision, device).map_err(|e| whetstone_compress::CompressError::Config(format!("precision: {e}")))
}
