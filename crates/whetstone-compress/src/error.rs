/// Errors from compressing a model.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// A sparsity target outside `[0, 1)`.
    #[error("sparsity must be in [0, 1), got {0}")]
    Sparsity(f64),
    /// A method name that is not implemented.
    #[error("unknown {what} `{name}`: expected one of {expected}")]
    Unknown { what: &'static str, name: String, expected: String },
    /// Parameter patterns that select nothing.
    #[error("no parameter matches {patterns}; available names start with: {sample}")]
    NoMatch { patterns: String, sample: String },
    /// Teacher and student that cannot be paired.
    #[error("teacher and student do not fit: {0}")]
    Mismatch(String),
    /// A layer mapping or layer selection that refers to layers that do not exist.
    #[error("invalid layer mapping: {0}")]
    Mapping(String),
    /// Any other out-of-range or inconsistent setting.
    #[error("invalid compression setting: {0}")]
    Config(String),
    /// A mask or state that does not fit the parameters.
    #[error("masks do not fit the model: {0}")]
    Masks(String),
    /// An error from building, loading or saving a model.
    #[error(transparent)]
    Model(#[from] whetstone_models::ModelError),
    /// An error from an optimiser.
    #[error(transparent)]
    Optim(#[from] whetstone_optim::OptimError),
    /// An error from training, evaluating or loading a run.
    #[error(transparent)]
    Train(#[from] whetstone_train::TrainError),
    /// An error from reading or tokenising data.
    #[error(transparent)]
    Data(#[from] whetstone_data::DataError),
    /// An error from writing reports or measuring a model.
    #[error(transparent)]
    Eval(#[from] whetstone_eval::EvalError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    /// A run folder that cannot serve as the input of a compression step.
    #[error("run {run}: {msg}")]
    Run { run: std::path::PathBuf, msg: String },
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// A compression error met inside a training step (an objective's loss, a penalty, a mask
/// update) reaches the trainer as a [`whetstone_train::TrainError`]: libtorch, model, optimiser,
/// data, evaluation and I/O errors keep their kind; the compression-specific ones (a teacher
/// that does not fit, a bad mapping, …) travel as [`whetstone_train::TrainError::Strategy`],
/// which keeps the original error (downcast it to `CompressError`).
impl From<CompressError> for whetstone_train::TrainError {
    fn from(e: CompressError) -> Self {
        use whetstone_train::TrainError as T;
        match e {
            CompressError::Train(e) => e,
            CompressError::Torch(e) => T::Torch(e),
            CompressError::Model(e) => T::Model(e),
            CompressError::Optim(e) => T::Optim(e),
            CompressError::Data(e) => T::Data(e),
            CompressError::Eval(e) => T::Eval(e),
            CompressError::Io { path, source } => T::Io { path, source },
            other => T::Strategy(Box::new(other)),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CompressError>;

/// Check a sparsity target is in `[0, 1)`.
pub(crate) fn check_sparsity(s: f64) -> Result<()> {
    if (0.0..1.0).contains(&s) {
        Ok(())
    } else {
        Err(CompressError::Sparsity(s))
    }
}
