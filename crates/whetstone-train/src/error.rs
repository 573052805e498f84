use std::path::PathBuf;

/// Errors from training, evaluation and run artefacts.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] whetstone_data::DataError),
    #[error(transparent)]
    Model(#[from] whetstone_models::ModelError),
    #[error(transparent)]
    Optim(#[from] whetstone_optim::OptimError),
    #[error(transparent)]
    Eval(#[from] whetstone_eval::EvalError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An error from the libtorch extension (autocast, fused kernels).
    #[error(transparent)]
    Ext(#[from] whetstone_torch_ext::ExtError),
    /// A training setting is invalid.
    #[error("invalid training setting: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A checkpoint is unreadable or does not fit the run.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// The loss became NaN or infinite; training stopped without overwriting good checkpoints.
    #[error("loss became {loss} at step {step} (epoch {epoch}); training stopped. The last good checkpoint is kept at {checkpoint} (resume with --resume, perhaps with a lower learning rate or gradient clipping)")]
    NonFiniteLoss { step: u64, epoch: u64, loss: f64, checkpoint: String },
    /// An error of a strategy's own kind (a compression setting, a teacher that does not fit, …),
    /// kept whole so callers can downcast it.
    #[error(transparent)]
    Strategy(Box<dyn std::error::Error + Send + Sync>),
    /// A strategy's checkpointed state is missing or does not fit the strategy.
    #[error("strategy state: {0}")]
    State(String),
    /// A parameter, optimiser buffer or strategy tensor is NaN or infinite; nothing was saved.
    #[error("{what} is not finite at step {step}; training stopped without saving it. The last good checkpoint is {checkpoint}")]
    NonFiniteState { what: String, step: u64, checkpoint: String },
    /// The run folder's checkpoint does not belong to what is being resumed.
    #[error("cannot resume {run}: {msg}")]
    Resume { run: PathBuf, msg: String },
    /// A run folder lacks something that is needed.
    #[error("run {run}: {msg}")]
    Run { run: PathBuf, msg: String },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

/// Attach a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
